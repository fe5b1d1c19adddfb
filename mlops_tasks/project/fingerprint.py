"""Content hashes that decide staleness. Pure and machine-independent: no paths, hosts
or timestamps go into what is hashed."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from stat import S_ISDIR, S_ISREG
from typing import Any

from mlops_tasks.project.spec import Stage, normalise_req_name, requirement_name


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str,
                      ensure_ascii=False)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _skipped(rel: str, skip: Iterable[str]) -> bool:
    return any(rel == s or rel.startswith(s + "/") for s in skip)


def tree_files(folder: Path, skip: Iterable[str] = ()) -> dict[str, str]:
    """Each file's name relative to folder and its sha256, in name order, without the paths
    in `skip` (relative to folder; a folder there skips what it holds)."""
    skip = tuple(skip)
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if not _skipped(rel, skip):
            files[rel] = sha256_file(path)
    return files


def tree_digest(files: Mapping[str, str]) -> str:
    digest = hashlib.sha256()
    for rel, sha in files.items():
        digest.update(f"{rel}\0{sha}\n".encode())
    return digest.hexdigest()


def sha256_tree(folder: Path, skip: Iterable[str] = ()) -> str:
    """A folder's content: every file's relative name and content, in name order. Empty
    folders and mtimes do not count, nor the paths in `skip` (relative to folder)."""
    return tree_digest(tree_files(folder, skip))


def content_hash(path: Path, skip: Iterable[str] = ()) -> str | None:
    """A file's or a folder's content hash (a folder's without `skip`, see sha256_tree); None
    when there is nothing at path."""
    if path.is_file():
        return sha256_file(path)
    if path.is_dir():
        return sha256_tree(path, skip)
    return None


def content_stat(path: Path | str) -> list[int] | None:
    """Cheap "unchanged" evidence: size and mtime of a file; for a folder, its file count,
    total size and latest mtime. None when there is nothing at path."""
    try:
        st = os.stat(path)  # one stat call: this runs for every input and output on a no-op
    except OSError:
        return None
    if S_ISREG(st.st_mode):
        return [st.st_size, st.st_mtime_ns]
    if S_ISDIR(st.st_mode):
        stats = [p.stat() for p in Path(path).rglob("*") if p.is_file()]
        return [len(stats), sum(s.st_size for s in stats),
                max((s.st_mtime_ns for s in stats), default=0)]
    return None


def normalise_requirement(req: str) -> str:
    """'Scikit_Learn >= 1.3' -> 'scikit-learn>=1.3': same requirement, same hash."""
    name = requirement_name(req) or req
    rest = req[len(name):] if req.startswith(name) else req
    rest = "".join(rest.split(";")[0].split())
    marker = req.split(";", 1)[1].strip() if ";" in req else ""
    out = normalise_req_name(name) + rest
    return f"{out}; {marker}" if marker else out


def install_requirements(stage: Stage) -> list[str]:
    """What goes into the venv: the stage's packages plus ipykernel for the kernel."""
    reqs = [normalise_requirement(r) for r in stage.packages]
    names = {normalise_req_name(requirement_name(r) or "") for r in reqs}
    if "ipykernel" not in names:
        reqs.append("ipykernel")
    return reqs


def env_fingerprint(version: str, implementation: str, requirements: Iterable[str],
                    options: Mapping[str, Any]) -> str:
    """The identity of what an env is built from (not of how it resolved: that is the freeze)."""
    payload = {
        "python": {"version": version, "implementation": implementation.lower()},
        "requirements": sorted(requirements),
        "options": dict(options),
    }
    return sha256_text(canonical_json(payload))


def spec_hash(stage: Stage) -> str:
    """Hash of what the spec says about results; `notes` and formatting are left out."""
    payload = {
        "name": stage.name,
        "notebook": stage.notebook,
        "python": stage.python,
        "python_exe": stage.python_exe,
        "packages": [normalise_requirement(r) for r in stage.packages],
        "parameters": stage.parameters,
        "inputs": list(stage.inputs),
        "outputs": list(stage.outputs),
        "metrics": list(stage.metrics),
        "depends_on": list(stage.depends_on),
        "timeout": stage.timeout,
        **({"allow_early_exit": True} if stage.allow_early_exit else {}),
        **({"workdir": stage.workdir} if stage.workdir != "." else {}),
        **({"env": dict(stage.env)} if stage.env else {}),
    }
    return sha256_text(canonical_json(payload))


def parameters_digest(parameters: Mapping[str, Any]) -> str:
    return sha256_text(canonical_json(parameters))


def inputs_digest(input_hashes: Mapping[str, str | None]) -> str:
    """One digest of the inputs' contents, keyed by their project-relative paths."""
    return sha256_text(canonical_json(dict(input_hashes)))


STAGE_KEY_VERSION = 2  # 1: the env part was the installed freeze


def stage_key(env: str, code: str, parameters: str,
              input_hashes: Mapping[str, str | None],
              env_vars: Mapping[str, str] | None = None) -> str:
    """The identity of one stage execution: the environment as pinned or asked (the env
    plan's fingerprint: Python version, requirements, the pins file's content, install
    options), the notebook's code, the parameters, the inputs' contents and the spec's
    environment variables. Nothing in it needs the venv to exist, so an agent computes it
    before building anything, and agents with the same specs and pins agree; the freeze that
    actually ran is recorded beside it. Every part is a content digest or a relative path,
    so two machines or two clones at different paths compute the same key for the same
    work."""
    return sha256_text(canonical_json({
        "version": STAGE_KEY_VERSION, "env": env, "code": code, "parameters": parameters,
        "inputs": inputs_digest(input_hashes), **({"env_vars": dict(env_vars)} if env_vars else {}),
    }))
