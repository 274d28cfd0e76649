"""The lock (requirements.lock): every package version the venv and the images install,
resolved by `make lock` from pyproject.toml's dependencies for Python 3.11 on Linux, with
hashes. This script keeps it honest and serves it to each install:

    python3 docker/lockfile.py stamp        # after uv wrote the lock: record what it was made from
    python3 docker/lockfile.py check        # exit 1 when pyproject.toml changed since `make lock`
    python3 docker/lockfile.py constraints [--installed-wins] [--python-full-version V] > constraints.txt

`constraints` prints the lock as a pip constraints file without hashes (pip refuses hashes
in a constraints file unless every requirement is pinned, which an install of the project
itself cannot be). With --installed-wins, packages this interpreter already has are pinned
at their installed version instead: that is how an install on top of an official image
(Airflow's, TensorFlow's) leaves the image's own constrained set untouched and takes the
lock's versions for everything else. With --python-full-version, the lock's environment
markers are decided for that Python (wheels downloaded on a workstation for an image's
older 3.11). Standard library and pip's own vendored `packaging` only: it runs in the images.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tomllib
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
PYPROJECT = ROOT / "pyproject.toml"
STAMP_PREFIX = "# pyproject-dependencies-sha256: "
# `name==version ; marker \` as uv writes each package line (hashes follow on their own lines).
_PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)\s*(?:;\s*(?P<marker>[^\\]+?))?\s*\\?$"
)


def canonical_name(name: str) -> str:
    """PEP 503 normalized name: `Ruamel.YAML` and `ruamel-yaml` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def dependencies_digest(pyproject: Path = PYPROJECT) -> str:
    """What the lock is resolved from: requires-python, the dependencies and the extras.
    Editing anything else in pyproject.toml (tool settings) does not need a new lock."""
    project = tomllib.loads(pyproject.read_text())["project"]
    inputs = {
        "requires-python": project.get("requires-python"),
        "dependencies": project.get("dependencies", []),
        "optional-dependencies": project.get("optional-dependencies", {}),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def recorded_digest(lock: Path = LOCK) -> str | None:
    for line in lock.read_text().splitlines():
        if line.startswith(STAMP_PREFIX):
            return line.removeprefix(STAMP_PREFIX).strip()
    return None


def stamp(lock: Path = LOCK, pyproject: Path = PYPROJECT) -> None:
    """Writes the digest of pyproject.toml's dependencies into the lock's header."""
    lines = [line for line in lock.read_text().splitlines() if not line.startswith(STAMP_PREFIX)]
    lines.insert(0, STAMP_PREFIX + dependencies_digest(pyproject))
    lock.write_text("\n".join(lines) + "\n")


def stale_reason(lock: Path = LOCK, pyproject: Path = PYPROJECT) -> str | None:
    """Why the lock does not match pyproject.toml, or None when it does."""
    if not lock.exists():
        return f"{lock.name} is missing: run `make lock`"
    recorded = recorded_digest(lock)
    if recorded is None:
        return f"{lock.name} has no '{STAMP_PREFIX.strip()}' line: run `make lock`"
    if recorded != dependencies_digest(pyproject):
        return (
            f"{pyproject.name}'s dependencies changed since {lock.name} was made: run `make lock` "
            "and commit both"
        )
    return None


def pins(lock: Path = LOCK) -> Iterator[tuple[str, str, str | None]]:
    """(name, version, environment marker or None) for each package line of the lock."""
    for line in lock.read_text().splitlines():
        match = _PIN.match(line)
        if match:
            yield match["name"], match["version"], match["marker"]


def marker_holds(marker: str, python_full_version: str) -> bool:
    """Whether an environment marker holds for that Python on this platform."""
    try:
        from packaging.markers import Marker
    except ImportError:  # a bare venv: pip vendors the same library
        from pip._vendor.packaging.markers import Marker  # type: ignore[assignment]
    minor = ".".join(python_full_version.split(".")[:2])
    return Marker(marker).evaluate({"python_full_version": python_full_version, "python_version": minor})


def constraints(
    lock: Path = LOCK, *, installed_wins: bool = False, python_full_version: str | None = None
) -> str:
    """The lock as a pip constraints file (no hashes), optionally deferring to what is installed
    and deciding the markers for another Python than this one."""
    installed = (
        {canonical_name(dist.metadata["Name"]): dist.version for dist in metadata.distributions()}
        if installed_wins
        else {}
    )
    lines, deferred = [], []
    for name, version, marker in pins(lock):
        if python_full_version and marker:
            if not marker_holds(marker, python_full_version):
                continue
            marker = None
        have = installed.get(canonical_name(name))
        if have is not None:
            if have != version:
                deferred.append(f"{name} {have} (lock: {version})")
            version = have
        lines.append(f"{name}=={version}" + (f" ; {marker}" if marker else ""))
    if deferred:
        print(f"kept as installed, not as locked: {', '.join(deferred)}", file=sys.stderr)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("stamp", help="record pyproject.toml's dependency digest in the lock")
    commands.add_parser("check", help="fail when the lock is older than pyproject.toml's dependencies")
    served = commands.add_parser("constraints", help="print the lock as a pip constraints file")
    served.add_argument("--installed-wins", action="store_true", help="pin installed packages as they are")
    served.add_argument("--python-full-version", help="decide markers for this Python, e.g. 3.11.2")
    served.add_argument("--lock", type=Path, default=LOCK)
    args = parser.parse_args(argv)
    if args.command == "stamp":
        stamp()
    elif args.command == "check":
        reason = stale_reason()
        if reason:
            print(reason, file=sys.stderr)
            return 1
    else:
        served_constraints = constraints(
            args.lock, installed_wins=args.installed_wins, python_full_version=args.python_full_version
        )
        sys.stdout.write(served_constraints)
    return 0


if __name__ == "__main__":
    sys.exit(main())
