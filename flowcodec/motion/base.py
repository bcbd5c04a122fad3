"""The contract between the P-frame codec and a motion approach, the decoder state they share, and the
registry of approaches.

Decoder state (``DecodedPictures``, a decoded picture buffer like DCVC's ``dpb``): the last ``DEPTH``
decoded frames, newest first, each with its decoded motion field (None for an intra frame); in a
monochrome stream every stored frame's chroma is exactly gray. Encoder,
decoder and training build it
through the same two calls — ``DecodedPictures.intra(frame, size)`` at every intra frame and
``state.push(frame, field)`` after every P-frame — so the encoder's references are the decoder's and
training sees the same 8-bit references (rounded straight-through). It is immutable: a P-frame call
takes a state and returns a new one, so the encoder's trial pass (block modes) cannot advance it.

A motion module (a subclass of ``MotionModel``, registered with ``@register("name")``) declares:

* ``channels``: channels of the coded motion field (2 for flow, 3 with a scale field);
* ``references``: how many decoded frames it reads at most (1 … ``DEPTH``); right after an intra
  frame the state holds fewer, and the module must fall back to what is there;
* ``estimate(cur, state)``: the field to code, from the current frame and the state (encoder only:
  the decoder has no current frame and never calls it);
* ``compensate(state, field)``: the prediction of the current frame from the state and the decoded
  field (decoder side, shared with the encoder); zero motion must return the newest reference (for a
  feature-space module, when freshly built, up to its small initial corrections);
* how its motion is coded, conditioned on the state: ``predictors`` motion predictors, of which
  ``usable(state)`` (at least 1) can run on a given state; ``predict(state, k, coder, estimate)`` is
  predictor k's prediction of the field (predictor 0 is "none", None). The codec codes the difference
  between the estimated field and the prediction, and the chosen k per frame (when more than one is
  usable; the encoder picks the k of lowest R + λ·D). A prediction may also rest on side parameters
  the module codes itself, through ``coder``, in sub-streams of its own that it names in ``streams``
  (e.g. the global camera motion of ``decomposed``); ``estimate`` is the encoder's field and ``cur`` the
  current frame, both None when decoding, when nothing encoder-only may run;
* ``space``: where it predicts, "pixels" (default) or "features". A pixel-space module's prediction
  goes through the codec's refinement network and the residual is coded in pixels. A feature-space
  module (``deform.FeatureMotion``, approaches 3 and 7) declares ``features_width`` channels and
  ``extract(frame)`` (packed frame → features) and ``reconstruct(features)`` (→ packed frame);
  its ``compensate`` returns the prediction's features, the codec codes the residual between the current
  frame's features and those, and ``reconstruct`` returns the decoded frame. For pixel space both are
  the identity and ``features_width`` is 6, so the codec's one path serves both;
* ``penalty(cur, state, field)``: a training-only regulariser of the decoded field per sample (e.g.
  smoothness), added to the joint loss; 0 by default;
* ``hyper``: its hyperparameters and their defaults. A module is built with any of them overridden
  (``create(name, **hyper)``) and keeps the values in ``self.hyper``; the weights file stores them in its
  config, so a model decodes with the values it was trained with. Files written before the config held
  them (the shipped pyramid, scale_space, temporal and higher_order files) are built with the defaults:
  a default that decoding depends on (e.g. ``temporal``'s ``step``) is therefore part of those files'
  format and must not change.

``create`` checks the declaration when a module is built, so a module that breaks the contract fails
at once with a clear message, not inside a coding run (as torchvision's RAFT checks its parts).

Frames are packed YUV 4:2:0 tensors (see ``flowcodec.frames``); fields are at luma resolution,
in luma pixel units at every scale (never normalised by the frame size, so a model trained on crops
behaves the same on full frames).
"""
from dataclasses import dataclass

import torch
import torch.nn as nn

from ..frames import neutral_chroma, quantize_frame, repad

DEPTH = 3  # decoded frames the state keeps (higher-order motion reads three)

_REGISTRY: dict[str, type] = {}


@dataclass(frozen=True)
class DecodedPictures:
    """Decoder state: ``frames`` (packed, padded, 8-bit values k/255, newest first), ``motion`` (the
    decoded field of each, None for intra frames) and ``size``, the visible (width, height) from which the padding is replicated (None: all of the
    tensor is visible, as for training crops)."""

    frames: tuple = ()
    motion: tuple = ()
    size: tuple | None = None
    mono: bool = False

    @classmethod
    def intra(cls, frame: torch.Tensor, size: tuple | None = None, mono: bool = False) -> "DecodedPictures":
        """The state after an intra frame: that frame alone (every intra frame starts anew)."""
        return cls(size=size, mono=mono).push(frame)

    @property
    def ref(self) -> torch.Tensor:
        """The newest decoded frame."""
        return self.frames[0]

    def stored(self, frame: torch.Tensor) -> torch.Tensor:
        """``frame`` as this state stores a decoded frame: rounded to 8 bits, re-padded, and with gray
        chroma in a monochrome stream."""
        frame = quantize_frame(frame)
        if self.mono:
            frame = neutral_chroma(frame)
        return frame if self.size is None else repad(frame, *self.size)

    def push(self, frame: torch.Tensor, motion: torch.Tensor | None = None) -> "DecodedPictures":
        """A new state whose newest reference is ``frame`` as stored (``stored``)."""
        return DecodedPictures((self.stored(frame),) + self.frames[:DEPTH - 1],
                               (motion,) + self.motion[:DEPTH - 1], self.size, self.mono)

    def known_motion(self) -> int:
        """How many of the newest frames have decoded motion in a row (0 right after an intra frame)."""
        known = 0
        for motion in self.motion:
            if motion is None:
                break
            known += 1
        return known


class MotionModel(nn.Module):
    """Base of the motion approaches; see the module docstring for the contract."""

    channels = 2
    references = 1
    predictors = 1
    streams = ()  # sub-streams the module codes itself, after the codec's own
    space = "pixels"
    features_width = 6  # channels of what compensate returns (the packed frame's in pixel space)
    hyper: dict = {}

    def __init__(self, **hyper):
        super().__init__()
        unknown = sorted(set(hyper) - set(self.hyper))
        if unknown:
            raise TypeError(f"{type(self).__name__} has no hyperparameter {', '.join(unknown)}")
        self.hyper = {**type(self).hyper, **hyper}

    def estimate(self, cur: torch.Tensor, state: DecodedPictures) -> torch.Tensor:
        raise NotImplementedError

    def compensate(self, state: DecodedPictures, field: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def extract(self, frame: torch.Tensor) -> torch.Tensor:
        """Packed frame → the space the module predicts in (pixel space: the frame itself)."""
        return frame

    def reconstruct(self, features: torch.Tensor) -> torch.Tensor:
        """That space → packed frame (pixel space: the identity)."""
        return features

    def usable(self, state: DecodedPictures) -> int:
        """How many of the predictors (0 … n-1) this state supports; 1 means only "none"."""
        return 1

    def predict(self, state: DecodedPictures, k: int, coder=None, estimate=None, cur=None) -> torch.Tensor | None:
        """Predictor k's prediction of the field; None (no prediction) for k = 0."""
        return None

    def penalty(self, cur: torch.Tensor, state: DecodedPictures, field: torch.Tensor):
        """Training-only regulariser of the decoded ``field`` per sample (B,); none by default."""
        return 0.0


def register(name: str):
    def wrap(cls):
        cls.name = name
        _REGISTRY[name] = cls
        return cls
    return wrap


def available() -> list[str]:
    return sorted(_REGISTRY)


def check(module: MotionModel) -> MotionModel:
    """Refuse a module that does not declare the contract (a programming error: TypeError)."""
    name = type(module).__name__
    if not isinstance(module, MotionModel):
        raise TypeError(f"{name} is not a MotionModel")
    if not (isinstance(module.channels, int) and module.channels >= 2):
        raise TypeError(f"{name}.channels must be an int >= 2 (flow x, y first), not {module.channels!r}")
    if not (isinstance(module.references, int) and 1 <= module.references <= DEPTH):
        raise TypeError(f"{name}.references must be 1..{DEPTH}, not {module.references!r}")
    if not (isinstance(module.predictors, int) and module.predictors >= 1):
        raise TypeError(f"{name}.predictors must be an int >= 1, not {module.predictors!r}")
    if not (isinstance(module.streams, tuple) and all(isinstance(t, str) for t in module.streams)):
        raise TypeError(f"{name}.streams must be a tuple of sub-stream names, not {module.streams!r}")
    if module.space not in ("pixels", "features"):
        raise TypeError(f"{name}.space must be 'pixels' or 'features', not {module.space!r}")
    width = module.features_width
    if not (isinstance(width, int) and (width == 6 if module.space == "pixels" else width >= 6)):
        raise TypeError(f"{name}.features_width must be 6 in pixel space and an int >= 6 in feature space, "
                        f"not {width!r}")
    feature = ("extract", "reconstruct") if module.space == "features" else ()
    for method in ("estimate", "compensate") + feature + (("usable", "predict") if module.predictors > 1 else ()):
        if getattr(type(module), method) is getattr(MotionModel, method):
            raise TypeError(f"{name} does not implement {method}()")
    return module


def require(name: str):
    """FlowcodecError (one line, naming the choices) unless ``name`` is a registered motion approach."""
    if name not in _REGISTRY:
        from ..errors import FlowcodecError
        raise FlowcodecError(f"unknown motion approach '{name}' (available: {', '.join(available())})")


def create(name: str, **kwargs) -> MotionModel:
    require(name)
    return check(_REGISTRY[name](**kwargs))
