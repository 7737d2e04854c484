"""chipreg registry service: FastAPI + SQLAlchemy shell around the protocol core."""
