"""Motion approaches behind one interface (``MotionModel``) and a name registry.

Each approach is one file here; ``@register("name")`` makes it selectable with ``--motion name``.
"""
from .base import MotionModel, available, create, register
from . import pyramid, scale_space  # noqa: F401  (each module registers its approach)

__all__ = ["MotionModel", "available", "create", "register"]
