"""peek: follow world-readable Matrix rooms from the terminal."""

__version__ = "0.1.0"
