"""The motion interface every approach implements, and the registry.

A motion approach answers three questions for the P-frame codec:
* ``channels``: how many channels the coded motion field has (2 for flow, 3 with a scale field);
* ``estimate(cur, ref)``: the field to code (encoder only; never called by the decoder);
* ``compensate(ref, field)``: the prediction of the current frame from the decoded reference and the
  decoded field (decoder side, shared with the encoder).

Frames are packed YUV 4:2:0 tensors (see ``flowcodec.frames``); fields are at luma resolution,
in luma pixel units at every scale (never normalised by the frame size, so a model trained on crops
behaves the same on full frames).
"""
import torch.nn as nn

_REGISTRY: dict[str, type] = {}


class MotionModel(nn.Module):
    channels = 2

    def estimate(self, cur, ref):
        raise NotImplementedError

    def compensate(self, ref, field):
        raise NotImplementedError


def register(name: str):
    def wrap(cls):
        cls.name = name
        _REGISTRY[name] = cls
        return cls
    return wrap


def available() -> list[str]:
    return sorted(_REGISTRY)


def create(name: str, **kwargs) -> MotionModel:
    if name not in _REGISTRY:
        from ..errors import FlowcodecError
        raise FlowcodecError(f"unknown motion approach '{name}' (available: {', '.join(available())})")
    return _REGISTRY[name](**kwargs)
