"""Small report images drawn with Pillow (no plotting library in the worker image)."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw

CELL = 44
MARGIN = 90


def confusion_matrix_png(matrix: list[list[int]], class_names: list[str], title: str) -> bytes:
    """A labelled heat map: rows are true classes, columns predicted; counts in each cell."""
    size = len(class_names)
    width = MARGIN + CELL * size + 20
    height = MARGIN + CELL * size + 20
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((10, 8), title, fill="black")
    draw.text((MARGIN, 28), "predicted ->", fill="black")
    draw.text((6, MARGIN - 16), "true", fill="black")
    peak = max(max(row) for row in matrix) or 1
    for row_index, row in enumerate(matrix):
        draw.text((6, MARGIN + row_index * CELL + CELL // 3), class_names[row_index][:12], fill="black")
        for column_index, count in enumerate(row):
            if row_index == 0:
                draw.text(
                    (MARGIN + column_index * CELL + 4, MARGIN - 30),
                    class_names[column_index][:6],
                    fill="black",
                )
            shade = int(255 - 200 * count / peak)
            left, top = MARGIN + column_index * CELL, MARGIN + row_index * CELL
            colour = (shade, shade, 255) if row_index == column_index else (255, shade, shade)
            draw.rectangle([left, top, left + CELL - 2, top + CELL - 2], fill=colour)
            draw.text((left + 8, top + CELL // 3), str(count), fill="black")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
