"""Exception types raised by flowcodec for bad inputs (as opposed to bugs)."""


class FlowcodecError(Exception):
    """Base class for all errors flowcodec reports to the user."""


class VideoError(FlowcodecError):
    """A video input or output could not be read, written or understood."""


class BitstreamError(FlowcodecError):
    """A .fcb bitstream is malformed, corrupted, truncated or incompatible."""
