"""Objects that are not data: what desktops, archivers and data jobs leave in every real bucket.

Uploading a folder from a Mac or Windows desktop brings `.DS_Store`, `._name` (AppleDouble),
`Thumbs.db` and `desktop.ini`; unzipping a Mac archive brings `__MACOSX/`; Spark and Hadoop
jobs write `_SUCCESS`, `_committed_*`/`_started_*` markers, `_temporary/` folders, `.crc`
checksums and `<folder>_$folder$` markers; a console's "create folder" writes a zero-byte
object whose key ends in `/`. collect leaves them out at listing time and counts
them, instead of quarantining them as undecodable images.

The rule: an object is noise when any part of its key below the raw prefix starts with a dot
(hidden files and folders), or is one of the names below, or matches one of the
`ignore_patterns` setting's globs. A real image whose name starts with a dot is skipped too:
rename it to keep it.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase, translate

NOISE_FOLDERS = frozenset({"__macosx", "_temporary", "$recycle.bin", "@eadir"})
NOISE_NAMES = frozenset({"thumbs.db", "ehthumbs.db", "desktop.ini", "icon\r", "_success", "_metadata"})
NOISE_NAME_PATTERNS = ("_committed_*", "_started_*", "*_$folder$", "*.crc")
# Compiled once: the check runs on every listed key, millions a night on a large catalogue.
_NAME_MATCHERS = tuple((pattern, re.compile(translate(pattern)).match) for pattern in NOISE_NAME_PATTERNS)
_ANY_NAME_PATTERN = re.compile("|".join(translate(pattern) for pattern in NOISE_NAME_PATTERNS)).match


def noise_kind(key: str, raw_prefix: str, ignore_patterns: tuple[str, ...] = ()) -> str | None:
    """Why the object at `key` is not data (a short name for the log), or None if it may be."""
    relative = key[len(raw_prefix) :] if key.startswith(raw_prefix) else key
    if key.endswith("/"):
        return "folder marker"  # the zero-byte object a console's "create folder" writes
    parts = [part for part in relative.split("/") if part and part != "."]  # as a POSIX path's parts
    name = parts[-1] if parts else relative
    if ".." in parts:
        return None  # an unsafe key: the gate quarantines it, loudly
    for folder in parts[:-1]:
        if folder.startswith(".") or folder.lower() in NOISE_FOLDERS:
            return f"{folder}/"
    if name.startswith("._"):
        return "._* (AppleDouble)"
    if name.startswith("."):
        return name
    lowered = name.lower()
    if lowered in NOISE_NAMES:
        return name
    if _ANY_NAME_PATTERN(lowered):
        return next(pattern for pattern, matches in _NAME_MATCHERS if matches(lowered))
    for pattern in ignore_patterns:
        if fnmatchcase(relative, pattern):
            return f"ignore_patterns {pattern}"
    return None
