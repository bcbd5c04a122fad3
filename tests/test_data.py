"""Rendered training clips: the ground-truth flow and occlusion masks must be right."""
import numpy as np
import torch

from flowcodec.frames import unpack
from flowcodec.motion.warp import warp
from flowcodec.train.data import HELD_OUT, PLASMA, PLASMA_PHOTOS, photo_name, render_clip, synthetic_picture


def _photo(seed, h=300, w=300):
    """A smooth random YUV 4:4:4 'photo' (uint8, (3,H,W)) with texture at several scales."""
    rng = np.random.default_rng(seed)
    img = np.zeros((3, h, w))
    for cell in (40, 12, 4):
        coarse = rng.random((3, h // cell + 2, w // cell + 2))
        img += np.kron(coarse, np.ones((cell, cell)))[:, :h, :w]
    img = torch.nn.functional.avg_pool2d(torch.from_numpy(img)[None], 5, 1, 2)[0].numpy()
    return (img / img.max() * 235).astype(np.uint8)


def test_ground_truth_flow_predicts_visible_pixels():
    checked = {"moving": 0, "occluded": 0}
    for seed in range(3):
        rng = np.random.default_rng(seed)
        frames, flows, occluded = render_clip(_photo(seed), _photo(seed + 10), 3, 96, rng)
        assert frames.shape == (3, 6, 48, 48) and flows.shape == (2, 2, 96, 96)
        for t in (1, 2):
            prev, cur = unpack(frames[t - 1:t])[0], unpack(frames[t:t + 1])[0]
            err = (warp(prev, flows[t - 1:t]) - cur).abs()[0, 0]
            visible = ~occluded[t - 1]
            moving = visible & (flows[t - 1].norm(dim=0) > 0.5)
            if moving.any():  # noise (≤ 0.01) and a lighting drift remain; the flow explains the motion
                assert err[moving].mean() < 0.5 * (prev - cur).abs()[0, 0][moving].mean()
                checked["moving"] += 1
            assert err[visible].mean() < 0.03
            if occluded[t - 1].any():
                assert err[occluded[t - 1]].mean() > err[visible].mean()
                checked["occluded"] += 1
    assert checked["moving"] >= 3 and checked["occluded"] >= 3, checked  # the conditions above did run


def test_rendering_is_deterministic_given_the_rng():
    a = render_clip(_photo(1), _photo(2), 2, 64, np.random.default_rng(7))
    b = render_clip(_photo(1), _photo(2), 2, 64, np.random.default_rng(7))
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_some_clips_have_a_still_camera():
    """A share of rendered clips keep the background still (zero flow outside the moving layer), so the
    codec learns that unchanged regions should cost nothing."""
    still = 0
    for seed in range(16):
        _, flows, _ = render_clip(_photo(1), _photo(2), 3, 64, np.random.default_rng(seed))
        zero = (flows.norm(dim=1) == 0).float().mean().item()
        still += zero > 0.3
    assert 1 <= still <= 12


def test_some_clips_have_a_fast_camera():
    """A share of rendered clips pan fast (FAST_SHARE): the median flow exceeds 12 pixels per frame in
    8 of these 64 clips (2 without the fast share), and most stay below it."""
    fast = 0
    for seed in range(64):
        _, flows, _ = render_clip(_photo(1, 500, 500), _photo(2), 2, 64, np.random.default_rng(seed))
        fast += flows.norm(dim=1).median().item() > 12
    assert 5 <= fast <= 32, fast


def test_synthetic_pictures_cover_flat_hard_edged_and_striped_content():
    """Each synthetic picture is a valid YUV 4:4:4 picture, fixed by its rng; among a dozen there are
    flat ones (small luma gradients nearly everywhere) and detailed ones (hard edges or stripes)."""
    pics = [synthetic_picture(np.random.default_rng([12, k]), 256, 192) for k in range(12)]
    assert all(p.shape == (3, 192, 256) and p.dtype == np.uint8 for p in pics)
    assert np.array_equal(pics[0], synthetic_picture(np.random.default_rng([12, 0]), 256, 192))
    steep = [np.mean(np.abs(np.diff(p[0].astype(int), axis=1)) > 8) for p in pics]
    assert min(steep) < 0.001 and max(steep) > 0.02, steep


def test_photo_names_are_unique_per_wallpaper():
    """Plasma ships every wallpaper as images/2560x1600.jpg: the name is the wallpaper's folder."""
    assert photo_name("src/" + PLASMA.format("Kite")) == "Kite.jpg"
    assert photo_name("src/mate-backgrounds/usr/share/backgrounds/mate/nature/Wood.jpg") == "Wood.jpg"
    assert not set(HELD_OUT) & set(PLASMA_PHOTOS)  # the robustness benchmark's pictures stay unseen
