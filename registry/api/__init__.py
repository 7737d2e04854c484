"""HTTP shell: FastAPI app, dependencies, problem responses and thin routes."""
