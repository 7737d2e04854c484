"""Partner audit: re-verify the registry's log from scratch, with no trust in the registry.

Pure: no network, no database. ``registry.cli.audit`` fetches entries and checkpoints over
HTTP (or reads an exported bundle) and hands them to :func:`audit.core.audit_log`.
"""
