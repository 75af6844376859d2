"""Print the pip requirements listed in ``environment.yml`` (stdlib only).

The Makefile uses this on machines without conda, so the conda spec stays the one
dependency list::

    python3 lib/envspec.py environment.yml | xargs pip install
"""
from __future__ import annotations

import sys
from pathlib import Path


def pip_requirements(env_file: Path) -> list[str]:
    """Return the entries of the ``pip:`` list of a conda environment file, comments removed."""
    reqs: list[str] = []
    in_pip = False
    pip_indent = -1
    for raw in env_file.read_text().splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        item = line.strip()
        if item == "- pip:":
            in_pip, pip_indent = True, indent
            continue
        if in_pip:
            if indent <= pip_indent:
                in_pip = False
            elif item.startswith("- "):
                reqs.append(item[2:].strip())
    if not reqs:
        raise SystemExit(f"{env_file}: no `- pip:` list found; the dependency list lives there")
    return reqs


if __name__ == "__main__":
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "environment.yml")
    print("\n".join(pip_requirements(path)))
