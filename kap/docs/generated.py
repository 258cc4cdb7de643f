"""The docs rendered from code and data, in one list: `kap docs` writes them, a test keeps them current."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def _events() -> str:
    from ingest import events

    return events.render_markdown()


def _reasons() -> str:
    from ingest import reasons

    return reasons.render_markdown()


def _quality() -> str:
    from kap.quality.docs import render_markdown

    return render_markdown()


def _tables() -> str:
    from kap.settings import DBT_PROJECT_DIR
    from kap.docs.dictionary import render_markdown

    return render_markdown(DBT_PROJECT_DIR)


# path under docs/ -> renderer
GENERATED: dict[str, Callable[[], str]] = {
    "events.md": _events,
    "quarantine.md": _reasons,
    "quality.md": _quality,
    "analyst/tables.md": _tables,
}


def write_all(folder: Path) -> list[Path]:
    written = []
    for name, render in GENERATED.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(), encoding="utf-8")
        written.append(path)
    return written
