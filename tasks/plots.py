"""The pictures people open beside a model: the confusion matrix and the training curves,
drawn with matplotlib's Agg backend (no display) as PNG bytes."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tasks.checkpoints import TrainingHistory


def _figure(width: float, height: float, panels: int = 1) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=110, layout="constrained")
    return figure, figure.subplots(1, panels)


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def confusion_matrix_png(matrix: list[list[int]], class_names: list[str], title: str) -> bytes:
    """A heat map with counts: rows are true classes, columns predicted; full class names."""
    import numpy as np

    counts = np.asarray(matrix)
    side = 2.2 + 0.55 * len(class_names)
    figure, axes = _figure(side + 1.2, side)
    image = axes.imshow(counts, cmap="Blues")
    figure.colorbar(image, ax=axes, shrink=0.8, label="images")
    ticks = range(len(class_names))
    axes.set_xticks(ticks, class_names, rotation=45, ha="right", rotation_mode="anchor")
    axes.set_yticks(ticks, class_names)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(title)
    threshold = counts.max() / 2 if counts.size else 0
    for (row, column), count in np.ndenumerate(counts):
        if count:
            colour = "white" if count > threshold else "black"
            axes.text(column, row, str(count), ha="center", va="center", color=colour, fontsize=8)
    return _png(figure)


def training_curves_png(history: TrainingHistory, title: str) -> bytes:
    """Loss and accuracy per epoch, training vs validation, with the kept epoch marked."""
    epochs = history.epochs
    metrics = history.metrics
    kept = history.kept_epoch
    figure, panels = _figure(10, 4, panels=2)
    for axes, name in zip(panels, ("loss", "accuracy"), strict=True):
        for key, label, style in ((name, "training", "-o"), (f"val_{name}", "validation", "-s")):
            if key in metrics:
                axes.plot(epochs, metrics[key], style, label=label, markersize=4)
        if kept:
            axes.axvline(kept, color="grey", linestyle="--", label=f"kept epoch {kept}")
        axes.set_xlabel("epoch")
        axes.set_ylabel(name)
        axes.set_xticks(epochs if len(epochs) <= 20 else epochs[:: max(1, len(epochs) // 10)])
        axes.grid(alpha=0.3)
        axes.legend()
    figure.suptitle(title)
    return _png(figure)
