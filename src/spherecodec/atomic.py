"""Files that appear complete or not at all: written under a temporary name, renamed at the end.

A run that fails (or is interrupted) removes its temporary file, so a half-written output is
never left looking like a finished one.
"""

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

# the process's umask, read once (os.umask can only be read by setting it): a temporary file is
# given the mode a plain open() would have given the output
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextmanager
def atomic_path(path, *, fsync=False):
    """A temporary path beside ``path`` to write; it replaces ``path`` only once the block
    ends without error (after an fsync of its data when ``fsync``), and is removed otherwise."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent or ".")
    os.close(fd)
    try:
        # mkstemp makes the file private; give it the mode a plain open() would
        os.chmod(tmp, 0o666 & ~_UMASK)
        yield tmp
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


@contextmanager
def atomic_output(path):
    """An open binary file (``w+b``) that replaces ``path`` only once the block ends without error."""
    with atomic_path(path) as tmp, open(tmp, "w+b") as f:
        yield f
