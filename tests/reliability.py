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


# Every drill, in the order of the table in docs/reliability.md.
DRILLS = (
    "flaky-endpoint",
    "slowdown-on-deploy",
    "endpoint-gone",
    "kill-preprocess-after-the-first-pack",
    "kill-preprocess-during-the-index-write",
    "kill-deploy-before-pointer",
    "kill-deploy-after-pointer",
    "week-of-nights",
)
DOCS_PATH = ROOT / "docs" / "reliability.md"

RESULTS: list[DrillResult] = []


def record(drill: str, injected: str, runs: int, outcome: str, lost: str = "nothing") -> None:
    assert drill in DRILLS, f"{drill}: add it to DRILLS and to {DOCS_PATH.name}"
    RESULTS.append(DrillResult(drill, injected, runs, outcome, lost))


def write_table() -> Path | None:
    """Writes the drills that ran this session in the docs' order; None if none ran."""
    if not RESULTS:
        return None
    rows = sorted(RESULTS, key=lambda result: DRILLS.index(result.drill))
    TABLE_PATH.parent.mkdir(exist_ok=True)
    TABLE_PATH.write_text(HEADER + "\n".join(result.row() for result in rows) + "\n")
    return TABLE_PATH


def documented_drills() -> list[str]:
    """The drill ids in the first column of docs/reliability.md's table, in order."""
    after_header = DOCS_PATH.read_text().split(HEADER, 1)[1].splitlines()
    rows = []
    for line in after_header:
        if not line.startswith("| "):
            break
        rows.append(line.split("|")[1].strip())
    return rows
