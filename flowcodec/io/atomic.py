"""Atomic file output: a file appears at its final path complete or not at all.

Writing goes to a hidden temporary file in the destination directory (so the
final rename stays on one filesystem) which replaces the destination only when
the `with` block succeeds; an interrupted or failed run leaves no partial file.
"""

import os
import sys
import tempfile
from contextlib import contextmanager

from flowcodec.errors import FlowcodecError


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


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
        tmp = tempfile.NamedTemporaryFile(mode=mode, dir=directory, delete=False,
                                          prefix=f".{name}.")
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
