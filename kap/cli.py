"""`kap`: the command line. Each command calls the same functions as the Airflow DAGs.

Imports are lazy so that `kap --help` answers at once. `kap run`, `kap ingest` and `kap build`
show one line per stage and a summary table and write their full log to KAP_HOME/logs/
(kap/console.py); -v shows the log on the console too. Any failure ends in one line saying what
failed and what to do; the traceback only with -v.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
from pathlib import Path

import click

from kap.settings import Settings

HOME_HELP = "Pipeline home (default: $KAP_HOME, else var/ in the project root)."


def _settings(home: str | None) -> Settings:
    return Settings.from_env(home).ensure_dirs()


def _as_of(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO timestamp such as 2025-06-01T00:00:00") from None
    return parsed.replace(tzinfo=None).isoformat(sep=" ") if parsed.tzinfo is None else \
        parsed.astimezone(dt.timezone.utc).replace(tzinfo=None).isoformat(sep=" ")


def _echo_json(data) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


home_option = click.option("--home", envvar="KAP_HOME", default=None, help=HOME_HELP)
as_of_option = click.option("--as-of", "as_of", default=None, metavar="TIMESTAMP",
                            help="Rebuild as the clinic knew it at this time (UTC), e.g. 2025-06-01T00:00:00.")

full_checks_option = click.option(
    "--full-checks", is_flag=True,
    help="Run the data tests on every row; without it a night's staging tests read only the rows "
         "that changed since the last build, and the landing checks on the log's current state "
         "only the records the run sent and those with a failing version (run this weekly).")


class KapGroup(click.Group):
    """Turns any error into one clear line instead of a traceback (the traceback with -v)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort,
                SystemExit, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - the one place that turns errors into a message
            from kap.console import failure_line

            logging.getLogger("kap.cli").debug("command failed", exc_info=True)
            if ctx.params.get("verbose"):
                import traceback

                traceback.print_exception(exc, file=sys.stderr)
            raise click.ClickException(failure_line(exc)) from None


@click.group(cls=KapGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True,
              help="Show the full log (dbt's node log included) and tracebacks on the console.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """KAP care-pathway pipeline: landing exports -> event log -> marts -> analytics.duckdb."""
    from kap.console import setup_logging
    from kap.settings import restrict_umask

    restrict_umask()      # owner-only files for every command and the Airflow processes it starts
    setup_logging(verbose)
    ctx.obj = {"verbose": verbose}


def _run_console(ctx: click.Context, command: str, settings: Settings, run_id: str):
    from kap.console import RunConsole

    verbose = bool((ctx.find_root().obj or {}).get("verbose"))
    return RunConsole(command, settings.logs_dir / f"{run_id}.log", verbose=verbose)


@main.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Landing folder to write (ehr/, dosing/, notes/ are created in it).")
@click.option("--patients", type=click.IntRange(1), default=200, show_default=True, help="Patients referred.")
@click.option("--days", type=click.IntRange(1), default=180, show_default=True, help="Days of clinic activity.")
@click.option("--seed", type=int, default=42, show_default=True, help="Random seed: same seed, same bytes.")
@click.option("--fault-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Share of records made bad on purpose, plus re-exports with corrections and retractions.")
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), default="2025-01-06", show_default=True,
              help="First day of clinic activity.")
def generate(out: Path, patients: int, days: int, seed: int, fault_rate: float, start: dt.datetime) -> None:
    """Write a seeded sample clinic network: FHIR R4 bulk NDJSON, a dosing log CSV, therapy notes JSONL."""
    from kap.generator import generate as run_generate

    with click.progressbar(length=patients, label="simulating patients", file=sys.stderr) as bar:
        summary = run_generate(out, patients=patients, days=days, seed=seed, fault_rate=fault_rate,
                               start=start.date(), progress=bar.update)
    _echo_json(summary)


@main.command()
@click.argument("landing", type=click.Path(exists=True, file_okay=False, path_type=Path))
@home_option
@click.option("--json", "as_json", is_flag=True, help="Print the ingest summary as JSON instead of a table.")
@click.pass_context
def ingest(ctx: click.Context, landing: Path, home: str | None, as_json: bool) -> None:
    """Ingest new files of a landing folder (ehr/, dosing/, notes/) into the event log, exactly once."""
    from kap.pipeline import ingest_detail, new_run_id, step_ingest

    settings, run_id = _settings(home), new_run_id()
    with _run_console(ctx, "ingest", settings, run_id) as shown:
        shown.start("ingest", "ingest")
        summary = step_ingest(landing, settings, run_id, stages=shown)
        shown.finish("ingest", ingest_detail(summary))
        if as_json:
            _echo_json(summary.to_dict())
        else:
            shown.summary(_ingest_rows(summary), [])
    _fail_on_failed_files(summary)


def _ingest_rows(summary) -> list[tuple[str, str]]:
    """Per source: files, records read, accepted, quarantined, duplicate; events added."""
    rows = []
    for source in ("ehr", "dosing", "notes"):
        files = [f for f in summary.files if f.source == source]
        if not files:
            continue
        new = [f for f in files if f.status == "ingested"]
        rows.append((source, f"{len(new)} new of {len(files)} files; read {sum(f.records_read for f in new):,}, "
                             f"accepted {sum(f.records_accepted for f in new):,}, "
                             f"quarantined {sum(f.records_quarantined for f in new):,}, "
                             f"duplicate {sum(f.records_duplicate for f in new):,}"))
    totals = summary.totals
    rows.append(("events added", f"{totals['events_added']:,}"))
    if summary.ignored_paths:
        rows.append(("not landing files", f"{len(summary.ignored_paths)} ignored"))
    return rows


def _fail_on_failed_files(ingest_summary) -> None:
    """Exit 1 when a file hit an unexpected error: it was rolled back and is retried next run."""
    failed = [f.path for f in ingest_summary.files if f.status == "failed"]
    if failed:
        raise click.ClickException(
            f"{len(failed)} file(s) could not be ingested and were rolled back: {', '.join(failed)}. "
            "The rest was ingested; these are retried on the next run. The log names the error.")


engine_option = click.option(
    "--engine", type=click.Choice(["duckdb", "spark"]), default=None,
    help="Engine that builds the marts: duckdb on the warehouse, or spark on the lake (needs the spark "
         "extra); default $KAP_ENGINE, else duckdb.")


def _with_engine(settings: Settings, engine: str | None) -> Settings:
    import dataclasses

    return dataclasses.replace(settings, engine=engine) if engine else settings


@main.command()
@home_option
@as_of_option
@click.option("--full-refresh", is_flag=True, help="Rebuild incremental models from the whole event log.")
@full_checks_option
@engine_option
@click.pass_context
def build(ctx: click.Context, home: str | None, as_of: str | None, full_refresh: bool,
          full_checks: bool, engine: str | None) -> None:
    """Build staging, intermediate and mart tables with dbt from the event log."""
    from kap.pipeline import new_run_id, step_build

    settings = _with_engine(_settings(home), engine)
    as_of = _as_of(as_of)
    with _run_console(ctx, "build", settings, new_run_id()) as shown:
        shown.start("build", f"dbt build ({settings.engine})" if settings.engine != "duckdb" else "dbt build")
        step_build(settings, as_of=as_of, full_refresh=full_refresh, stages=shown, full_checks=full_checks)
        shown.finish("build")
        shown.summary([("dbt build", f"finished on {settings.engine} (as of {as_of or 'latest'})")], [])


@main.command()
@home_option
@click.option("--stage", type=click.Choice(["landing", "marts", "all"]), default="all", show_default=True,
              help="Which checks to run: on the ingested landing data, on the marts, or both.")
@as_of_option
@full_checks_option
def validate(home: str | None, stage: str, as_of: str | None, full_checks: bool) -> None:
    """Run the data-quality checks; exit 1 when a critical check fails."""
    from kap.pipeline import new_run_id, step_validate
    from kap.quality import CriticalCheckFailed

    settings, run_id = _settings(home), new_run_id()
    stages = ["landing", "marts"] if stage == "all" else [stage]
    try:
        for one in stages:
            outcome = step_validate(settings, one, run_id, _as_of(as_of), full_checks)
            click.echo(str(outcome))
    except CriticalCheckFailed as failure:
        raise click.ClickException(str(failure)) from None


@main.command()
@home_option
@as_of_option
@click.option("--target", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write here instead of KAP_HOME/analytics.duckdb.")
def publish(home: str | None, as_of: str | None, target: Path | None) -> None:
    """Publish the marts to analytics.duckdb atomically (readers see the old or the new file)."""
    from kap.pipeline import new_run_id, step_publish

    path = step_publish(_settings(home), new_run_id(), _as_of(as_of), target)
    click.echo(f"published {path}")


@main.command()
@click.argument("landing", type=click.Path(exists=True, file_okay=False, path_type=Path))
@home_option
@as_of_option
@click.option("--full-refresh", is_flag=True, help="Rebuild incremental models from the whole event log.")
@full_checks_option
@engine_option
@click.pass_context
def run(ctx: click.Context, landing: Path, home: str | None, as_of: str | None, full_refresh: bool,
        full_checks: bool, engine: str | None) -> None:
    """The whole nightly pipeline without Airflow: ingest, check, build, check, publish, report."""
    from kap.pipeline import new_run_id, run as run_pipeline

    settings, run_id = _with_engine(_settings(home), engine), new_run_id()
    as_of = _as_of(as_of)
    with _run_console(ctx, "run", settings, run_id) as shown:
        summary = run_pipeline(landing, settings, as_of=as_of, run_id=run_id, full_refresh=full_refresh,
                               stages=shown, full_checks=full_checks)
        shown.summary(_run_rows(summary), [("analytics", summary.published), ("report", summary.report)])
    _fail_on_failed_files(summary.steps["ingest"])


def _run_rows(summary) -> list[tuple[str, str]]:
    totals = summary.steps["ingest"].totals
    landing, marts = summary.steps["validate_landing"], summary.steps["validate_marts"]
    return [
        ("run", summary.run_id),
        ("ingested", f"{totals['files_ingested']} new files, {totals['events_added']:,} events"),
        ("quarantined", f"{totals['records_quarantined']:,} records (raw.quarantine)"),
        ("data quality", f"landing {landing.status}, marts {marts.status}"),
    ]


@main.group()
def lake() -> None:
    """The event log's Parquet copy (KAP_LAKE, default KAP_HOME/lake) that the Spark engine reads."""


@lake.command("sync")
@home_option
def lake_sync(home: str | None) -> None:
    """Write the lake parts the committed log has and the lake lacks (idempotent; ingest does it too)."""
    from kap.pipeline import step_lake_sync

    settings = _settings(home)
    written = step_lake_sync(settings)
    click.echo(f"{settings.lake}: " + ", ".join(f"{n} new {t} parts" for t, n in written.items()))


@lake.command("check")
@home_option
def lake_check(home: str | None) -> None:
    """Compare the lake with the event log (rows and checksum per table); exit 1 when they differ."""
    from kap import lake as lake_mod
    from kap.warehouse import writer

    settings = _settings(home)
    with writer(settings) as con:
        rows = lake_mod.reconcile(con, settings.lake)
    bad = False
    for r in rows:
        same = (r["log_rows"], r["log_checksum"]) == (r["lake_rows"], r["lake_checksum"])
        bad |= not same
        click.echo(f"{r['lake_table']:18} log {r['log_rows']:>10,} rows  lake {r['lake_rows']:>10,} rows  "
                   + ("same checksum" if same else "DIFFERENT"))
    if bad:
        raise click.ClickException(f"the lake {settings.lake} does not match the event log")


@main.command()
@click.argument("reference", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("candidate", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--clinic-files/--no-clinic-files", default=True, show_default=True,
              help="Also compare the per-clinic files beside each (analytics_clinic_<id>.duckdb).")
def compare(reference: Path, candidate: Path, clinic_files: bool) -> None:
    """Check that two published analytics files hold the same tables row for row (EXCEPT both
    ways; floats rounded as kap/compare.py documents): e.g. a DuckDB build against a Spark build."""
    from kap.compare import compare_published

    report = compare_published(reference, candidate, clinic_files=clinic_files)
    click.echo(report.text())
    if not report.equal:
        raise click.ClickException(f"{candidate} differs from {reference}")


@main.command()
@home_option
def summary(home: str | None) -> None:
    """Print what the published analytics.duckdb holds: patients, episodes, doses, headline figures."""
    from kap.summary import describe

    click.echo(describe(_settings(home)))


@main.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder to write (default: docs/ in the project root).")
def docs(out: Path | None) -> None:
    """Regenerate the docs rendered from code: event catalogue, reason codes, checks, table dictionary."""
    from kap.settings import PROJECT_ROOT
    from kap.docs.generated import write_all

    for path in write_all(out or PROJECT_ROOT / "docs"):
        click.echo(f"wrote {path}")


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@home_option
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def airflow(home: str | None, args: tuple[str, ...]) -> None:
    """Run the `airflow` CLI with this project's environment (AIRFLOW_HOME inside KAP_HOME, our DAGs).

    Example: kap airflow dags test kap_nightly
    """
    from kap.orchestration.environment import airflow_environ, prepare

    settings = _settings(home)
    env = {**os.environ, **airflow_environ(settings)}
    # Airflow's components start `airflow` from PATH: this environment's first
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, *[p for p in env.get("PATH", "").split(os.pathsep) if p != bin_dir]])
    prepare(settings)
    if args and args[0] == "standalone":
        # loopback only: standalone without the log servers that bind every interface
        cmd = [sys.executable, "-m", "kap.orchestration.loopback", *args[1:]]
        os.execve(sys.executable, cmd, env)
    airflow_bin = Path(sys.executable).with_name("airflow")
    os.execve(str(airflow_bin), [str(airflow_bin), *args], env)


if __name__ == "__main__":
    main()
