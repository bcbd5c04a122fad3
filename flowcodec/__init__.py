"""flowcodec: a learned video codec in the residual-coding framework."""
__version__ = "0.5.0"  # the minor number is the bitstream format version (CHANGELOG.md)
