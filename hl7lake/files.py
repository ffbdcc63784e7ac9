"""What `hl7lake send` sends: files, folders (recursively), and glob patterns, each file one body."""

from __future__ import annotations

import glob
from pathlib import Path


def _files_under(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def collect_files(arguments: list[str]) -> tuple[list[Path], list[str]]:
    """The files to send, in order and without repeats, and the arguments that matched nothing."""
    found: dict[Path, None] = {}
    missing: list[str] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            matches = _files_under(path)
        elif path.is_file():
            matches = [path]
        else:
            matches = []
            for name in sorted(glob.glob(argument, recursive=True)):
                hit = Path(name)
                matches += _files_under(hit) if hit.is_dir() else [hit] if hit.is_file() else []
        if not matches:
            missing.append(argument)
        found.update(dict.fromkeys(matches))
    return list(found), missing
