"""The README's everyday commands ("## Use") run as written on the bundled clip, the shipped weights.

Placeholders become real files made from the bundled clip's first frames (in.y4m, clip.yuv, any.mp4,
clip.mp4), ``flowcodec`` and ``ffmpeg`` the installed CLI and the bundled ffmpeg binary; an option in
brackets is optional and left out, except ``--recon``, which lets the test check the decode line's
claim: decoded.y4m equals recon.y4m byte for byte. The commands run in README order in one folder, as a
user would type them (the decode line reads what the encode line wrote)."""
import os
import re
import shlex
import subprocess
import sys

import imageio_ffmpeg
import pytest

from flowcodec.io import BUNDLED_CLIP

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
CLIP = BUNDLED_CLIP
FRAMES = 2
KEPT = {"--recon recon.y4m"}  # optional groups the test keeps


def use_commands() -> list[str]:
    """The command lines of the README's "## Use" code block, continuation lines joined."""
    with open(README, encoding="utf-8") as f:
        text = f.read()
    section = text.split("\n## Use\n", 1)[1].split("\n## ", 1)[0]
    block = [line[4:] for line in section.split("\n") if line.startswith("    ")]
    joined, current = [], ""
    for line in block:
        current += line.strip() + " "
        if not line.rstrip().endswith("\\"):
            joined.append(current.replace("\\ ", "").strip())
            current = ""
    return joined


def _as_run(command: str, ffmpeg: str) -> str:
    command = command.split("   #")[0].strip()
    command = re.sub(r"\[([^\]]*)\]", lambda m: m[1] if m[1] in KEPT else "", command)
    command = command.replace("--size 352x288", "--size 192x144")
    words = shlex.split(command)
    cli = f"{shlex.quote(sys.executable)} -m flowcodec.cli"
    out = []
    for part in " ".join(shlex.quote(w) if w != "|" else "|" for w in words).split(" | "):
        head, _, rest = part.partition(" ")
        out.append(f"{cli} {rest}" if head == "flowcodec" else f"{shlex.quote(ffmpeg)} {rest}" if head == "ffmpeg"
                   else part)
    return " | ".join(out)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """in.y4m (the bundled clip's first frames) and the same frames as clip.yuv, any.mp4, clip.mp4."""
    d = tmp_path_factory.mktemp("readme")
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    quiet = [ffmpeg, "-v", "error", "-y", "-i", CLIP, "-frames:v", str(FRAMES)]
    subprocess.run(quiet + [str(d / "in.y4m")], check=True)
    subprocess.run(quiet + ["-f", "rawvideo", "-pix_fmt", "yuv420p", str(d / "clip.yuv")], check=True)
    for name in ("any.mp4", "clip.mp4"):
        subprocess.run(quiet + ["-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv420p", str(d / name)], check=True)
    return d, ffmpeg


def test_the_use_block_has_the_everyday_commands():
    joined = " ".join(use_commands())
    for word in ("flowcodec encode", "flowcodec decode", "flowcodec info", "--version", "ffmpeg"):
        assert word in joined


@pytest.mark.parametrize("command", use_commands())
def test_readme_use_command_runs(workdir, command):
    d, ffmpeg = workdir
    p = subprocess.run(["bash", "-o", "pipefail", "-c", _as_run(command, ffmpeg)], cwd=d, capture_output=True,
                       timeout=300)
    assert p.returncode == 0, (command, p.stderr.decode(errors="replace")[-2000:])
    if " decode out.fcb " in f" {command} ":
        assert (d / "decoded.y4m").read_bytes() == (d / "recon.y4m").read_bytes()
