"""reflectd: a self-hostable Reflect sync server, with the app's mutators in Python."""

from reflectd.app import App
from reflectd.engine.transaction import ScanResult, WriteTransaction
from reflectd.protocol.connect import SERVER_CLIENT_ID

__version__ = "0.1.0"

__all__ = ["SERVER_CLIENT_ID", "App", "ScanResult", "WriteTransaction", "__version__"]
