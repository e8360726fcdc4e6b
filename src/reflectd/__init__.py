"""reflectd: a self-hostable Reflect sync server, with the app's mutators in Python."""

from reflectd.app import App
from reflectd.engine.transaction import ScanResult, WriteTransaction

__version__ = "0.1.0"

__all__ = ["App", "ScanResult", "WriteTransaction", "__version__"]
