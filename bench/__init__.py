"""reflectd's benchmark tool (see docs/performance.md): ``python -m bench.run --help``."""
