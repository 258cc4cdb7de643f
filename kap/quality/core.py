"""`validate(settings, stage, run_id, as_of)`: run one stage's checks, store, report, gate."""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from kap.settings import Settings
from kap.quality.catalogue import STAGES, Check, load_catalogue
from kap.quality.report import safe_name, write_report
from kap.quality.runner import CheckResult, run_checks
from kap.quality.store import ensure_dq_schema, results_for_run, store_results

log = logging.getLogger(__name__)


@dataclass
class ValidationOutcome:
    run_id: str
    stage: str
    status: str                       # passed | warning | failed
    results: list[CheckResult] = field(default_factory=list)
    report: Path | None = None
    checked_now: str | None = None

    def _count(self, status: str, severity: str | None = None) -> int:
        return sum(1 for r in self.results if r.status == status and (severity is None or r.severity == severity))

    @property
    def checks(self) -> int:
        return len(self.results)

    @property
    def failed_critical(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "failed" and r.severity == "critical"]

    @property
    def failed_warning(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "failed" and r.severity == "warning"]

    @property
    def not_run(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "not_run"]

    @property
    def passed(self) -> bool:
        return not self.failed_critical

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "stage": self.stage, "status": self.status, "checks": self.checks,
                "passed": self._count("passed"), "failed_critical": len(self.failed_critical),
                "failed_warning": len(self.failed_warning), "not_run": len(self.not_run),
                "report": str(self.report) if self.report else None,
                "warnings": [r.check_id for r in self.failed_warning],
                "critical": [r.check_id for r in self.failed_critical]}

    def __str__(self) -> str:
        lines = [f"{self.stage}: {self.status} - {self.checks} checks, {self._count('passed')} passed, "
                 f"{len(self.failed_critical)} critical and {len(self.failed_warning)} warning failures, "
                 f"{len(self.not_run)} not run"]
        for r in self.failed_critical + self.failed_warning:
            lines.append(f"  {r.severity.upper():8} {r.check_id}: {r.detail or 'failed'}"
                         + (f" [keys: {', '.join(r.failing_keys_sample[:3])}]" if r.failing_keys_sample else ""))
        if self.not_run:
            lines.append(f"  not run: {', '.join(r.check_id for r in self.not_run)}")
        if self.report:
            lines.append(f"  report: {self.report}")
        return "\n".join(lines)


class CriticalCheckFailed(Exception):
    """A critical data-quality check failed: the pipeline stops before publishing."""

    def __init__(self, outcome: ValidationOutcome):
        self.outcome = outcome
        lines = [f"critical data-quality check(s) failed in stage {outcome.stage} (run {outcome.run_id}):"]
        for r in outcome.failed_critical:
            keys = ", ".join(r.failing_keys_sample) or "-"
            lines.append(f"  - {r.check_id} ({r.target}.{r.column or '*'}): {r.detail}; "
                         f"failing rows in {r.location}; sample keys: {keys}")
            if r.target.startswith("landing.log_"):
                from kap.quality.targets import RETRACT_HINT

                lines.append(f"    these records are in the event log and block every run until cleared: {RETRACT_HINT}")
        lines.append(f"  all results: dq.check_results where run_id = '{outcome.run_id}'"
                     + (f"; report: {outcome.report}" if outcome.report else ""))
        super().__init__("\n".join(lines))


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def resolve_now(con: duckdb.DuckDBPyConnection, run_id: str, as_of: str | None) -> str | None:
    """"Now" for future-date checks: as_of, else this run's ingest time, else the latest ingest."""
    if as_of:
        return str(as_of)
    row = con.execute("SELECT max(ingested_at) FROM raw.ingest_files WHERE run_id = ?", [run_id]).fetchone()
    if row and row[0] is None:
        row = con.execute("SELECT max(ingested_at) FROM raw.ingest_files").fetchone()
    return str(row[0]) if row and row[0] is not None else None


LAKE_NIGHT_DETAIL = ("read for the night: the row counts of every table, the checksums of the rows committed "
                     "since {since} (the start of the last landing validation whose lake check passed); "
                     "the full checks compare the checksums of every row")


def validate(settings: Settings, stage: str, run_id: str, as_of: str | None = None,
             checks: list[Check] | None = None, full_checks: bool = False) -> ValidationOutcome:
    """Run the catalogue's checks of one stage, store them in dq.*, write the HTML report.

    full_checks: the checks on the log's current state read every record; without it (and
    without as_of) a night reads the records it sent and every record with a failing version
    (kap.quality.runner.night_scope), which finds the same failures, and the lake check compares
    every row count but only the checksums of the rows committed since its last pass
    (kap.lake.night_since): a part lost or copied is found on any night, a part altered in place
    before that pass by the full checks.

    Raises CriticalCheckFailed (after storing) when a critical check failed.
    """
    from kap.warehouse import writer

    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, not {stage!r}")
    checks = load_catalogue(stage=stage) if checks is None else [c for c in checks if c.stage == stage]
    started = _utcnow()
    with writer(settings) as con:
        ensure_dq_schema(con)
        lake_since = None
        if any(c.target == "landing.log_lake" for c in checks):
            from kap import lake

            # a night compares every row count, and the checksums of what came since the last pass
            lake_since = None if full_checks or as_of is not None else lake.night_since(con)
            lake.stage_check(con, settings.lake, lake_since)
        now = resolve_now(con, run_id, as_of)
        log.info("validating %s: %d checks (now = %s)", stage, len(checks), now)
        results = run_checks(con, checks, run_id, now, full=full_checks or as_of is not None)
        if lake_since is not None:
            for result in results:
                if result.target == "landing.log_lake" and result.status != "not_run" and not result.detail:
                    result.detail = LAKE_NIGHT_DETAIL.format(since=lake_since.isoformat(sep=" ", timespec="seconds"))
        outcome = ValidationOutcome(run_id, stage, "passed", results, checked_now=now)
        outcome.status = "failed" if outcome.failed_critical else "warning" if outcome.failed_warning else "passed"
        report_path = settings.dq_dir / f"{safe_name(run_id)}.html"
        store_results(con, {
            "run_id": run_id, "stage": stage, "started_at": started, "finished_at": _utcnow(),
            "status": outcome.status, "checks": outcome.checks,
            "failed_critical": len(outcome.failed_critical), "failed_warning": len(outcome.failed_warning),
            "not_run": len(outcome.not_run), "as_of": as_of, "checked_now": now,
            "report_path": str(report_path)}, results)
        runs, rows = results_for_run(con, run_id)
    outcome.report = write_report(settings.dq_dir, run_id, runs, rows)
    log.info("%s checks: %s (%d critical, %d warning failures, %d not run); report %s", stage, outcome.status,
             len(outcome.failed_critical), len(outcome.failed_warning), len(outcome.not_run), outcome.report)
    if outcome.failed_critical:
        raise CriticalCheckFailed(outcome)
    return outcome
