"""Tests of HEVC intra coding through x265: quality, deterministic decode, odd sizes, bad payloads."""
import numpy as np
import pytest

from flowcodec.codec.hevc import decode_intra, encode_intra
from flowcodec.errors import BitstreamError
from flowcodec.eval.metrics import psnr_yuv


def smooth_frame(width, height, seed=0):
    """A textured but compressible 4:2:0 test frame (gradients plus mild noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    y = 60 + 2 * xx + yy + rng.normal(0, 3, (height, width))
    ch, cw = (height + 1) // 2, (width + 1) // 2
    u = 110 + np.mgrid[0:ch, 0:cw][1] + rng.normal(0, 2, (ch, cw))
    v = 140 - np.mgrid[0:ch, 0:cw][0] + rng.normal(0, 2, (ch, cw))
    return tuple(np.clip(p, 0, 255).round().astype(np.uint8) for p in (y, u, v))


def test_decoded_frame_has_decent_psnr_and_decodes_identically():
    frame = smooth_frame(64, 48)
    payload = encode_intra(frame, 27)
    first, second = decode_intra(payload, 64, 48), decode_intra(payload, 64, 48)
    for a, b in zip(first, second):
        assert np.array_equal(a, b)
    assert psnr_yuv(frame, first)["yuv"] > 38
    assert b"\x00\x00\x01\x4e" not in payload and b"\x00\x00\x01\x50" not in payload  # no SEI NAL units


def test_odd_size_round_trip():
    frame = smooth_frame(65, 37)
    out = decode_intra(encode_intra(frame, 30), 65, 37)
    assert [p.shape for p in out] == [(37, 65), (19, 33), (19, 33)]
    assert psnr_yuv(frame, out)["yuv"] > 35


def test_even_size_66x38():
    frame = smooth_frame(66, 38)
    out = decode_intra(encode_intra(frame, 32), 66, 38)
    assert [p.shape for p in out] == [(38, 66), (19, 33), (19, 33)]


@pytest.mark.parametrize("width,height", [(1, 1), (2, 2), (3, 5), (1, 200), (15, 16), (200, 9)])
def test_tiny_frames_round_trip(width, height):
    """x265 refuses pictures under 16x16: they are coded padded and come back cropped, close to the source."""
    frame = smooth_frame(width, height, seed=width)
    payload = encode_intra(frame, 30)
    out = decode_intra(payload, width, height)
    chroma = ((height + 1) // 2, (width + 1) // 2)
    assert [p.shape for p in out] == [(height, width), chroma, chroma]
    assert all(p.flags.c_contiguous for p in out)
    assert psnr_yuv(frame, out)["yuv"] > 35
    with pytest.raises(BitstreamError):  # the decoder crops to the header's size, so it must match
        decode_intra(payload, 17, 17)


def test_garbage_payload_raises_bitstream_error():
    with pytest.raises(BitstreamError):
        decode_intra(bytes(range(256)) * 4, 64, 48)
    with pytest.raises(BitstreamError):
        decode_intra(b"", 64, 48)


def test_wrong_size_raises_bitstream_error():
    payload = encode_intra(smooth_frame(64, 48), 32)
    with pytest.raises(BitstreamError):
        decode_intra(payload, 32, 48)
