"""The nightly pipeline as plain functions: `kap run` calls `run`, the Airflow DAG calls the steps.

ingest -> validate landing -> dbt build -> validate marts -> publish -> report.
A critical data-quality failure raises before publish, so the last good analytics.duckdb stays.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from kap.settings import Settings
from kap.warehouse import writer_lock

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


class Stages(Protocol):
    """Who watches the stages of a run (the command line's live lines); every call is optional work."""

    def start(self, key: str, label: str) -> None: ...
    def update(self, key: str, done: int, total: int | None = None, detail: str = "") -> None: ...
    def finish(self, key: str, detail: str = "") -> None: ...


class NoStages:
    """Nobody watching: the log records the run."""

    def start(self, key: str, label: str) -> None:
        pass

    def update(self, key: str, done: int, total: int | None = None, detail: str = "") -> None:
        pass

    def finish(self, key: str, detail: str = "") -> None:
        pass


def ingest_detail(summary) -> str:
    t = summary.totals
    text = (f"{t['files_ingested']} new files, {t['events_added']:,} events, "
            f"{t['records_quarantined']:,} quarantined, {t['files_skipped']} already in")
    if t["files_rejected"] or t["files_failed"]:
        text += f", {t['files_rejected']} rejected, {t['files_failed']} failed"
    return text


def _file_watch(stages: Stages) -> Callable[[int, int, Any], None]:
    events = [0]

    def on_file(done: int, total: int, result) -> None:
        if result is not None:
            events[0] += result.events_added
        stages.update("ingest", done, total, f"{done}/{total} files, {events[0]:,} events")
    return on_file


def new_run_id(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.timezone.utc)
    return "manual__" + now.strftime("%Y%m%dT%H%M%S%fZ")


@dataclass
class RunSummary:
    run_id: str
    as_of: str | None
    steps: dict[str, Any] = field(default_factory=dict)
    published: Path | None = None
    report: Path | None = None


def step_ingest(landing: Path, settings: Settings, run_id: str | None = None,
                progress: Progress | None = None, sources: list[str] | None = None,
                stages: Stages | None = None):
    """The ingest library (ingest.loader) on the warehouse, as its single writer."""
    from ingest.loader import ingest_landing
    from kap.settings import clinic_time_zones, default_time_zone
    from kap.warehouse import writer

    on_file = _file_watch(stages) if stages is not None else None
    with writer(settings) as con:
        summary = ingest_landing(con, Path(landing), run_id=run_id, progress=progress, sources=sources,
                                 time_zones=clinic_time_zones(), default_time_zone=default_time_zone(),
                                 limits=settings.limits, on_file=on_file)
        # the lake follows the committed log (kap/lake.py): DuckDB first, then the Parquet copy
        step_lake_sync(settings, con)
    return summary


def step_lake_sync(settings: Settings, con=None) -> dict[str, int]:
    """Copy the log's committed rows the lake lacks to it (idempotent; see kap/lake.py)."""
    from kap import lake
    from kap.warehouse import writer

    if con is not None:
        return lake.sync(con, settings.lake)
    with writer(settings) as own:
        return lake.sync(own, settings.lake)


def step_validate(settings: Settings, stage: str, run_id: str, as_of: str | None = None,
                  full_checks: bool = False):
    from kap.quality import validate

    return validate(settings, stage=stage, run_id=run_id, as_of=as_of, full_checks=full_checks)


def step_build(settings: Settings, as_of: str | None = None, full_refresh: bool = False,
               stages: Stages | None = None, full_checks: bool = False):
    """dbt build on the engine of settings.engine: DuckDB (kap.transform), or Spark from the lake
    (kap.spark; always a full rebuild, the marts read back into the warehouse). full_checks: the
    staging tests read every row, not only what changed tonight (kap.transform.build)."""
    if settings.engine == "spark":
        from kap.spark import build
    else:
        from kap.transform import build

    on_node = None
    if stages is not None:
        def on_node(done: int, total: int, name: str) -> None:
            stages.update("build", done, total, f"{done}/{total} nodes")
    if settings.engine == "spark":
        return build(settings, as_of=as_of, on_node=on_node)
    return build(settings, as_of=as_of, full_refresh=full_refresh, on_node=on_node, full_checks=full_checks)


def step_publish(settings: Settings, run_id: str, as_of: str | None = None, target: Path | None = None) -> Path:
    from kap.publish import publish

    return publish(settings, run_id=run_id, as_of=as_of, target=target)


def step_report(settings: Settings, run_id: str) -> Path | None:
    try:
        from kap.report import write_run_report
    except ImportError:  # the run report is optional until it exists
        return None
    return write_run_report(settings, run_id=run_id)


def run(landing: Path, settings: Settings, as_of: str | None = None, run_id: str | None = None,
        full_refresh: bool = False, progress: Progress | None = None,
        stages: Stages | None = None, full_checks: bool = False) -> RunSummary:
    """The whole nightly pipeline without Airflow, holding the single-writer lock throughout.

    progress: one message per step and per ingested file (default: the log). stages: a watcher
    told when each stage starts, how far it is and how it ended (the command line's live lines).
    """
    settings.ensure_dirs()
    run_id = run_id or new_run_id()
    say = progress or (lambda msg: log.info(msg))
    watch = stages or NoStages()
    summary = RunSummary(run_id=run_id, as_of=as_of)
    with writer_lock(settings):
        say(f"[1/6] ingest {landing}")
        watch.start("ingest", "ingest")
        ingested = summary.steps["ingest"] = step_ingest(landing, settings, run_id, progress=progress,
                                                         stages=watch)
        watch.finish("ingest", ingest_detail(ingested))
        say("[2/6] validate landing")
        watch.start("validate_landing", "check landing")
        checked = summary.steps["validate_landing"] = step_validate(settings, "landing", run_id, as_of, full_checks)
        watch.finish("validate_landing", _checks_detail(checked))
        say("[3/6] dbt build")
        watch.start("build", "dbt build")
        step_build(settings, as_of=as_of, full_refresh=full_refresh, stages=watch, full_checks=full_checks)
        watch.finish("build")   # the last node count stands
        say("[4/6] validate marts")
        watch.start("validate_marts", "check marts")
        checked = summary.steps["validate_marts"] = step_validate(settings, "marts", run_id, as_of, full_checks)
        watch.finish("validate_marts", _checks_detail(checked))
        say("[5/6] publish")
        watch.start("publish", "publish")
        summary.published = step_publish(settings, run_id, as_of)
        watch.finish("publish", str(summary.published))
        say("[6/6] run report")
        watch.start("report", "run report")
        summary.report = step_report(settings, run_id)
        watch.finish("report", str(summary.report) if summary.report else "not written")
    return summary


def _checks_detail(outcome) -> str:
    return (f"{outcome.status}: {outcome.checks} checks, {len(outcome.failed_critical)} critical "
            f"and {len(outcome.failed_warning)} warning failures")
