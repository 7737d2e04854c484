"""The ingest pipeline's process-wide parts: the group-commit writer and admission control."""
