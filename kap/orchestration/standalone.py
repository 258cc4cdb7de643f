"""Airflow with a real scheduler for one KAP_HOME: start it, drive it over the REST API, stop it.

`StandaloneAirflow` runs `kap airflow standalone` (scheduler with LocalExecutor, DAG processor,
API server, triggerer) as a process group of its own, bound to 127.0.0.1 on free ports, and
stops exactly that group. The scheduler test (tests/test_scheduler.py) and the scheduled-night
benchmark (bench/run_bench.py) use it; it imports no Airflow (it only talks HTTP to it).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from kap.orchestration.environment import environment_bin
from kap.settings import Settings

TERMINAL = {"success", "failed"}


class AirflowNotReady(RuntimeError):
    """The Airflow processes did not come up, or a DAG run did not finish in time."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (never Airflow's fixed defaults)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _path_without_environment() -> str:
    """PATH without this environment's bin/: what a shell that never activated the venv has."""
    ours = str(environment_bin())
    return os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != ours)


class StandaloneAirflow:
    """`kap airflow standalone` for `settings.home`; use as a context manager.

    parallelism: AIRFLOW__CORE__PARALLELISM (task slots of the LocalExecutor).
    extra_env: more environment for the Airflow processes (e.g. KAP_RETRY_DELAY_SECONDS).
    """

    def __init__(self, settings: Settings, parallelism: int = 2, extra_env: dict[str, str] | None = None,
                 log_file: Path | None = None):
        self.settings = settings.ensure_dirs()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.parallelism = parallelism
        self.extra_env = dict(extra_env or {})
        self.log_file = log_file or settings.home / "airflow-standalone.log"
        self.process: subprocess.Popen | None = None
        self.started_pgid: int | None = None  # the process group start() made (kept after stop)
        self._client = None

    # -- processes --------------------------------------------------------------------------

    def environ(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("AIRFLOW__") and k not in ("AIRFLOW_HOME", "KAP_LANDING")}
        env.update({
            # launched as .venv/bin/kap from a shell whose PATH lacks the venv: `kap airflow` must
            # put it back for the `airflow ...` subprocesses standalone starts
            "PATH": _path_without_environment(),
            "KAP_HOME": str(self.settings.home),
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
            # loopback only, no login: every request acts as admin
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        })
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 240) -> "StandaloneAirflow":
        kap = environment_bin() / "kap"
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_file, "ab")
        self.process = subprocess.Popen([str(kap), "airflow", "standalone"], env=self.environ(),
                                        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        log.close()
        self.started_pgid = self.process.pid  # start_new_session: the leader's pid is the group id
        self._wait_until(self._api_healthy, timeout, "the API server to answer")
        return self

    def stop(self, grace: float = 30) -> None:
        """SIGTERM the process group this object started, then SIGKILL what is left of it."""
        if self.process is None:
            return
        pgid = self.started_pgid
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and _group_alive(pgid, self.process):
                time.sleep(0.5)
            if not _group_alive(pgid, self.process):
                break
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        if self._client is not None:
            self._client.close()
        self.process = None

    def __enter__(self) -> "StandaloneAirflow":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    # -- REST API ---------------------------------------------------------------------------

    @property
    def client(self):
        if self._client is None:
            import httpx

            self._client = httpx.Client(base_url=f"{self.url}/api/v2", timeout=30)
        return self._client

    def _api_healthy(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AirflowNotReady(f"`kap airflow standalone` exited with {self.process.returncode}:\n"
                                  f"{self.log_tail()}")
        try:
            return self.client.get("/monitor/health").status_code == 200
        except Exception:  # connection refused while starting
            return False

    def _wait_until(self, ready, timeout: float, what: str, interval: float = 0.5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = ready()
            if value:
                return value
            time.sleep(interval)
        raise AirflowNotReady(f"timed out after {timeout:.0f} s waiting for {what}\n{self.log_tail()}")

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.client.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise AirflowNotReady(f"{method} {path}: HTTP {response.status_code} {response.text[:2000]}")
        return response.json()

    def wait_for_dag(self, dag_id: str, timeout: float = 240) -> dict[str, Any]:
        """Wait until the DAG processor has parsed `dag_id` into the metadata DB."""
        def parsed():
            response = self.client.get(f"/dags/{dag_id}")
            return response.json() if response.status_code == 200 else None
        return self._wait_until(parsed, timeout, f"the DAG processor to parse {dag_id}")

    def unpause(self, dag_id: str) -> None:
        self._json("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """A manual run now (the nightly schedule would fire only at its cron time); its run_id."""
        body = {"logical_date": None, "conf": conf or {}}
        return self._json("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"]

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self._json("GET", f"/dags/{dag_id}/dagRuns/{run_id}")

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 1800) -> dict[str, Any]:
        """Poll until the run is success or failed; the run as the API shows it."""
        def finished():
            run = self.dag_run(dag_id, run_id)
            return run if run["state"] in TERMINAL else None
        return self._wait_until(finished, timeout, f"{dag_id} run {run_id} to finish", interval=1.0)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            page = self._json("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                              params={"limit": 100, "offset": len(found)})
            found.extend(page["task_instances"])
            if not page["task_instances"] or len(found) >= page["total_entries"]:
                return found

    def scheduled_run_id(self, dag_id: str, timeout: float = 240) -> str:
        """The run the scheduler creates on its own once the DAG is unpaused.

        With catchup off, unpausing a cron DAG that never ran schedules its latest past cron time
        at once (kap_nightly: today's 02:00); later runs follow the cron.
        """
        def created():
            runs = self._json("GET", f"/dags/{dag_id}/dagRuns",
                              params={"run_type": "scheduled", "order_by": "-id"})["dag_runs"]
            return runs[0]["dag_run_id"] if runs else None
        return self._wait_until(created, timeout, f"the scheduler to create a {dag_id} run")

    def finished_run(self, dag_id: str, run_id: str, timeout: float = 1800) -> "Run":
        """Wait for the run to end; its seconds run from being queued (trigger) to its end."""
        finished = self.wait_for_run(dag_id, run_id, timeout)
        return Run(run_id=run_id, state=finished["state"],
                   seconds=_seconds_between(finished.get("queued_at") or finished["start_date"],
                                            finished["end_date"]),
                   task_instances=self.task_instances(dag_id, run_id))

    def run(self, dag_id: str, conf: dict[str, Any] | None = None, timeout: float = 1800) -> "Run":
        """Trigger `dag_id` now and wait for the end of that run."""
        return self.finished_run(dag_id, self.trigger(dag_id, conf), timeout)


class Run:
    """One finished DAG run: state, wall seconds from trigger to end, its task instances."""

    def __init__(self, run_id: str, state: str, seconds: float, task_instances: list[dict[str, Any]]):
        self.run_id = run_id
        self.state = state
        self.seconds = seconds
        self.task_instances = task_instances

    @property
    def states(self) -> dict[str, str | None]:
        return {ti["task_id"]: ti["state"] for ti in self.task_instances}

    def tries(self, task_id: str) -> int:
        return next(ti["try_number"] for ti in self.task_instances if ti["task_id"] == task_id)

    def durations(self) -> dict[str, float]:
        return {ti["task_id"]: float(ti["duration"] or 0.0) for ti in self.task_instances}

    def __repr__(self) -> str:
        return f"Run({self.run_id!r}, {self.state!r}, {self.seconds:.1f} s, {len(self.task_instances)} tasks)"


def _seconds_between(start: str, end: str) -> float:
    import datetime as dt

    def parse(value: str) -> dt.datetime:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (parse(end) - parse(start)).total_seconds()


def _group_alive(pgid: int, leader: subprocess.Popen) -> bool:
    leader.poll()  # reap the leader, or its zombie keeps the group "alive"
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
