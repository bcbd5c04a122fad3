"""Every command the README and the docs show is one its program accepts as written.

The README's everyday commands also run (``test_readme.py``); the others train, evaluate for hours or
need the dev clips, so here each is only parsed: ``flowcodec …`` (and ``torchrun … -m flowcodec.cli …``)
by the command line's own parser, ``python benchmarks/X.py …`` by that script's, stopped right after
its arguments are read. Placeholders stay as they are written (a file name is any string to a parser);
``[...]`` optional groups are left out, and ``...`` stands for the options of the command above with
the same subcommand where it follows the subcommand ("more options" elsewhere), as a reader takes it.
"""
import argparse
import os
import re
import runpy
import shlex
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ["README.md", "docs/design.md", "docs/training.md", "docs/results.md", "docs/bitstream.md",
        "flowcodec/weights/README.md"]


def commands():
    """(file, line number, command words) of every flowcodec, torchrun or benchmark command in a code
    block (lines indented 4 spaces), continuation lines joined."""
    found = []
    for doc in DOCS:
        with open(os.path.join(ROOT, doc), encoding="utf-8") as f:
            lines = f.read().split("\n")
        current, start = "", 0
        for n, line in enumerate(lines, 1):
            if not line.startswith("    ") or (not current and not line.strip()):
                current = ""
                continue
            if not current:
                start = n
            current += line.strip() + " "
            if line.rstrip().endswith("\\"):
                current = current.rstrip()[:-1] + " "
                continue
            text = re.sub(r"(^|\s)#.*$", "", current).strip()
            current = ""
            text = re.sub(r"\[[^\]]*\]", "", text)
            for part in text.split(" | "):
                head = part.split()[:2]
                if head and (head[0] in ("flowcodec", "torchrun") or head[-1].startswith("benchmarks/")):
                    words = shlex.split(part)
                    if "..." in words:
                        i = words.index("...")
                        above = [w for _, _, w in found if w[0] == "flowcodec" and w[1] == words[i - 1]]
                        words = words[:i] + (above[-1][2:] if above else []) + words[i + 1:]
                    found.append((doc, start, words))
    return found


class _Parsed(Exception):
    pass


def _stop_after_parsing(self, args=None, namespace=None):
    """``parse_args`` that stops the script once its arguments are read (or exits on bad ones)."""
    _, extra = self.parse_known_args(args, namespace)
    if extra:
        self.error(f"unrecognized arguments: {' '.join(extra)}")
    raise _Parsed


def _parse(words, monkeypatch, capsys):
    if words[0] == "torchrun":
        words = ["flowcodec"] + words[words.index("flowcodec.cli") + 1:]
    if words[0] == "flowcodec":
        from flowcodec.cli import build_parser
        build_parser().parse_args(words[1:])
        return
    script = os.path.join(ROOT, words[1])
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", _stop_after_parsing)
    monkeypatch.setattr(sys, "argv", words[1:])
    with pytest.raises(_Parsed):
        runpy.run_path(script, run_name="__main__")


@pytest.mark.parametrize("doc,line,words", commands(), ids=lambda v: v if isinstance(v, (str, int)) else None)
def test_documented_command_parses(doc, line, words, monkeypatch, capsys):
    try:
        _parse(words, monkeypatch, capsys)
    except SystemExit as e:
        if e.code == 0:  # --version, --help
            return
        pytest.fail(f"{doc}:{line}: {' '.join(words)}\n{capsys.readouterr().err.strip()} (exit {e.code})")


def test_the_docs_show_commands():
    found = {doc for doc, _, _ in commands()}
    assert {"README.md", "docs/training.md", "docs/results.md"} <= found, found
