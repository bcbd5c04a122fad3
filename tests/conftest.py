"""Shared fixtures for the codec tests: random (untrained) weights, small synthetic clips, and ways to
run the command line (in a subprocess, as a user would, or in-process where only speed differs).

Everything is generated here: CI has no downloaded data and no trained weights.
"""
import contextlib
import io
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

# The tensors in these tests are tiny: extra intra-op threads only add overhead, and on a busy 2-core
# machine they make in-process tests several times slower. CLI calls here pass --threads 1 as well.
torch.set_num_threads(1)

CLI = [sys.executable, "-m", "flowcodec.cli"]
TIMEOUT_S = 60


def make_weights(path, seed=0, motion="pyramid"):
    """Save an untrained VideoModel built from ``torch.manual_seed(seed)``; return the path."""
    from flowcodec.codec.model import VideoModel, save
    torch.manual_seed(seed)
    save(VideoModel(motion), os.fspath(path))
    return os.fspath(path)


@pytest.fixture(scope="session")
def weights(tmp_path_factory):
    """Random pyramid weights (seed 0), to pass to the CLI with --weights."""
    return make_weights(tmp_path_factory.mktemp("weights") / "pyramid_seed0.safetensors", seed=0)


@pytest.fixture(scope="session")
def other_weights(tmp_path_factory):
    """A second random weights file (seed 1): same model id, different weights hash."""
    return make_weights(tmp_path_factory.mktemp("weights") / "pyramid_seed1.safetensors", seed=1)


def clip_frames(w, h, n, seed=0):
    """n 8-bit 4:2:0 frames (y, u, v) of a smoothly moving texture; different seeds, different clips."""
    rng = np.random.default_rng(seed)
    ph = rng.uniform(0, 2 * np.pi, 6)
    vx, vy = rng.uniform(-1.5, 1.5, 2)
    frames = []
    for t in range(n):
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
        x, y = xs - vx * t, ys - vy * t
        luma = (128 + 45 * np.sin(x / 4.3 + ph[0]) * np.cos(y / 6.1 + ph[1])
                + 30 * np.sin((x + y) / 9.7 + ph[2]) + 15 * np.cos(x / 2.1 - y / 3.3 + ph[3]))
        cx, cy = x[::2, ::2] / 2, y[::2, ::2] / 2
        u = 128 + 35 * np.sin(cx / 5.0 + ph[4]) * np.cos(cy / 4.0)
        v = 128 + 35 * np.cos(cx / 3.0 - cy / 6.0 + ph[5])
        frames.append(tuple(np.clip(np.round(p), 0, 255).astype(np.uint8) for p in (luma, u, v)))
    return frames


def make_y4m(path, w, h, n, seed=0):
    """Write a w x h, n-frame 8-bit 4:2:0 y4m of ``clip_frames``; return the path (str)."""
    from flowcodec.io import VideoInfo, Y4MWriter
    with open(path, "wb") as f:
        writer = Y4MWriter(f, VideoInfo(w, h, 25, 1))
        for frame in clip_frames(w, h, n, seed):
            writer.write(frame)
        writer.close()
    return os.fspath(path)


def run_cli(*args, input=None, timeout=TIMEOUT_S):
    """``python -m flowcodec.cli ARGS`` in a subprocess; CompletedProcess with bytes stdout/stderr."""
    return subprocess.run(CLI + [os.fspath(a) for a in args], input=input, capture_output=True,
                          timeout=timeout)


class _Timeout(Exception):
    pass


@contextlib.contextmanager
def _deadline(seconds):
    """Raise _Timeout in the main thread after ``seconds`` (SIGALRM; a no-op where unavailable)."""
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def fire(*_):
        raise _Timeout(f"flowcodec did not finish within {seconds} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def cli_inproc(*args, timeout=TIMEOUT_S):
    """``flowcodec.cli.main(ARGS)`` in this process: (exit code, stdout, stderr).

    For the many cases where only the command's behaviour matters, not the process boundary (each
    subprocess pays ~3 s of torch start-up). An exception escaping main() fails the test, which is
    what a traceback would be for a user. Not for '-' (stdin/stdout) arguments.
    """
    from flowcodec.cli import main
    out, err = io.StringIO(), io.StringIO()
    threads = torch.get_num_threads()  # main() sets the process-wide count from --threads
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), _deadline(timeout):
            try:
                rc = main([os.fspath(a) for a in args])
            except SystemExit as e:  # argparse usage errors
                rc = e.code
    finally:
        torch.set_num_threads(threads)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(name="make_y4m")
def make_y4m_fixture():
    return make_y4m


@pytest.fixture(name="run_cli")
def run_cli_fixture():
    return run_cli


@pytest.fixture(name="cli")
def cli_fixture():
    return cli_inproc


def read_y4m(path):
    """All frames of a y4m file as a list of (y, u, v)."""
    from flowcodec.io import Y4MReader
    with Y4MReader(path) as r:
        return list(r)
