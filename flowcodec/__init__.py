"""flowcodec: a learned video codec in the residual-coding framework.

``flowcodec.Encoder`` and ``flowcodec.Decoder`` (``api.py``) code streams frame by frame from Python;
they load torch when first used, so that ``import flowcodec`` stays light."""
__version__ = "0.6.1"  # the minor number is the bitstream format version (CHANGELOG.md)

from .errors import BitstreamError, FlowcodecError  # noqa: E402  (after the version, which cli reads)

__all__ = ["Encoder", "Decoder", "FlowcodecError", "BitstreamError", "__version__"]


def __getattr__(name):
    if name in ("Encoder", "Decoder"):
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'flowcodec' has no attribute {name!r}")
