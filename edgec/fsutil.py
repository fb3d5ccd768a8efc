"""Output files: checked before any work, written atomically (a failed or interrupted
write never leaves a partial file, and never replaces what is not a regular file)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .errors import UsageError


def check_output(path: str | os.PathLike, *, what: str = "-o",
                 inputs: tuple[str | os.PathLike, ...] = ()) -> Path:
    """``path`` if a file can be written there, else a UsageError naming it: checked
    before a compile spends minutes, so a bad path fails first. Refused: an empty
    name, a folder or anything not a regular file (a device such as /dev/null would
    be replaced by the rename), one of ``inputs`` (the user's model), and a folder
    that cannot be created or written."""
    raw = str(path)
    path = Path(path)
    if not raw or not path.name or raw.endswith(os.sep):
        raise UsageError(f"{what} '{raw}': give a file name, not a folder")
    if path.exists() or path.is_symlink():
        if path.is_dir():
            raise UsageError(f"{what} {path}: is a folder; give a file path inside it")
        if not path.is_file():
            raise UsageError(f"{what} {path}: is not a regular file (a device, pipe or "
                             "socket); give a file path")
        for src in inputs:
            with contextlib.suppress(OSError):
                if Path(src).exists() and path.samefile(src):
                    raise UsageError(f"{what} {path}: is the input file itself; writing "
                                     "would replace it: give another output path")
    parent = path.parent.absolute()
    existing = next((p for p in [parent, *parent.parents] if p.exists()), Path("/"))
    if not existing.is_dir():
        raise UsageError(f"{what} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{what} {path}: cannot write in {existing} (permission denied); "
                         "choose a writable folder")
    return path


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Write to a temp file beside ``path``, then rename it into place on success."""
    path = Path(path)
    if path.exists() and not path.is_file():  # a rename would replace a device or folder
        raise UsageError(f"{path}: is not a regular file; give a file path")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
