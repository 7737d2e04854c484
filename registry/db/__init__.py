"""Database layer: ORM models, engine and session factories."""
