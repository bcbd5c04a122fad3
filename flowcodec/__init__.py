"""flowcodec: a learned video codec in the residual-coding framework."""
__version__ = "0.1.0"
