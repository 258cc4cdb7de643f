"""Crash points: test instrumentation that kills the process at a named moment of a run.

The crash-safety tests (tests/test_crash_safety.py) run `kap run` in a subprocess with the
environment variable `KAP_CRASH_AT` set to one of the names below; when the run reaches that
point, the process sends itself SIGKILL - no `finally`, no atexit, no flush, like a power cut or
the OOM killer. Without `KAP_CRASH_AT` every call is a no-op (one dict lookup), so the calls can
stay in production code.

Points (where the call sits):
- `ingest.mid_file`        loader.ingest_file: the file's events, quarantine rows, keys and
                           raw.ingest_files row are inserted, the transaction is not yet committed;
- `ingest.between_files`   loader.ingest_landing: right after the first file of the run committed;
- `lake.before_rename`     kap.lake.sync: the first missing lake part is written to its hidden
                           temporary name, not yet renamed;
- `lake.between_parts`     kap.lake.sync: the first missing lake part is in place, the others not;
- `build.during`           inside dbt's `build`: after `KAP_CRASH_AFTER_NODES` (default 20) dbt
                           nodes finished, from a dbt event callback (see `dbt_callbacks`), so some
                           models are written and the rest not;
- `publish.mid_copy`       publish.publish: the first mart is copied into the tmp file;
- `publish.before_replace` publish.publish: the tmp file is complete and fsynced, not yet renamed.
"""
from __future__ import annotations

import os
import signal
import threading
from typing import Any, Callable

ENV = "KAP_CRASH_AT"
POINTS = ("ingest.mid_file", "ingest.between_files", "lake.before_rename", "lake.between_parts",
          "build.during", "publish.mid_copy", "publish.before_replace")


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def reached(name: str, when: bool = True) -> None:
    """SIGKILL this process when `KAP_CRASH_AT` names this point (and `when` holds)."""
    if when and os.environ.get(ENV) == name:
        _kill()


def dbt_callbacks() -> list[Callable[[Any], None]]:
    """dbtRunner callbacks for `build.during`: empty unless that point is armed.

    dbt builds the whole project in one invocation, so the point is placed by counting dbt's
    NodeFinished events: the kill lands after N nodes (models or tests) are done and while the
    others are pending or running - really inside dbt's work, deterministically.
    """
    if os.environ.get(ENV) != "build.during":
        return []
    after = int(os.environ.get("KAP_CRASH_AFTER_NODES", "20"))
    seen = [0]
    lock = threading.Lock()

    def on_event(event: Any) -> None:
        if getattr(getattr(event, "info", None), "name", None) != "NodeFinished":
            return
        with lock:
            seen[0] += 1
            if seen[0] >= after:
                _kill()

    return [on_event]
