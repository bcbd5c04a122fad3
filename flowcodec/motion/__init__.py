"""Motion approaches behind one contract (``MotionModel``, reading the decoder state ``DecodedPictures``)
and a name registry.

Each approach is one file here; ``@register("name")`` makes it selectable with ``--motion name``.
"""
from .base import DEPTH, DecodedPictures, MotionModel, available, create, register, require
# each module registers its approach when imported
from . import decomposed, feature, higher_order, pixel_to_feature, pyramid, scale_space, temporal  # noqa: F401

__all__ = ["DEPTH", "DecodedPictures", "MotionModel", "available", "create", "register", "require"]
