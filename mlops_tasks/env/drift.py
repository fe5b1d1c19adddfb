"""Env drift between two pip freezes: what was added, removed or changed version. Pure."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Drift:
    """Packages added, removed or changed ([old, new]) since the stage's previous logged run;
    also the run record's field, as it reads back from JSON."""

    added: dict[str, str]
    removed: dict[str, str]
    changed: dict[str, list[str]]  # name -> [old, new]

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def lines(self) -> list[str]:
        out = [f"+ {name}=={version}" for name, version in sorted(self.added.items())]
        out += [f"- {name}=={version}" for name, version in sorted(self.removed.items())]
        out += [f"~ {name} {old} -> {new}" for name, (old, new) in sorted(self.changed.items())]
        return out

    def summary(self) -> str:
        return (f"{len(self.added)} added, {len(self.removed)} removed, "
                f"{len(self.changed)} changed")


def parse_freeze(text: str) -> dict[str, str]:
    """name -> version (or the whole pin for URL/VCS requirements)."""
    from packaging.utils import canonicalize_name  # not at import: run records load this

    pins: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "==" in line:
            name, version = line.split("==", 1)
        elif " @ " in line:
            name, version = line.split(" @ ", 1)
        else:
            name, version = line, ""
        pins[canonicalize_name(name.strip())] = version.strip()
    return pins


def freeze_drift(old: str, new: str) -> Drift:
    before, after = parse_freeze(old), parse_freeze(new)
    return Drift(
        added={n: v for n, v in after.items() if n not in before},
        removed={n: v for n, v in before.items() if n not in after},
        changed={n: [before[n], v] for n, v in after.items() if n in before and before[n] != v},
    )
