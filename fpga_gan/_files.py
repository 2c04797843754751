"""Files we read from users and files we write: names confined to their directory, atomic writes,
hashes, and the marker that says a directory is ours to replace.

Why one module: ``model.json``, ``manifest.json``, pairs files and folding files all name other
files, and every one of those names is untrusted input - ``"../../x"`` or a symlink out of the
directory must not make us read or overwrite a file elsewhere. Writes must be atomic (a reader
sees the old file or the new one, never half), and a directory is only emptied if it carries our
marker, so ``--overwrite`` or ``-o DIR`` can never delete a user's own directory.

Standard library only: the board runtime (numpy-only rule) imports it, and ``deploy`` ships it
beside ``fpga_gan/runtime``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .errors import UserError

__all__ = [
    "MARKER_NAME",
    "NotOursError",
    "UnsafePathError",
    "inside",
    "mark_dir",
    "marked_kind",
    "publish_dir",
    "refuse_unless_ours",
    "sha256_file",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_text_atomic",
]

MARKER_NAME = ".fpga_gan"


class UnsafePathError(UserError, ValueError):
    """A file name read from a file would resolve outside the directory it must stay in."""


class NotOursError(UserError, FileExistsError):
    """A directory would be emptied or replaced, but fpga_gan did not write it."""


def inside(directory: str | os.PathLike, name: Any, what: str = "file name") -> Path:
    """``directory / name``, refusing any name that leaves ``directory``.

    Refused: non-strings, empty names, absolute paths, any ``..`` component, NUL bytes, and a
    path whose real location (symlinks followed) is outside the real ``directory``. ``what``
    names where the name came from (e.g. ``"model.json: files.qonnx"``) for the message. The file
    need not exist; the caller checks that with its own message.
    """
    if not isinstance(name, str) or not name or "\x00" in name:
        raise UnsafePathError(f"{what} must be a non-empty file name, got {name!r}")
    rel = Path(name.replace("\\", "/"))
    if rel.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafePathError(f"{what} {name!r} is an absolute path; only names inside {directory} are allowed")
    if ".." in rel.parts:
        raise UnsafePathError(f"{what} {name!r} contains '..'; only names inside {directory} are allowed")
    base = Path(directory)
    path = base / rel
    real_base = os.path.realpath(base)
    real = os.path.realpath(path)
    if os.path.commonpath([real_base, real]) != real_base:
        raise UnsafePathError(f"{what} {name!r} resolves to {real}, outside {directory} (a symlink leaving "
                              "the directory); copy the file into the directory instead")
    return path


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (bitstreams are tens of MB; boards have little RAM)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_bytes_atomic(path: str | os.PathLike, data: bytes, mode: int = 0o644) -> Path:
    """Write ``data`` to a temporary file beside ``path`` (fsync'd), then rename it over ``path``.

    Readers see the old file or the new one, never half of one; an interrupted write leaves the
    old file in place and no temporary behind.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)     # mkstemp makes it 0600; our files are meant to be read by others
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    return write_bytes_atomic(path, text.encode())


def write_json_atomic(path: str | os.PathLike, data: Any, indent: int | None = 2) -> Path:
    """``data`` as JSON (with a final newline), written atomically."""
    return write_text_atomic(path, json.dumps(data, indent=indent) + "\n")


# -------------------------------------------------------------------------------- ownership marker


def mark_dir(directory: str | os.PathLike, kind: str) -> Path:
    """Mark ``directory`` as written by fpga_gan (``kind``: "dataset", "artifact", "build", ...)."""
    return write_json_atomic(Path(directory) / MARKER_NAME, {"written_by": "fpga_gan", "kind": kind})


def marked_kind(directory: str | os.PathLike) -> str | None:
    """The kind recorded in ``directory``'s marker, or None when it has no (readable) marker."""
    marker = Path(directory) / MARKER_NAME
    if marker.is_symlink() or not marker.is_file():
        return None
    try:
        data = json.loads(marker.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or data.get("written_by") != "fpga_gan" or not isinstance(data.get("kind"), str):
        return None
    return data["kind"]


def refuse_unless_ours(directory: str | os.PathLike, kind: str, option: str) -> None:
    """Raise :class:`NotOursError` unless ``directory`` is absent, empty, or marked as our ``kind``.

    ``option`` names what the user asked for (e.g. ``"--overwrite"``, ``"-o"``) for the message.
    """
    directory = Path(directory)
    if directory.is_symlink():
        raise NotOursError(f"{directory} is a symlink; {option} only replaces a real directory fpga_gan wrote")
    if not directory.exists():
        return
    if not directory.is_dir():
        raise NotOursError(f"{directory} exists and is not a directory; choose another output path")
    if not any(directory.iterdir()):
        return
    found = marked_kind(directory)
    if found != kind:
        article = "an" if kind[:1] in "aeiou" else "a"
        why = (f"it holds an fpga_gan {found}, not {article} {kind}" if found else
               f"it has no {MARKER_NAME} marker, so fpga_gan did not write it")
        raise NotOursError(f"refusing to replace {directory} ({option}): {why}. Choose a new or empty "
                           "directory, or delete this one yourself")


def publish_dir(partial: str | os.PathLike, out_dir: str | os.PathLike, kind: str, option: str) -> Path:
    """Move a finished ``partial`` directory to ``out_dir``, marked as ``kind``.

    An old ``out_dir`` is replaced only if :func:`refuse_unless_ours` allows it (checked again
    here, right before anything is removed), and only once the new one is complete.
    """
    partial, out_dir = Path(partial), Path(out_dir)
    mark_dir(partial, kind)
    refuse_unless_ours(out_dir, kind, option)
    if out_dir.exists():
        old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out_dir, old)
        os.replace(partial, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(partial, out_dir)
    return out_dir
