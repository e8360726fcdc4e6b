"""Schema migrations, one module per backend that keeps a schema."""
