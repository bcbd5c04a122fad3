"""The shipped model: per motion approach, one variable-rate P-frame codec plus the learned intra codec,
the quality ladder, and how weights are stored (safetensors with the configuration in the metadata).

A model is identified in bitstreams by ``model_id`` ("<motion>-v<FORMAT>") and by the first 8 bytes of
the sha256 of its weights file, so a file never decodes silently with other weights. A motion set
(``--motion auto``, ``MotionSet``) holds every registered approach's P-frame codec: its id is
"auto-v<FORMAT>" and its hash the first 8 bytes of the sha256 of its members' hashes.
"""
import hashlib
import json
import os

import torch
from safetensors.torch import load_file, save_file

from ..errors import FlowcodecError
from ..motion import available
from .bitstream import MEMBERS, VERSION
from .inter import InterCodec
from .intra import IntraCodec
from .options import AUTO, QUALITIES

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "weights")
AUTO_INTRA = "pyramid"
"""The member whose learned intra codec a motion set uses."""


def weights_path(motion: str) -> str:
    return os.path.join(WEIGHTS_DIR, f"{motion}.safetensors")


def auto_members() -> list[str]:
    """The approaches of the motion set, in member order (a payload's member indexes this list)."""
    return available()


def model_id(motion: str) -> str:
    """The id a bitstream names its model by: the motion approach and the format version."""
    return f"{motion}-v{VERSION}"


def motion_of(model_id: str) -> str:
    """The motion approach of a bitstream's model id (the inverse of ``model_id``)."""
    return model_id.rsplit("-v", 1)[0]


class VideoModel(torch.nn.Module):
    """Everything the codec needs that has weights: ``inter`` (P-frames) and ``intra`` (learned I-frames).

    Every weights file carries both, so one hash identifies all the weights a bitstream depends on."""

    def __init__(self, motion: str = "pyramid", levels: int = QUALITIES, hyper: dict | None = None):
        super().__init__()
        self.motion_name = motion
        self.levels = levels
        self.inter = InterCodec(motion, levels, hyper)
        self.intra = IntraCodec(levels)

    @property
    def model_id(self) -> str:
        return model_id(self.motion_name)

    @property
    def choices(self) -> tuple:
        """The P-frame codecs a frame may use: this model's one (``MotionSet``: one per approach)."""
        return (self.inter,)

    @property
    def names(self) -> tuple:
        """The motion approach of each of ``choices``."""
        return (self.motion_name,)

    def config(self) -> dict:
        return {"motion": self.motion_name, "levels": self.levels, "hyper": self.inter.motion.hyper}


class MotionSet(torch.nn.Module):
    """``--motion auto``: the P-frame codecs of several approaches behind one stream. Each P-frame is
    coded by one member, named in its payload (``bitstream.payload_member``), and every member reads
    and advances the one decoder state, which holds what any of them needs (frames and decoded fields,
    flow first). Intra frames use ``AUTO_INTRA``'s learned codec. Members are in ``names`` order."""

    motion_name = AUTO

    def __init__(self, models: dict):
        super().__init__()
        if not 1 < len(models) <= MEMBERS or AUTO_INTRA not in models:
            raise ValueError(f"a motion set has 2..{MEMBERS} members, {AUTO_INTRA} among them")
        self.names = tuple(models)
        self.inters = torch.nn.ModuleList(m.inter for m in models.values())
        self.intra = models[AUTO_INTRA].intra
        self.levels = min(m.levels for m in models.values())

    @property
    def model_id(self) -> str:
        return model_id(AUTO)

    @property
    def choices(self) -> tuple:
        return tuple(self.inters)


def load_set(paths: dict) -> tuple[MotionSet, bytes]:
    """The motion set of the weights files ``paths`` (approach → file, in member order) and its hash."""
    models, digests = {}, []
    for name, path in paths.items():
        model, digest = load(path)
        if model.motion_name != name:
            raise FlowcodecError(f"weights {path} are for motion '{model.motion_name}', not '{name}'")
        models[name] = model
        digests.append(digest)
    return MotionSet(models).eval(), hashlib.sha256(b"".join(digests)).digest()[:8]


def save(model: VideoModel, path: str, info: dict | None = None):
    """Write weights + config atomically. The transforms' tensors are stored as float16 (half the size)
    and widened to float32 when loaded, so encoder and decoder compute with the same weights; the small
    factorized priors stay float32, since their probability tables are what the bits are coded with."""
    meta = {"config": json.dumps(model.config()), "info": json.dumps(info or {})}
    half = lambda k, v: v.is_floating_point() and ".prior." not in k
    state = {k: (v.half() if half(k, v) else v).detach().cpu().contiguous()
             for k, v in model.state_dict().items()}
    tmp = path + ".tmp"
    save_file(state, tmp, metadata=meta)
    os.replace(tmp, path)


def load(path: str) -> tuple[VideoModel, bytes]:
    """Model and its 8-byte weights hash from a safetensors file."""
    if not os.path.exists(path):
        raise FlowcodecError(f"no weights at {path}")
    from safetensors import safe_open
    try:
        with safe_open(path, "pt") as f:
            config = json.loads((f.metadata() or {})["config"])
        model = VideoModel(**{**config, "levels": max(config.get("levels", QUALITIES), QUALITIES)})
        model.load_state_dict(_widened(load_file(path), model))
    except Exception as e:  # any malformed or mismatched file: one line, not a traceback
        msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise FlowcodecError(f"cannot load weights {path}: {msg}") from None
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).digest()[:8]
    return model.eval(), digest


def load_part(model: VideoModel, path: str, prefix: str = "", matching: bool = False) -> tuple[list, list]:
    """Copy into ``model`` the tensors of a weights file whose names start with ``prefix`` (all by
    default); every copied name must exist in the model with the same shape. Used to start training
    from shipped weights, or to take the intra codec of one file into another.

    With ``matching``, a model with other parts starts from the file's: names the model lacks are left
    out, and a tensor no larger than the model's same-named one in every dimension fills its leading
    slice, the rest zero. That is meant for a transform's first or last layer with more channels: a
    feature-space module keeps the packed frame as its first 6 feature channels and a flow per group
    with group 0 first, so its residual and motion coders start as the file's pixel and flow coders.
    It applies to every same-named tensor that fits, though (for ``feature``, the pyramid's flow
    networks ``motion.levels.0-2`` seed its estimator's, whose inputs differ: a start, not a match);
    ``--init`` lists what it widened.
    Returns (names left out, names widened)."""
    state = {k: v for k, v in load_file(path).items() if k.startswith(prefix)}
    if not state:
        raise FlowcodecError(f"{path}: no tensors named {prefix}*")
    own = model.state_dict()
    state = _widened(state, model)
    unknown, widened = sorted(set(state) - set(own)), []
    if unknown and not matching:
        raise FlowcodecError(f"{path}: unknown tensors {', '.join(unknown[:3])}")
    for k in list(state):
        if k in unknown:
            state.pop(k)
        elif state[k].shape != own[k].shape:
            fits = state[k].dim() == own[k].dim() and all(a <= b for a, b in zip(state[k].shape, own[k].shape))
            if not (matching and fits):
                raise FlowcodecError(f"{path}: {k} is shaped {tuple(state[k].shape)}, "
                                     f"the model's {tuple(own[k].shape)}")
            widened.append(k)
            corner = torch.zeros_like(own[k])
            corner[tuple(slice(0, n) for n in state[k].shape)] = state[k]
            state[k] = corner
    model.load_state_dict(state, strict=False)
    return unknown, widened


def _widened(state: dict, model: VideoModel) -> dict:
    """``state`` with every per-level gain table that has fewer levels than ``model`` continued by
    ``widen_ladder``: a file trained on a shorter λ ladder loads into the current ladder, its own levels
    unchanged (so its bitstreams decode as before) and the finer levels extrapolated."""
    own = model.state_dict()
    return {k: widen_ladder(v, own[k].shape[0]) if k.endswith("gain") and k in own
            and v.shape[0] < own[k].shape[0] else v for k, v in state.items()}


def widen_ladder(table: torch.Tensor, levels: int) -> torch.Tensor:
    """A per-level gain table (levels, channels) of a model with fewer quality levels, continued to
    ``levels`` rows geometrically per channel (each new level repeats the last step's ratio), so that
    weights trained on a shorter λ ladder start new, finer levels where their trend points."""
    rows = list(table.float().abs().clamp_min(1e-4))
    while len(rows) < levels:
        rows.append(rows[-1] * rows[-1] / rows[-2])
    return torch.stack(rows).to(table.dtype)
