"""The shipped model: one variable-rate P-frame codec per motion approach, its quality ladder, and
how weights are stored (safetensors with the configuration in the file's metadata).

A model is identified in bitstreams by ``model_id`` ("<motion>-v<FORMAT>") and by the first 8 bytes of
the sha256 of its weights file, so a file never decodes silently with other weights.
"""
import hashlib
import json
import os

import torch
from safetensors.torch import load_file, save_file

from ..errors import FlowcodecError
from .inter import InterCodec

LAMBDAS = (96.0, 192.0, 384.0, 768.0, 1536.0, 3072.0)  # λ per quality level (MSE on [0,1] samples)
INTRA_QP = (42, 38, 35, 32, 29, 26)  # x265 QP of intra frames per quality level (tuned to the P-frames)
WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "weights")


def weights_path(motion: str) -> str:
    return os.path.join(WEIGHTS_DIR, f"{motion}.safetensors")


class VideoModel(torch.nn.Module):
    """Everything the codec needs that has weights. ``inter`` is the P-frame codec."""

    def __init__(self, motion: str = "pyramid", levels: int = len(LAMBDAS)):
        super().__init__()
        self.motion_name = motion
        self.levels = levels
        self.inter = InterCodec(motion, levels)

    @property
    def model_id(self) -> str:
        return f"{self.motion_name}-v1"

    def config(self) -> dict:
        return {"motion": self.motion_name, "levels": self.levels}


def save(model: VideoModel, path: str, info: dict | None = None):
    """Write weights + config atomically."""
    meta = {"config": json.dumps(model.config()), "info": json.dumps(info or {})}
    tmp = path + ".tmp"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp, metadata=meta)
    os.replace(tmp, path)


def load(path: str) -> tuple[VideoModel, bytes]:
    """Model and its 8-byte weights hash from a safetensors file."""
    if not os.path.exists(path):
        raise FlowcodecError(f"no weights at {path}")
    from safetensors import safe_open
    try:
        with safe_open(path, "pt") as f:
            config = json.loads((f.metadata() or {})["config"])
        model = VideoModel(**config)
        model.load_state_dict(load_file(path))
    except Exception as e:  # any malformed or mismatched file: one line, not a traceback
        msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise FlowcodecError(f"cannot load weights {path}: {msg}") from None
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).digest()[:8]
    return model.eval(), digest
