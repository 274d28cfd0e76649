"""Makes a training attempt resumable: Keras' BackupAndRestore writes a local backup each
epoch, and this module mirrors it (with the per-epoch history and TensorBoard logs) to S3
under the attempt, so a retried task, on any worker or container, continues from the last
finished epoch. The checkpoints are deleted once the attempt's outputs are published.

It also keeps the best epoch's weights (by the recipe's `keep_epoch_by`) beside the backup and
stops early when the recipe's patience runs out; both are decided from the epoch ledger, so a
resumed try keeps the same best epoch and stops at the same one."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.layout import AttemptLayout, best_weights_name
from tasks.records import JsonRecord
from tasks.storage import S3Client, S3Uri, delete_prefix, download_tree, parallel_map, upload_file

log = logging.getLogger(__name__)

EPOCH_LEDGER = "epochs.json"


@dataclass(frozen=True)
class TrainingHistory(JsonRecord):
    """`runs/<run>/attempt-<n>/history.json` (copied into each version): the metrics Keras
    logged for every finished epoch, and the epoch whose weights were published."""

    epochs: list[int]  # 1-based epoch numbers
    metrics: dict[str, list[float]]  # loss, accuracy, val_loss, val_accuracy: one per epoch
    kept_epoch: int
    kept_by: str  # the recipe's keep_epoch_by ("last" or a validation metric)
    stopped_early: bool = False

    def kept(self, metric: str) -> float:
        """`metric` at the kept epoch."""
        return self.metrics[metric][self.epochs.index(self.kept_epoch)]


class ResumableAttempt:
    """Local backup and TensorBoard folders for one attempt, kept in sync with S3."""

    def __init__(
        self,
        client: S3Client,
        attempt: AttemptLayout,
        scratch: Path,
        keep_epoch_by: str = "val_accuracy",
        patience: int = 0,
    ) -> None:
        self.client = client
        self.layout = attempt
        # BackupAndRestore deletes its folder when fit ends: the best weights live beside it.
        self.backup_dir = scratch / "backup"
        self.best_dir = scratch / "best"
        self.tensorboard_dir = scratch / "tensorboard"
        self.keep_epoch_by = keep_epoch_by
        self.patience = patience
        self.epochs: list[dict[str, float]] = []

    def restore(self) -> int:
        """Fetches an earlier try's backup, if any; returns the number of finished epochs."""
        download_tree(self.client, self.layout.checkpoint_backup, self.backup_dir)
        download_tree(self.client, self.layout.checkpoint_best, self.best_dir)
        ledger = self.backup_dir / EPOCH_LEDGER
        if ledger.exists():
            self.epochs = json.loads(ledger.read_text())
            log.info("resuming after epoch %d from %s", len(self.epochs), self.layout.checkpoints)
        return len(self.epochs)

    def kept_epoch(self) -> int:
        """The epoch whose weights are published: the best by `keep_epoch_by`, else the last."""
        if not self.epochs:
            return 0
        if self.keep_epoch_by == "last" or self.keep_epoch_by not in self.epochs[0]:
            return int(self.epochs[-1]["epoch"])
        sign = -1 if self.keep_epoch_by == "val_loss" else 1
        # max() keeps the first of equal values: a later epoch must be strictly better.
        best = max(self.epochs, key=lambda entry: sign * entry[self.keep_epoch_by])
        return int(best["epoch"])

    def patience_ran_out(self) -> bool:
        return (
            bool(self.patience)
            and bool(self.epochs)
            and (self.epochs[-1]["epoch"] - self.kept_epoch() >= self.patience)
        )

    def keep_best(self, model: Any) -> None:
        """After fit: loads the kept epoch's weights when that was not the last epoch."""
        best = self.best_dir / best_weights_name(self.kept_epoch())
        if self.epochs and self.kept_epoch() != self.epochs[-1]["epoch"] and best.exists():
            model.load_weights(best)
            log.info(
                "kept epoch %d of %d (best %s)",
                self.kept_epoch(),
                self.epochs[-1]["epoch"],
                self.keep_epoch_by,
            )

    def callbacks(self) -> list[Any]:
        """BackupAndRestore first, so the mirror uploads the backup of the epoch just ended."""
        import keras

        attempt = self

        class _MirrorToS3(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
                attempt.record_epoch(epoch, logs or {}, self.model)
                if attempt.patience_ran_out():
                    log.info(
                        "stopping early: no better %s for %d epochs", attempt.keep_epoch_by, attempt.patience
                    )
                    self.model.stop_training = True

        return [
            keras.callbacks.BackupAndRestore(str(self.backup_dir)),
            keras.callbacks.TensorBoard(str(self.tensorboard_dir)),
            _MirrorToS3(),
        ]

    def record_epoch(self, epoch: int, logs: dict[str, float], model: Any) -> None:
        previous_best = self.kept_epoch()
        self.epochs.append({"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()}})
        improved = self.keep_epoch_by != "last" and self.kept_epoch() == epoch + 1
        if improved:
            # Named by epoch: weights of an epoch the ledger does not name yet are never loaded.
            self.best_dir.mkdir(parents=True, exist_ok=True)
            for stale in self.best_dir.glob("*.weights.h5"):
                stale.unlink()
            model.save_weights(self.best_dir / best_weights_name(epoch + 1))
            self._mirror(self.best_dir, self.layout.checkpoint_best)
        # The ledger is written (and mirrored) after the weights: it names the best epoch.
        (self.backup_dir / EPOCH_LEDGER).write_text(json.dumps(self.epochs))
        self._mirror(self.tensorboard_dir, self.layout.tensorboard)
        self._mirror(self.backup_dir, self.layout.checkpoint_backup)
        if improved and previous_best:
            delete_prefix(self.client, self.layout.best_weights(previous_best))

    def _mirror(self, folder: Path, uri: S3Uri) -> None:
        """Uploads weights before the JSON metadata that says which epoch they belong to, so
        a crash mid-upload never pairs new metadata with old weights."""
        files = sorted(path for path in folder.rglob("*") if path.is_file())
        for batch in ([p for p in files if p.suffix != ".json"], [p for p in files if p.suffix == ".json"]):
            parallel_map(
                lambda path: upload_file(self.client, path, uri.join(path.relative_to(folder).as_posix())),
                batch,
            )

    def history(self) -> TrainingHistory:
        """Metrics of every finished epoch, each once, across all tries."""
        names = [name for name in self.epochs[0] if name != "epoch"] if self.epochs else []
        return TrainingHistory(
            epochs=[int(entry["epoch"]) for entry in self.epochs],
            metrics={name: [entry[name] for entry in self.epochs] for name in names},
            kept_epoch=self.kept_epoch(),
            kept_by=self.keep_epoch_by,
            stopped_early=self.patience_ran_out(),
        )

    def finish(self) -> None:
        self._mirror(self.tensorboard_dir, self.layout.tensorboard)
        removed = delete_prefix(self.client, self.layout.checkpoints)
        log.info("attempt finished; removed %d checkpoint objects", removed)
