"""The Python interface (``flowcodec.Encoder`` / ``flowcodec.Decoder``): the CLI's streams and errors."""
import os

import numpy as np
import pytest

import flowcodec
from conftest import clip_frames, run_cli, read_y4m


def test_encoder_decoder_round_trip_matches_the_cli(tmp_path, weights):
    """Frames pushed through Encoder come back from Decoder as the encoder's reconstructions, and the
    CLI decodes the same file to the same frames."""
    frames = clip_frames(70, 38, 3, seed=4)
    path = tmp_path / "api.fcb"
    with flowcodec.Encoder(path, 70, 38, quality=2, weights=weights, adaptive_intra=False, threads=1) as enc:
        recons = [enc.encode(f) for f in frames]
    assert enc.frames == 3 and enc.bytes_written == os.path.getsize(path)
    with flowcodec.Decoder(str(path), weights=weights) as dec:
        assert (dec.header.width, dec.header.height, dec.header.quality, dec.motion) == (70, 38, 2, "pyramid")
        decoded = list(dec)
    assert len(decoded) == 3
    for a, b in zip(recons, decoded):
        assert all(np.array_equal(p, q) for p, q in zip(a, b))
    p = run_cli("decode", path, "-o", tmp_path / "cli.y4m", "--weights", weights, "-q")
    assert p.returncode == 0, p.stderr
    for a, b in zip(read_y4m(str(tmp_path / "cli.y4m")), decoded):
        assert all(np.array_equal(p, q) for p, q in zip(a, b))


def test_api_writes_the_cli_stream_of_the_bundled_clip(tmp_path):
    """The shipped weights, the bundled clip: the stream Encoder writes is the CLI's, byte for byte, and
    Decoder returns the CLI's decoded frames."""
    from flowcodec.io import BUNDLED_CLIP, open_video
    clip = BUNDLED_CLIP
    p = run_cli("encode", clip, "-o", tmp_path / "cli.fcb", "--frames", "3", "--quality", "5", "--threads", "1", "-q")
    assert p.returncode == 0, p.stderr
    with open_video(clip, frames=3) as src:
        fps = (src.info.fps_num, src.info.fps_den)
        frames = list(src)
    with flowcodec.Encoder(tmp_path / "api.fcb", 192, 144, fps=fps, quality=5, threads=1) as enc:
        for frame in frames:
            enc.encode(frame)
    assert (tmp_path / "api.fcb").read_bytes() == (tmp_path / "cli.fcb").read_bytes()
    p = run_cli("decode", tmp_path / "cli.fcb", "-o", tmp_path / "cli.y4m", "-q")
    assert p.returncode == 0, p.stderr
    with flowcodec.Decoder(tmp_path / "api.fcb") as dec:
        for a, b in zip(dec, read_y4m(str(tmp_path / "cli.y4m")), strict=True):
            assert all(np.array_equal(p, q) for p, q in zip(a, b))


def test_errors_are_flowcodec_errors_and_leave_no_file(tmp_path, weights):
    path = tmp_path / "bad.fcb"
    with pytest.raises(flowcodec.FlowcodecError, match="quality"):
        flowcodec.Encoder(path, 64, 48, quality=0, weights=weights)
    with pytest.raises(flowcodec.FlowcodecError, match="preset"):
        flowcodec.Encoder(path, 64, 48, preset="placebo", weights=weights)
    with pytest.raises(flowcodec.FlowcodecError, match="uint8 planes"):
        with flowcodec.Encoder(path, 64, 48, weights=weights) as enc:
            enc.encode(clip_frames(64, 48, 2)[0] + (None,))
    with pytest.raises(flowcodec.FlowcodecError, match="no frames"):
        with flowcodec.Encoder(path, 64, 48, weights=weights):
            pass
    assert os.listdir(tmp_path) == []  # neither a stream nor a temporary file
    (tmp_path / "junk.fcb").write_bytes(b"not a stream at all")
    with pytest.raises(flowcodec.BitstreamError):
        flowcodec.Decoder(tmp_path / "junk.fcb", weights=weights)
