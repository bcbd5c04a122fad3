"""Atomic file output: a file appears at its final path complete or not at all.

Writing goes to a hidden temporary file in the destination directory (so the
final rename stays on one filesystem) which replaces the destination only when
the `with` block succeeds; an interrupted or failed run leaves no partial file.

The temporary file is named ``.NAME.PID.XXXXXXXX.tmp`` (NAME the output's name,
PID the writing process). A run killed before it can remove it (SIGKILL, power
loss; the CLI turns SIGTERM into a clean stop) leaves it behind; the next run
that writes NAME in that directory removes those whose process is gone.
"""

import os
import re
import sys
import tempfile
from contextlib import contextmanager, suppress

from flowcodec.errors import FlowcodecError


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _remove_stale(directory, name):
    """Remove the temporary files of output ``name`` whose writing process no longer exists."""
    pattern = re.compile(re.escape(f".{name}.") + r"([0-9]+)\.[^.]+\.tmp")
    for entry in os.listdir(directory):
        match = pattern.fullmatch(entry)
        if match and not _alive(int(match[1])):
            with suppress(OSError):
                os.unlink(os.path.join(directory, entry))


@contextmanager
def atomic_output(path, mode="wb"):
    """Yield a file to write `path` through; '-' yields stdout (binary for 'b' modes).

    The yielded file of a real path is seekable.  On success it gets the usual
    permissions (0o666 less the umask) and is renamed onto `path`; on any
    exception it is removed and the exception re-raised.
    """
    if os.fspath(path) == "-":
        out = sys.stdout.buffer if "b" in mode else sys.stdout
        yield out
        out.flush()
        return
    directory, name = os.path.split(os.path.abspath(path))
    try:
        _remove_stale(directory, name)
        tmp = tempfile.NamedTemporaryFile(mode=mode, dir=directory, delete=False,
                                          prefix=f".{name}.{os.getpid()}.", suffix=".tmp")
    except OSError as e:
        raise FlowcodecError(f"cannot write '{path}': {e.strerror or e}") from None
    try:
        with tmp:
            yield tmp
        os.chmod(tmp.name, 0o666 & ~_umask())
        os.replace(tmp.name, path)
    except BaseException:
        try:
            os.unlink(tmp.name)
        except FileNotFoundError:
            pass
        raise
