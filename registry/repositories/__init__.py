"""SQL lives here: one module per aggregate. Repositories never commit."""
