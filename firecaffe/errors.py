"""Errors meant for people: the CLI prints them as one line and exits non-zero."""


class FirecaffeError(Exception):
    """A problem with the user's input or environment, worded for the user.

    The command line prints ``str(error)`` without a traceback and exits with
    status 1. Messages name the file and line, the layer, or the rank.
    """


class PrototxtError(FirecaffeError):
    """A prototxt or caffemodel file that cannot be read or makes no sense."""


class ShapeError(FirecaffeError):
    """A layer received blobs whose shapes it cannot work with."""


class DataError(FirecaffeError):
    """A data source that is missing, unreadable or inconsistent."""
