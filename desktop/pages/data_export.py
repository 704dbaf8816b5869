"""Data page: the export dialog (split from desktop/pages/data.py). The functions take the page; DataPage
binds them as its methods."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox

from core.data.formats import FORMATS
from core.errors import WhetstoneError

if TYPE_CHECKING:
    from desktop.pages.data import DataPage

EXPORT_FILTERS = {
    ".jsonl": "JSON Lines (*.jsonl)",
    ".json": "JSON array (*.json)",
    ".csv": "CSV (*.csv)",
    ".parquet": "Parquet (*.parquet)",
}


def export_dialog(page: DataPage) -> None:
    ws = page.workspace
    if ws is None:
        return
    fmt, ok = QInputDialog.getItem(
        page,
        "Export",
        "Record format:",
        list(FORMATS),
        list(FORMATS).index(ws.source_format) if ws.source_format in FORMATS else 0,
        False,
    )
    if not ok:
        return
    source = Path(ws.meta("source") or ws.path)
    path, chosen = QFileDialog.getSaveFileName(
        page,
        "Export dataset",
        str(source.with_name(f"{source.stem}-{fmt}.jsonl")),
        ";;".join(EXPORT_FILTERS.values()),
    )
    if not path:
        return
    target = Path(path)
    if target.suffix not in EXPORT_FILTERS:
        suffix = next((s for s, f in EXPORT_FILTERS.items() if f == chosen), ".jsonl")
        target = target.with_suffix(suffix)
    page.export_to(target, fmt)


def export_to(page: DataPage, target: Path, fmt: str) -> Any:
    ws = page.workspace
    assert ws is not None
    try:
        result = ws.export(target, fmt)
    except WhetstoneError as exc:
        QMessageBox.warning(page, "Export", str(exc))
        return None
    message = f"Exported {result.written:,} examples to {target.name}"
    if result.skipped:
        first = result.skipped[0][1]
        message += f"; {len(result.skipped):,} could not be written as {fmt} (e.g. {first})"
        QMessageBox.information(page, "Export", message)
    page.ctx.status(message, 10000)
    return result
