"""How the data work is split across Airflow workers: deterministic partitions of the raw
keyspace (collect) and of the image content (preprocess).

Every object key and every content hash falls in one of `SLOTS` fixed slots, by a hash of the
key or of the content. A run with P partitions gives partition p the slots s with s % P == p,
so a partition's members depend only on the key (or content) and P, never on listing order or
on which worker runs it. The slots are also the unit the caches are stored in (the raw-object
catalog, the example index): a partition reads and rewrites its own slots only, no two
partitions write the same file, and a night with another P reuses everything.

collect partitions by key, because the catalog remembers keys. preprocess partitions by
content, because the example store is content-addressed: each image is decoded by exactly one
partition, and the no-leakage check (one content, one split) is complete within a partition.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from tasks.records import RecordJson
from tasks.storage import S3Client, S3Uri, get_bytes_if_exists, parallel_map, put_csv

SLOTS = 256
OBJECTS_PER_PARTITION = 8000
MAX_PARTITIONS = 64


def key_slot(key: str) -> int:
    """The slot of a raw object key."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % SLOTS


def content_slot(sha256: str) -> int:
    """The slot of an image's content. Taken from the hash's last digits, because its first
    ones decide the split (tasks/examples.py: split_of)."""
    return int(sha256[-8:], 16) % SLOTS


def partition_count(objects: int, requested: int = 0) -> int:
    """P: the `partitions` setting when set, else one per OBJECTS_PER_PARTITION objects,
    between 1 and MAX_PARTITIONS."""
    if requested:
        return min(requested, SLOTS)
    return max(1, min(MAX_PARTITIONS, math.ceil(objects / OBJECTS_PER_PARTITION)))


def part_name(number: int, count: int) -> str:
    """A file-name part, unique per (number, count): `part-0001-of-0004`."""
    return f"part-{number + 1:04d}-of-{count:04d}"


@dataclass(frozen=True)
class Partition:
    """Partition `number` (0-based) of `count`, and the file that lists its work."""

    number: int
    count: int
    uri: str = ""

    @property
    def slots(self) -> list[int]:
        return [slot for slot in range(SLOTS) if slot % self.count == self.number]

    @property
    def name(self) -> str:
        return part_name(self.number, self.count)

    @property
    def label(self) -> str:
        """How the Airflow grid names the mapped instance."""
        return f"part {self.number + 1} of {self.count}"

    def to_xcom(self) -> RecordJson:
        return asdict(self)

    @classmethod
    def from_xcom(cls, value: RecordJson) -> Partition:
        return cls(int(value["number"]), int(value["count"]), str(value.get("uri", "")))


def partition_numbers(values: Sequence[str], slot_of: Callable[[str], int], count: int) -> np.ndarray:
    """The partition (0 to count - 1) of each value: its slot modulo `count`."""
    slots = np.fromiter((slot_of(value) for value in values), dtype=np.int64, count=len(values))
    return slots % count


def split_frame(
    frame: pd.DataFrame, column: str, slot_of: Callable[[str], int], count: int
) -> list[pd.DataFrame]:
    """The rows of each of `count` partitions, by the slot of their `column`, in their given order."""
    part_of = partition_numbers(frame[column].tolist(), slot_of, count)
    return [frame[part_of == number] for number in range(count)]


def read_slots(
    client: S3Client, uri_of: Callable[[int], S3Uri], slots: list[int], parse: Callable[[bytes], pd.DataFrame]
) -> pd.DataFrame:
    """The rows of the slot files of `slots` that exist, read in parallel, in slot order."""

    def read(slot: int) -> pd.DataFrame | None:
        body = get_bytes_if_exists(client, uri_of(slot))
        return None if body is None else parse(body)

    frames = [frame for frame in parallel_map(read, slots) if frame is not None]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def write_slots(
    client: S3Client,
    uri_of: Callable[[int], S3Uri],
    frame: pd.DataFrame,
    slot_of: pd.Series,
    slots: Iterable[int],
) -> None:
    """Rewrites the slot files of `slots` with the rows of `frame` in each (`slot_of` gives each
    row's slot); a slot left with no rows is written empty, so a stale file never remains."""

    def write(slot: int) -> None:
        put_csv(client, uri_of(slot), frame[slot_of == slot])

    parallel_map(write, sorted(set(slots)))


def write_parts(
    client: S3Client, frames: list[pd.DataFrame], uri_of: Callable[[str], S3Uri]
) -> list[RecordJson]:
    """Writes each partition's rows (`frames[p]`) as CSV to `uri_of(<part name>)`, in parallel;
    returns the partitions in their XCom form, each naming its file."""
    count = len(frames)
    partitions = [Partition(number, count, str(uri_of(part_name(number, count)))) for number in range(count)]
    parallel_map(
        lambda pair: put_csv(client, S3Uri.parse(pair[0].uri), pair[1]),
        list(zip(partitions, frames, strict=True)),
    )
    return [partition.to_xcom() for partition in partitions]
