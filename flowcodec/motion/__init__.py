"""Motion approaches behind one interface (``MotionModel``) and a name registry.

Each approach is one file here; ``@register("name")`` makes it selectable with ``--motion name``.
"""
from .base import MotionModel, available, create, register
from . import pyramid  # noqa: F401  (registers "pyramid")

__all__ = ["MotionModel", "available", "create", "register"]
