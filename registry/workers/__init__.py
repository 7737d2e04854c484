"""Background workers: each owns its own database session scope and an exception guard.

A worker loop never lets one failing step stop it (it logs, backs off and retries); services
called from a worker never commit, the worker's scope does. ``loop.py`` is the loop they share;
``integrator.py`` folds sequenced log entries into the tree, ``checkpoints.py`` signs
checkpoints and gathers cosignatures (after each integrator round), ``verifier.py`` judges each
closed reporting window, ``webhooks.py`` delivers the findings' outbox (docs/ARCHITECTURE.md,
"Workers").
"""
