"""Pictures of what a bitstream does, from the decoder's side: ``flowcodec analyze IN.fcb --out DIR``.

For every inter frame: the decoded motion field as a colour wheel (hue = direction, saturation =
speed), the scale field where the motion approach has one, the global (camera) and local parts of the
field where it has a global model (``decomposed``), the offsets of the deformable alignment beside the
decoded flow where compensation is in feature space (``feature``, ``pixel_to_feature``), the
motion-compensated prediction and,
given the source, its error; and a bit-allocation map of the motion and residual latents. For the
whole stream: a per-frame bar chart of the bits of each sub-stream (HEVC or learned intra, motion,
residual, global motion). ``DIR/index.html`` shows it all.

The bit-allocation map is the code length -log2 p of each decoded latent under the entropy model that
coded it (the Gaussian scale snapped to the coder's table, as the range coder uses it), summed over
channels at each latent position (16x16 luma pixels). It is measured while decoding, so it needs no
source; it leaves out the hyper-latents, which are listed per frame as a total, and the range coder's
few bytes of overhead, so its sum is compared with the coded size in the table.
"""
import html
import os

import numpy as np

from ..codec.bitstream import STREAMS, FrameType, stream_sizes
from ..codec.decoder import SequenceDecoder
from ..frames import to_frame
from ..codec.inter import MODES, TAGS
from ..entropy.coder import Decode, factorized_bits, gaussian_bits
from ..errors import FlowcodecError
from ..layers.exact import exact
from ..io import open_video, to_8bit
from ..motion.decomposed import global_field
from .metrics import psnr_yuv, yuv420_to_rgb


class _Measure(Decode):
    """A Decode that also keeps, per latent group, the code length of every decoded symbol:
    ``maps[tag]`` bits per latent position (y, summed over channels), ``side[tag]`` bits of z; and the
    block modes (``mode_map``). Latents a block's mode leaves uncoded count 0 bits."""

    def __init__(self, tags, payloads):
        super().__init__(tags, payloads)
        self.maps, self.side, self.mode_map, self.params = {}, {}, None, None

    def integers(self, values, scales, tag):
        self.params = super().integers(values, scales, tag)  # a module's side parameters (global motion)
        return self.params

    def modes(self, shape, n):
        self.mode_map = super().modes(shape, n)
        return self.mode_map

    def factorized(self, prior, z, tag, shape, keep=None):
        z_hat = super().factorized(prior, z, tag, shape, keep)
        self.side[tag] = float(factorized_bits(prior, z_hat, keep).sum())
        return z_hat

    def gaussian(self, cond, y, mu, sigma, tag, keep=None):
        y_hat = super().gaussian(cond, y, mu, sigma, tag, keep)
        self.maps[tag] = gaussian_bits(cond, y_hat, mu, sigma, keep)[0].sum(0).numpy()
        return y_hat


class _Decoder(SequenceDecoder):
    coder = _Measure


def flow_to_rgb(flow, top=None):
    """Colour-wheel picture of a (2, H, W) flow in pixels: hue = direction, saturation = speed
    relative to `top` (default: the largest speed in the field). Returns (H, W, 3) floats and `top`."""
    from matplotlib.colors import hsv_to_rgb
    fx, fy = flow
    speed = np.hypot(fx, fy)
    top = top or max(float(speed.max()), 1e-6)
    hue = (np.arctan2(fy, fx) / (2 * np.pi)) % 1.0
    hsv = np.stack([hue, np.clip(speed / top, 0, 1), np.ones_like(hue)], axis=-1)
    return hsv_to_rgb(hsv), top


def _wheel(path, size=96):
    """The colour-wheel legend: a disc whose rim is speed `top` in each direction."""
    r = np.linspace(-1, 1, size)
    fx, fy = np.meshgrid(r, r)
    rgb, _ = flow_to_rgb(np.stack([fx, fy]), top=1.0)
    rgb[np.hypot(fx, fy) > 1] = 1.0
    _save_image(path, rgb)


def _save_image(path, rgb):
    import matplotlib.pyplot as plt
    plt.imsave(path, np.clip(rgb, 0, 1))


def _figures():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _heat(path, panels, size):
    """Side-by-side heat maps with colour bars; panels: [(title, array, cmap)], drawn over the frame
    area `size` = (width, height) whatever the array's resolution."""
    plt = _figures()
    w, h = size
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6 * h / w + 0.6), squeeze=False)
    for ax, (title, data, cmap) in zip(axes[0], panels):
        im = ax.imshow(data, cmap=cmap, interpolation="nearest", extent=(0, w, h, 0))
        ax.set_title(title, fontsize=9)
        ax.axis("off")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _bar_chart(path, rows):
    """Stacked per-frame bits: intra payload, motion and residual sub-streams."""
    plt = _figures()
    idx = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.12 * len(rows) + 2), 3.5))
    bottom = np.zeros(len(rows))
    for key in ("hevc", *STREAMS):
        bits = np.array([8 * r["rate"].get(f"{key}_bytes", 0) for r in rows], float)
        ax.bar(idx, bits, bottom=bottom, label=key, width=0.8)
        bottom += bits
    ax.set(xlabel="frame", ylabel="bits", title="bits per frame (payload sub-streams)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _psnr(source, frame):
    return f"{psnr_yuv(source, frame)['yuv']:.2f}" if source is not None else "-"


def _frame_images(out, i, dec, frame_src, size):
    """Write the PNGs of inter frame i from the decoder's last state; return {kind: file} and numbers."""
    coder, pred, field, member = dec.last
    w, h = size
    field = field[0, :, :h, :w].numpy()
    pred_frame = to_frame(pred, w, h)
    files = {"flow": f"flow_{i:04d}.png", "pred": f"pred_{i:04d}.png", "bits": f"bits_{i:04d}.png"}
    rgb, top = flow_to_rgb(field[:2])
    _save_image(os.path.join(out, files["flow"]), rgb)
    _save_image(os.path.join(out, files["pred"]), yuv420_to_rgb(pred_frame).transpose(1, 2, 0))
    _heat(os.path.join(out, files["bits"]),
          [(f"{tag} bits per latent ({coder.maps[tag].sum():.0f} + z {coder.side[tag]:.0f})",
            coder.maps[tag], "magma") for tag in TAGS]
          + [("block modes: " + ", ".join(f"{k} {m}" for k, m in enumerate(MODES)), coder.mode_map[0, 0].numpy(),
              "viridis")], size)
    if coder.params is not None:  # decomposed: the global (camera) field and the local rest, one scale
        files["global"] = f"global_{i:04d}.png"
        camera = global_field(coder.params, field.shape[-2:], size)[0].numpy()
        rgb = [flow_to_rgb(f, top)[0] for f in (camera, field[:2] - camera)]
        gap = np.ones_like(rgb[0][:, :4])
        _save_image(os.path.join(out, files["global"]), np.concatenate((rgb[0], gap, rgb[1]), 1))
    motion = dec.model.choices[member].motion
    if motion.space == "features":  # each group's offsets, averaged over its taps, in luma pixels
        files["offsets"] = f"offsets_{i:04d}.png"
        with exact():
            offsets = motion.offsets(motion.extract(dec.state.frames[1]), dec.last[2])[0]
        groups = (2 * offsets[0].mean(1)).repeat_interleave(2, -1).repeat_interleave(2, -2)[..., :h, :w]
        rgb = [flow_to_rgb(f, top)[0] for f in [field[:2]] + list(groups.numpy())]
        gap = np.ones_like(rgb[0][:, :4])
        _save_image(os.path.join(out, files["offsets"]), np.concatenate(sum(([r, gap] for r in rgb), [])[:-1], 1))
    elif field.shape[0] > 2:
        files["scale"] = f"scale_{i:04d}.png"
        _heat(os.path.join(out, files["scale"]), [("scale field", field[2], "viridis")], size)
    if frame_src is not None:
        files["error"] = f"error_{i:04d}.png"
        err = np.abs(frame_src[0].astype(np.float64) - pred_frame[0])
        _heat(os.path.join(out, files["error"]), [("|source - prediction|, luma", err, "inferno")], size)
    estimate = {tag: coder.maps[tag].sum() + coder.side[tag] for tag in TAGS}
    return files, {"top": top, "estimate": estimate, "pred_psnr": _psnr(frame_src, pred_frame),
                   "motion": dec.model.names[member]}


def analyze(reader, model, out, source=None):
    """Decode the stream of `reader` (bound to `model`) and write PNGs and index.html into `out`."""
    h = reader.header
    size = (h.width, h.height)
    os.makedirs(out, exist_ok=True)
    src = open_video(source) if source else None
    if src is not None and (src.info.width, src.info.height) != size:
        src.close()
        raise FlowcodecError(f"source is {src.info.width}x{src.info.height}, "
                             f"the bitstream {h.width}x{h.height}")
    dec = _Decoder.for_header(model, h)
    rows = []
    try:
        for i, (ftype, payload, quality) in enumerate(reader):
            frame = dec.decode(ftype, payload, quality)
            frame_src = None
            if src is not None:
                frame_src = next(src, None)
                if frame_src is None:
                    raise FlowcodecError(f"source has only {i} frames, the bitstream more")
                frame_src = to_8bit(frame_src, src.info.bitdepth)
            rate = {"type": ftype.name, "quality": quality, "bytes": len(payload),
                    **{f"{tag}_bytes": n for tag, n in stream_sizes(ftype, payload).items()}}
            row = {"i": i, "rate": rate, "psnr": _psnr(frame_src, frame)}
            if ftype == FrameType.INTER:
                row["files"], row["info"] = _frame_images(out, i, dec, frame_src, size)
            rows.append(row)
    finally:
        if src is not None:
            src.close()
    _bar_chart(os.path.join(out, "bits.png"), rows)
    _wheel(os.path.join(out, "wheel.png"))
    with open(os.path.join(out, "index.html"), "w") as f:
        f.write(_page(h, rows, source))


_COLUMNS = {"flow": "flow", "global": "global | local motion",
            "offsets": "decoded flow | each group's alignment offsets", "scale": "scale field", "pred": "prediction",
            "error": "prediction error", "bits": "bits"}


def _page(h, rows, source):
    """index.html: the stream, the bits chart, then one table row per frame with its pictures."""
    kinds = [k for k in _COLUMNS if any(k in r.get("files", {}) for r in rows)]
    total = sum(r["rate"]["bytes"] for r in rows)
    bpp = 8 * total / (h.width * h.height * max(len(rows), 1))
    cells = []
    for r in rows:
        rate, files, info = r["rate"], r.get("files", {}), r.get("info")
        text = f"<b>{r['i']}</b> {rate['type']}<br>quality {rate['quality']:g}<br>{rate['bytes']} B"
        if info:
            text += f"<br>motion {info['motion']}"
            text += "".join(f"<br>{tag} {rate[tag + '_bytes']} B (est. {info['estimate'][tag] / 8:.0f})"
                            for tag in TAGS)
            if "global_bytes" in rate:
                text += f"<br>global {rate['global_bytes']} B"
            text += f"<br>flow rim {info['top']:.2f} px<br>prediction PSNR {info['pred_psnr']}"
        text += f"<br>PSNR-YUV {r['psnr']}"
        images = "".join(f'<td><img src="{files[k]}"></td>' if k in files else "<td></td>" for k in kinds)
        cells.append(f"<tr><td>{text}</td>{images}</tr>")
    src = html.escape(source) if source else "not given (no prediction error, no PSNR)"
    return f"""<!doctype html><meta charset="utf-8"><title>flowcodec analyze</title>
<style>body{{font:13px sans-serif}} td{{vertical-align:top;padding:3px}} img{{max-width:300px}}</style>
<h2>flowcodec bitstream analysis</h2>
<p>model {html.escape(h.model_id)}, {h.width}x{h.height}, quality {h.quality_text}, intra period
{h.intra_period}, {len(rows)} frames, {total} payload bytes ({bpp:.4f} bpp without container).
Source: {src}.</p>
<p><img src="bits.png"></p>
<p>Flow: hue = direction from each pixel to where it is fetched in the reference, saturation = speed
(full at the "flow rim" speed of each frame) <img src="wheel.png" style="vertical-align:middle">.
Bit maps: -log2 p of each decoded latent under its entropy model, summed over channels (one cell = 16x16
luma pixels); "est." is that sum plus the hyper-latents, against the coded size.</p>
<table><tr><th>frame</th>{"".join(f"<th>{_COLUMNS[k]}</th>" for k in kinds)}</tr>
{chr(10).join(cells)}
</table>
"""
