"""Wire types and the strict codec of the Reflect 0.39 sync protocol."""
