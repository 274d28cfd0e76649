"""Makes a training attempt resumable: Keras' BackupAndRestore writes a local backup each
epoch, and this module mirrors it (with the per-epoch history and TensorBoard logs) to S3
under the attempt, so a retried task, on any worker or container, continues from the last
finished epoch. The checkpoints are deleted once the attempt's outputs are published."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from tasks.layout import AttemptLayout
from tasks.storage import S3Client, S3Uri, delete_prefix, download_tree, parallel_map, upload_file

log = logging.getLogger(__name__)

EPOCH_LEDGER = "epochs.json"


class ResumableAttempt:
    """Local backup and TensorBoard folders for one attempt, kept in sync with S3."""

    def __init__(self, client: S3Client, attempt: AttemptLayout, scratch: Path) -> None:
        self.client = client
        self.checkpoint_uri = attempt.checkpoints
        self.tensorboard_uri = attempt.tensorboard
        self.backup_dir = scratch / "backup"
        self.tensorboard_dir = scratch / "tensorboard"
        self.epochs: list[dict[str, float]] = []

    def restore(self) -> int:
        """Fetches an earlier try's backup, if any; returns the number of finished epochs."""
        download_tree(self.client, self.checkpoint_uri, self.backup_dir)
        ledger = self.backup_dir / EPOCH_LEDGER
        if ledger.exists():
            self.epochs = json.loads(ledger.read_text())
            log.info("resuming after epoch %d from %s", len(self.epochs), self.checkpoint_uri)
        return len(self.epochs)

    def callbacks(self) -> list[Any]:
        """BackupAndRestore first, so the mirror uploads the backup of the epoch just ended."""
        import keras

        attempt = self

        class _MirrorToS3(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                attempt.record_epoch(epoch, logs or {})

        return [
            keras.callbacks.BackupAndRestore(str(self.backup_dir)),
            keras.callbacks.TensorBoard(str(self.tensorboard_dir)),
            _MirrorToS3(),
        ]

    def record_epoch(self, epoch: int, logs: dict) -> None:
        self.epochs.append({"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()}})
        (self.backup_dir / EPOCH_LEDGER).write_text(json.dumps(self.epochs))
        self._mirror(self.tensorboard_dir, self.tensorboard_uri)
        self._mirror(self.backup_dir, self.checkpoint_uri)

    def _mirror(self, folder: Path, uri: S3Uri) -> None:
        """Uploads weights before the JSON metadata that says which epoch they belong to, so
        a crash mid-upload never pairs new metadata with old weights."""
        files = sorted(path for path in folder.rglob("*") if path.is_file())
        for batch in ([p for p in files if p.suffix != ".json"], [p for p in files if p.suffix == ".json"]):
            parallel_map(
                lambda path: upload_file(self.client, path, uri.join(path.relative_to(folder).as_posix())),
                batch,
            )

    def history(self) -> dict[str, Any]:
        """Metrics of every finished epoch, each once, across all tries."""
        names = [name for name in self.epochs[0] if name != "epoch"] if self.epochs else []
        return {
            "epochs": [entry["epoch"] for entry in self.epochs],
            "metrics": {name: [entry[name] for entry in self.epochs] for name in names},
        }

    def finish(self) -> None:
        self._mirror(self.tensorboard_dir, self.tensorboard_uri)
        removed = delete_prefix(self.client, self.checkpoint_uri)
        log.info("attempt finished; removed %d checkpoint objects", removed)
