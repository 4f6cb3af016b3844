"""The exceptions the engine raises for images it will not tile.

Each carries a one-line reason fit for a log line or a CLI message, and is
raised before any tile is written.
"""


class DeepZoomError(Exception):
    """Base class: the input cannot be turned into a pyramid."""


class InvalidImage(DeepZoomError):
    """Empty, truncated, corrupt, or not an image at all."""


class ImageTooLarge(DeepZoomError):
    """The header declares more pixels than the configured limit."""
