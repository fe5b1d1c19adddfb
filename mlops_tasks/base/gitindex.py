"""Which project files git tracks, read from the repository's index file (versions 2 to 4),
so validating outputs on every load starts no process."""

from __future__ import annotations

import struct
from pathlib import Path

ENTRY_FIXED = 62  # ctime, mtime, dev, ino, mode, uid, gid, size (4 bytes each), sha, flags


def find_repo(root: Path) -> tuple[Path, Path] | None:
    """The work tree holding root and its git directory (a `.git` file points elsewhere)."""
    for folder in (root, *root.parents):
        dot_git = folder / ".git"
        if dot_git.is_dir():
            return folder, dot_git
        if dot_git.is_file():
            text = dot_git.read_text(encoding="utf-8", errors="replace").strip()
            if text.startswith("gitdir:"):
                gitdir = Path(text[len("gitdir:"):].strip())
                return folder, gitdir if gitdir.is_absolute() else folder / gitdir
    return None


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """git's offset varint (index v4 path prefix lengths)."""
    byte = data[pos]
    value = byte & 0x7F
    pos += 1
    while byte & 0x80:
        byte = data[pos]
        value = ((value + 1) << 7) | (byte & 0x7F)
        pos += 1
    return value, pos


def index_paths(data: bytes) -> list[str]:
    """Paths (relative to the work tree, POSIX) of the entries of an index file."""
    if data[:4] != b"DIRC":
        raise ValueError("not a git index")
    version, count = struct.unpack(">II", data[4:12])
    if version not in (2, 3, 4):
        raise ValueError(f"git index version {version}")
    pos, previous, paths = 12, b"", []
    for _ in range(count):
        start = pos
        flags = struct.unpack(">H", data[pos + 60:pos + 62])[0]
        pos += ENTRY_FIXED + (2 if version >= 3 and flags & 0x4000 else 0)
        if version == 4:
            strip, pos = _varint(data, pos)
            end = data.index(b"\0", pos)
            name = previous[:len(previous) - strip] + data[pos:end]
            pos = end + 1
        else:
            end = data.index(b"\0", pos)
            name = data[pos:end]
            pos = start + ((end - start) // 8 + 1) * 8  # NUL-padded to a multiple of 8
        previous = name
        paths.append(name.decode("utf-8", errors="replace"))
    return paths


def tracked(root: Path) -> set[str] | None:
    """Files git tracks under root, relative to root; None outside a repository or when the
    index cannot be read (then nothing is known to be tracked)."""
    found = find_repo(root)
    if found is None:
        return None
    top, gitdir = found
    try:
        paths = index_paths((gitdir / "index").read_bytes())
    except (OSError, ValueError, IndexError, struct.error):
        return None
    prefix = root.relative_to(top).as_posix() if root != top else ""
    if not prefix:
        return set(paths)
    return {p[len(prefix) + 1:] for p in paths if p.startswith(prefix + "/")}
