"""The data-quality gate's memory between nights: each raw object's row-level outcome, kept
per key slot (like the catalog) under a digest of the rules that reached it, so that the
row-level expectations run only on rows that are new or changed (tasks/validate.py).

A row's outcome depends on its own facts and on one fact across rows: whether another row
holds the same content under another class (a label conflict). So a stored outcome is carried
only when its row is unchanged (same ETag, size and content) and no row with that content was
added, changed or removed since; every other row is checked again. Without stored outcomes,
or under other rules, every row is checked. The gate's result is the same either way; only the
work differs.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from functools import partial

import pandas as pd

from tasks.config import PipelineConfig
from tasks.layout import row_outcomes_slot
from tasks.partitions import SLOTS, key_slot, read_slots, write_slots
from tasks.storage import S3Client

# Part of the rules digest: bump it when the row-level expectations, ROW_REASONS or the
# derived columns change, so that no outcome reached under the old rules is carried.
ROW_RULES_VERSION = 1
OUTCOME_COLUMNS = ["key", "etag", "bytes", "sha256", "reasons"]


def rules_digest(config: PipelineConfig) -> str:
    """Names the row-level rules: their version and every setting they read."""
    rules = {
        "version": ROW_RULES_VERSION,
        "class_names": list(config.class_names),
        "allowed_formats": sorted(config.allowed_formats),
        "min_image_side": config.min_image_side,
        "max_image_side": config.max_image_side,
        "max_image_bytes": config.max_image_bytes,
    }
    return hashlib.sha256(json.dumps(rules, sort_keys=True).encode()).hexdigest()[:16]


def parse_outcomes(body: bytes) -> pd.DataFrame:
    return pd.read_csv(
        io.BytesIO(body),
        dtype={"key": "string", "etag": "string", "sha256": "string", "reasons": "string"},
        keep_default_na=False,
    )


def read_row_outcomes(client: S3Client, config: PipelineConfig) -> pd.DataFrame:
    """The stored outcomes under the config's rules; empty when none were stored."""
    uri_of = partial(row_outcomes_slot, config, rules_digest(config))
    stored = read_slots(client, uri_of, list(range(SLOTS)), parse_outcomes)
    return stored if not stored.empty else pd.DataFrame(columns=OUTCOME_COLUMNS)


@dataclass(frozen=True)
class Difference:
    """What the gate must check tonight, and what it carries."""

    check: pd.Series  # per manifest row: run the row-level expectations on it
    carried: dict[str, list[str]]  # key -> reasons, for the carried rows that were quarantined
    stale_slots: set[int]  # slots whose stored outcomes no longer match the manifest


def _identity(frame: pd.DataFrame) -> pd.Series:
    return frame["etag"].astype(str) + "|" + frame["bytes"].astype(str) + "|" + frame["sha256"].fillna("")


def difference(frame: pd.DataFrame, stored: pd.DataFrame) -> Difference:
    """Splits the manifest's rows into those to check and those whose outcome is carried."""
    before = stored.set_index("key")
    identity_before = _identity(stored).set_axis(stored["key"])
    current = frame["key"].map(identity_before).eq(_identity(frame)).fillna(False).astype(bool)
    gone = before.index.difference(frame["key"])
    redone = frame.loc[~current, "key"]
    touched = set(frame.loc[~current, "sha256"].dropna())
    touched |= set(before["sha256"].reindex(gone.union(redone)).dropna()) - {""}
    check = ~current | frame["sha256"].isin(touched).fillna(False).astype(bool)
    carried_keys = frame.loc[~check, "key"]
    carried_reasons = carried_keys.map(before["reasons"])
    carried = {key: json.loads(text) for key, text in zip(carried_keys, carried_reasons, strict=True) if text}
    stale = {key_slot(key) for key in frame.loc[check, "key"]} | {key_slot(key) for key in gone}
    return Difference(check, carried, stale)


def write_row_outcomes(
    client: S3Client,
    config: PipelineConfig,
    frame: pd.DataFrame,
    quarantine: dict[str, list[str]],
    slots: set[int],
) -> None:
    """Rewrites the stored outcomes of `slots` from tonight's manifest and quarantine."""
    if not slots:
        return
    slot_of = frame["key"].map(key_slot)
    rows = frame.loc[slot_of.isin(slots), ["key", "etag", "bytes", "sha256"]].copy()
    rows["reasons"] = [json.dumps(quarantine[key]) if key in quarantine else "" for key in rows["key"]]
    write_slots(
        client, partial(row_outcomes_slot, config, rules_digest(config)), rows, slot_of[rows.index], slots
    )
