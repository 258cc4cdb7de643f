"""The nightly pipeline as plain functions: `kap run` calls `run`, the Airflow DAG calls the steps.

ingest -> validate landing -> dbt build -> validate marts -> publish -> report.
A critical data-quality failure raises before publish, so the last good analytics.duckdb stays.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from kap.settings import Settings
from kap.warehouse import writer_lock

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


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
                progress: Progress | None = None, sources: list[str] | None = None):
    """The ingest library (ingest.loader) on the warehouse, as its single writer."""
    from ingest.loader import ingest_landing
    from kap.settings import clinic_time_zones, default_time_zone
    from kap.warehouse import writer

    with writer(settings) as con:
        return ingest_landing(con, Path(landing), run_id=run_id, progress=progress, sources=sources,
                              time_zones=clinic_time_zones(), default_time_zone=default_time_zone(),
                              limits=settings.limits)


def step_validate(settings: Settings, stage: str, run_id: str, as_of: str | None = None):
    from kap.quality import validate

    return validate(settings, stage=stage, run_id=run_id, as_of=as_of)


def step_build(settings: Settings, as_of: str | None = None, full_refresh: bool = False):
    from kap.transform import build

    return build(settings, as_of=as_of, full_refresh=full_refresh)


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
        full_refresh: bool = False, progress: Progress | None = None) -> RunSummary:
    """The whole nightly pipeline without Airflow, holding the single-writer lock throughout."""
    settings.ensure_dirs()
    run_id = run_id or new_run_id()
    say = progress or (lambda msg: log.info(msg))
    summary = RunSummary(run_id=run_id, as_of=as_of)
    with writer_lock(settings):
        say(f"[1/6] ingest {landing}")
        summary.steps["ingest"] = step_ingest(landing, settings, run_id, progress=progress)
        say("[2/6] validate landing")
        summary.steps["validate_landing"] = step_validate(settings, "landing", run_id, as_of)
        say("[3/6] dbt build")
        step_build(settings, as_of=as_of, full_refresh=full_refresh)
        say("[4/6] validate marts")
        summary.steps["validate_marts"] = step_validate(settings, "marts", run_id, as_of)
        say("[5/6] publish")
        summary.published = step_publish(settings, run_id, as_of)
        say("[6/6] run report")
        summary.report = step_report(settings, run_id)
    return summary
