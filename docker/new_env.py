"""Writes the full stack's .env from .env.example, giving every empty secret a fresh random
value (Fernet key, JWT and session secrets, passwords). Never overwrites an existing .env.

    python3 docker/new_env.py [--example .env.example] [--output .env]
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import sys
from pathlib import Path

FERNET_KEYS = {"AIRFLOW_FERNET_KEY"}


def secret_for(name: str) -> str:
    """A value of the kind `name` needs (Fernet wants 32 url-safe base64 bytes), never
    starting with "-": the image's entrypoint passes the admin password on a command line
    (`airflow users create --password ...`), where such a value reads as an option, the
    user is not created and every login is refused."""
    while True:
        if name in FERNET_KEYS:
            value = base64.urlsafe_b64encode(os.urandom(32)).decode()
        else:
            value = secrets.token_urlsafe(32)
        if not value.startswith("-"):
            return value


def filled(example: str) -> str:
    """The example's lines with each `NAME=` (empty value) given a secret."""
    lines = []
    for line in example.splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#") and not value.strip():
            line = f"{name}={secret_for(name.strip())}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--example", type=Path, default=Path(".env.example"))
    parser.add_argument("--output", type=Path, default=Path(".env"))
    args = parser.parse_args(argv)
    if args.output.exists():
        print(f"{args.output} exists; left as it is")
        return 0
    text = filled(args.example.read_text())
    # Created owner-only from the start: the secrets never sit in a world-readable file.
    descriptor = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text)
    print(f"wrote {args.output} with fresh secrets (from {args.example})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
