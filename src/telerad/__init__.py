"""telerad: an open-source teleradiology platform."""

__version__ = "0.1.0"
