"""Background workers: each owns its own database session scope and an exception guard.

A worker loop never lets one failing step stop it (it logs, backs off and retries); services
called from a worker never commit, the worker's scope does.
"""
