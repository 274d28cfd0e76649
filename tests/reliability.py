"""The reliability table: each drill records what was injected and how the runs ended, and the
session writes the rows to build/reliability.md (docs/reliability.md holds the last run's)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TABLE_PATH = ROOT / "build" / "reliability.md"
HEADER = "| drill | what was injected | runs | outcome | anything lost |\n|---|---|---|---|---|\n"


@dataclass(frozen=True)
class DrillResult:
    drill: str  # the drill's id, as docs/reliability.md names it
    injected: str
    runs: int
    outcome: str
    lost: str

    def row(self) -> str:
        return f"| {self.drill} | {self.injected} | {self.runs} | {self.outcome} | {self.lost} |"


RESULTS: list[DrillResult] = []


def record(drill: str, injected: str, runs: int, outcome: str, lost: str = "nothing") -> None:
    RESULTS.append(DrillResult(drill, injected, runs, outcome, lost))


def write_table() -> Path | None:
    """Writes the drills that ran this session, in the order they ran; None if none ran."""
    if not RESULTS:
        return None
    TABLE_PATH.parent.mkdir(exist_ok=True)
    TABLE_PATH.write_text(HEADER + "\n".join(result.row() for result in RESULTS) + "\n")
    return TABLE_PATH
