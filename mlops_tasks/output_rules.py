"""What a stage may declare as an output: never something `doit clean` or a failed run must
not delete (the project root, git's or the tool's state, a venv, a spec, a notebook, a file
under version control), and no two outputs that are one file on some disk. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .errors import SpecError
from .layout import STATE
from .spec import Stage


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _written(stage: Stage) -> Iterable[tuple[str, str]]:
    for key, paths in (("outputs", stage.outputs), ("metrics", stage.metrics)):
        for path in paths:
            yield key, path


def forbidden(path: str, stages: Sequence[Stage]) -> str | None:
    """Why path may not be an output; None when it may."""
    if path == ".":
        return "is the project root"
    top = path.split("/")[0]
    if top == ".git":
        return "is inside .git"
    if top == STATE:
        return f"is inside the tool's state folder {STATE}/"
    for other in stages:
        if _inside(path, other.env_dir):
            return f"is inside the venv of stage '{other.name}' ({other.env_dir})"
        if path == other.spec_path or _inside(other.spec_path, path):
            return f"is or holds the spec of stage '{other.name}'"
        if path == other.notebook or _inside(other.notebook, path):
            return f"is or holds the notebook of stage '{other.name}'"
    return None


def tracked_under(path: str, tracked: set[str]) -> str | None:
    if path in tracked:
        return path
    prefix = path.rstrip("/") + "/"
    return next((p for p in sorted(tracked) if p.startswith(prefix)), None)


def check_outputs(stages: Sequence[Stage], tracked: set[str] | None) -> None:
    """Refuse outputs that would let a run or `doit clean` delete the user's files."""
    seen: list[tuple[str, Stage]] = []
    for stage in stages:
        for key, path in _written(stage):
            why = forbidden(path, stages)
            if why:
                raise SpecError(stage.spec_path, f"'{key}' entry {path!r} {why}; a stage's "
                                "outputs are deleted by `doit clean` and replaced by every run: "
                                "write them to a folder of their own, such as data/ or models/",
                                line=stage.line_of(key), key=key)
            hit = tracked_under(path, tracked or set())
            if hit:
                raise SpecError(stage.spec_path, f"'{key}' entry {path!r} "
                                + ("is" if hit == path else f"holds {hit!r}, which is")
                                + " tracked by git, so `doit clean` would delete a versioned "
                                f"file; if it is generated, untrack it (git rm --cached {hit}) "
                                "and ignore it, or write the output elsewhere",
                                line=stage.line_of(key), key=key)
            for other_path, other in seen:
                _conflict(stage, key, path, other, other_path)
            seen.append((path, stage))


def _conflict(stage: Stage, key: str, path: str, other: Stage, other_path: str) -> None:
    if path == other_path:
        return  # the same path twice: the graph names both producers
    if other_path.lower() == path.lower():
        why = "differs only in case from"
    elif _inside(path, other_path) or _inside(other_path, path):
        why = "is inside, or holds,"
    else:
        return
    owner = "this stage" if other is stage else f"stage '{other.name}'"
    raise SpecError(stage.spec_path, f"'{key}' entry {path!r} {why} {other_path!r}, an output "
                    f"of {owner}; one output per file or folder, the same on every disk",
                    line=stage.line_of(key), key=key)
