"""What the command line shows: one line per stage, a short summary table, one-line failures.

Guarantees:
- The console gets, per stage, one line with its counts and elapsed time (live on a terminal,
  with a bar for the files of ingest; printed as each stage ends otherwise), then a summary table.
- Everything else goes to the run's log file, KAP_HOME/logs/<run id>.log: every log record at
  INFO (DEBUG with -v), dbt's node log included (logger `kap.dbt`, see kap/transform.py).
- Without -v the console shows only warnings and errors of the project's own code (`kap`,
  `ingest`); with -v it shows the whole log as well.
- A failure ends in one line: what failed, what to do, and the log's path. The traceback is shown
  only with -v (it is always in the log file).
"""
from __future__ import annotations

import logging
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, SpinnerColumn, Task, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
OWN_LOGGERS = ("kap", "ingest")
_CONSOLE_HANDLER = "kap-console"


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


class _OwnWarnings(logging.Filter):
    """Quiet mode: the project's own warnings and errors reach the console; dbt's log does not."""

    def filter(self, record: logging.LogRecord) -> bool:
        own = record.name.split(".")[0] in OWN_LOGGERS and not record.name.startswith("kap.dbt")
        return own and record.levelno >= logging.WARNING


class _Stderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time, so a live display (which redirects it) stays whole."""

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


class _OneLine(logging.Formatter):
    """Quiet mode: `warning: message`, no traceback (the log file has it)."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


def setup_logging(verbose: bool) -> None:
    """The console handler (once per process): the whole log with -v, else own warnings only."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _CONSOLE_HANDLER:
            root.removeHandler(handler)
    handler = _Stderr()
    if verbose:
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
    else:
        handler.setFormatter(_OneLine())
        handler.addFilter(_OwnWarnings())
    handler.set_name(_CONSOLE_HANDLER)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


def failure_line(exc: BaseException) -> str:
    """One line: what failed and what to do about it."""
    from kap.quality import CriticalCheckFailed
    from kap.transform import DbtBuildError
    from kap.warehouse import WarehouseBusy

    if isinstance(exc, DbtBuildError):
        first = exc.failures[0] if exc.failures else str(exc).splitlines()[0]
        more = f" (and {len(exc.failures) - 1} more)" if len(exc.failures) > 1 else ""
        return (f"dbt failed: {_short(first)}{more}. Fix the model or data it names and run again; "
                "analytics.duckdb was left as it was")
    if isinstance(exc, CriticalCheckFailed):
        checks = ", ".join(r.check_id for r in exc.outcome.failed_critical)
        where = f"; report {exc.outcome.report}" if exc.outcome.report else ""
        return (f"critical data-quality check(s) failed in {exc.outcome.stage}: {_short(checks)}. "
                f"analytics.duckdb was left as it was; see dq.check_results{where}")
    if isinstance(exc, WarehouseBusy):
        return f"{_short(str(exc))}. Set KAP_LOCK_WAIT_SECONDS to wait longer"
    return f"{type(exc).__name__}: {_short(str(exc))}. Run again with -v for the traceback"


def _short(text: str, limit: int = 240) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


class _MaybeBar(BarColumn):
    """A bar only for stages that count toward a total (the files of ingest)."""

    def render(self, task: Task) -> Text:
        return super().render(task) if task.fields.get("bar") else Text("")


@dataclass
class _Stage:
    label: str
    started: float
    detail: str = ""
    seconds: float | None = None
    task: int | None = None


class RunConsole:
    """The console of one `kap run` / `kap ingest` / `kap build`: stage lines, summary, failures.

    Use as a context manager around the work; pass it as `stages=` to kap.pipeline. On an
    exception it prints the failure line (and, with -v, the traceback) and exits with status 1.
    """

    def __init__(self, command: str, log_file: Path, verbose: bool = False) -> None:
        self.command = command
        self.log_file = log_file
        self.verbose = verbose
        self.console = stderr_console()
        self.live = self.console.is_terminal
        self.stages: dict[str, _Stage] = {}
        self.current: str | None = None
        self.started = time.monotonic()
        self._file_handler: logging.Handler | None = None
        self._progress: Progress | None = None

    # --- context -------------------------------------------------------------------------------
    def __enter__(self) -> "RunConsole":
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(self.log_file, encoding="utf-8")
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler.setLevel(logging.DEBUG if self.verbose else logging.INFO)
        logging.getLogger().addHandler(handler)
        self._file_handler = handler
        if self.live:
            self._progress = Progress(
                SpinnerColumn(finished_text="[green]✓"),
                TextColumn("{task.description:<14}"),
                _MaybeBar(bar_width=24),
                TextColumn("{task.fields[detail]}"),
                TimeElapsedColumn(),
                console=self.console, transient=False)
            self._progress.start()
        logging.getLogger(__name__).info("kap %s: log file %s", self.command, self.log_file)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        failed_stage = self.current
        if exc is not None and failed_stage is not None:
            self._mark_failed(failed_stage)
        if self._progress is not None:
            self._progress.stop()
        if exc is not None and isinstance(exc, Exception) and self._file_handler is not None:
            # the traceback goes to the log file only; the console gets one line (below)
            self._file_handler.handle(logging.LogRecord(__name__, logging.ERROR, __file__, 0,
                                                        "kap %s failed", (self.command,), (exc_type, exc, tb)))
        self._close_log()
        if exc is None or not isinstance(exc, Exception):
            return False
        if self.verbose:
            traceback.print_exception(exc_type, exc, tb, file=sys.stderr)
        where = f" at {self.stages[failed_stage].label}" if failed_stage else ""
        self.console.print(Text(f"kap {self.command} failed{where}: {failure_line(exc)}. Log: {self.log_file}",
                                style="red"))
        raise SystemExit(1)

    def _close_log(self) -> None:
        if self._file_handler is not None:
            logging.getLogger().removeHandler(self._file_handler)
            self._file_handler.close()
            self._file_handler = None

    # --- the Stages protocol (kap.pipeline) ----------------------------------------------------
    def start(self, key: str, label: str) -> None:
        stage = _Stage(label=label, started=time.monotonic())
        if self._progress is not None:
            stage.task = self._progress.add_task(label, total=None, detail="", bar=False)
        self.stages[key] = stage
        self.current = key

    def update(self, key: str, done: int, total: int | None = None, detail: str = "") -> None:
        stage = self.stages.get(key)
        if stage is None:
            return
        stage.detail = detail
        if self._progress is not None and stage.task is not None:
            self._progress.update(stage.task, completed=done, total=total, detail=detail,
                                  bar=key == "ingest" and bool(total))

    def finish(self, key: str, detail: str = "") -> None:
        stage = self.stages.get(key)
        if stage is None:
            return
        stage.seconds = time.monotonic() - stage.started
        stage.detail = detail or stage.detail
        if self._progress is not None and stage.task is not None:
            task = self._progress.tasks[stage.task]
            total = task.total or 1
            self._progress.update(stage.task, completed=total, total=total, detail=stage.detail)
            self._progress.stop_task(stage.task)
        else:
            self.console.print(f"✓ {stage.label:<14} {stage.detail}  {stage.seconds:.1f}s")
        if self.current == key:
            self.current = None

    def _mark_failed(self, key: str) -> None:
        stage = self.stages[key]
        stage.seconds = time.monotonic() - stage.started
        if self._progress is not None and stage.task is not None:
            self._progress.update(stage.task, detail="[red]failed")
            self._progress.stop_task(stage.task)
        else:
            self.console.print(f"✗ {stage.label:<14} failed  {stage.seconds:.1f}s")

    # --- the end -------------------------------------------------------------------------------
    def summary(self, rows: list[tuple[str, str]], paths: list[tuple[str, Path | str | None]]) -> None:
        """The closing table (what the run did) and the paths a user opens next."""
        out = Console(highlight=False, soft_wrap=True)
        if not out.is_terminal:   # a pipe or a file: no 80-column squeeze
            out = Console(highlight=False, soft_wrap=True, width=200)
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                      title=None, show_header=True)
        table.add_column(f"kap {self.command}", no_wrap=True)
        table.add_column(f"finished in {time.monotonic() - self.started:.0f}s", no_wrap=True)
        for what, value in rows:
            table.add_row(what, value)
        out.print(table)
        for what, path in paths:
            if path:
                out.print(f"{what}: {path}")
        out.print(f"log: {self.log_file}")
