"""Storage backends: a ``Store`` protocol with memory and SQLite implementations."""
