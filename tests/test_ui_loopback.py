"""Loopback only: under `make ui` (`kap airflow standalone`) nothing listens beyond 127.0.0.1/::1.

Airflow's own standalone starts log servers on 0.0.0.0 and [::] (ports 8793 and 8794); the
project's standalone skips them. The test starts standalone in a throwaway home on free ports
(the log-server ports too, so a regression would show up on them), waits until the API server,
the scheduler and the triggerer are up, lists the listening sockets of every process it started,
and stops exactly those processes.
"""
from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from kap.orchestration.loopback import command_for
from kap.settings import PROJECT_ROOT

pytestmark = pytest.mark.slow

START_TIMEOUT = 420


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tree(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _listening(procs: list[psutil.Process]) -> set[tuple[str, int, str]]:
    """(address, port, process name) of every listening TCP socket of these processes."""
    found = set()
    for p in procs:
        try:
            conns = p.net_connections(kind="inet")
            name = " ".join(p.cmdline()[:3])
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        for c in conns:
            if c.status == psutil.CONN_LISTEN:
                found.add((c.laddr.ip, c.laddr.port, name))
    return found


def _is_loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def _running(procs: list[psutil.Process], component: str) -> bool:
    for p in procs:
        try:
            cmd = p.cmdline()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if len(cmd) >= 2 and Path(cmd[0]).name.startswith(("airflow", "python")) and component in cmd[1:3]:
            return True
    return False


def test_standalone_skips_the_log_servers_of_scheduler_and_triggerer():
    assert command_for(["scheduler"]) == ["scheduler", "--skip-serve-logs"]
    assert command_for(["triggerer"]) == ["triggerer", "--skip-serve-logs"]
    assert command_for(["api-server"]) == ["api-server"]
    assert command_for(["dag-processor"]) == ["dag-processor"]


def test_log_servers_on_every_interface_make_ui_listens_on_loopback_only(tmp_path):
    home = tmp_path / "home"
    api_port = _free_port()
    env = {**os.environ, "KAP_HOME": str(home), "AIRFLOW__API__PORT": str(api_port),
           "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
           "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_free_port())}
    for key in [k for k in env if k.startswith("AIRFLOW")]:
        if key not in ("AIRFLOW__API__PORT", "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT",
                       "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"):
            env.pop(key)                 # kap airflow sets the rest for this home
    log = open(tmp_path / "standalone.log", "wb")
    started = subprocess.Popen([sys.executable, "-m", "kap.cli", "airflow", "standalone"], cwd=PROJECT_ROOT,
                               env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    root = psutil.Process(started.pid)
    seen: set[tuple[str, int, str]] = set()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        up_since = None
        while time.monotonic() < deadline and started.poll() is None:
            procs = _tree(root)
            seen |= _listening(procs)
            api_up = any(port == api_port for _, port, _ in seen)
            components_up = _running(procs, "scheduler") and _running(procs, "triggerer")
            if api_up and components_up:
                up_since = up_since or time.monotonic()
                if time.monotonic() - up_since > 15:   # the log servers start right after them
                    break
            time.sleep(1)
        assert started.poll() is None, (tmp_path / "standalone.log").read_text()[-3000:]
        assert up_since is not None, "standalone did not come up: " + (tmp_path / "standalone.log").read_text()[-3000:]
        seen |= _listening(_tree(root))
    finally:
        procs = _tree(root)
        for p in procs:
            try:
                p.send_signal(signal.SIGTERM)
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(procs, timeout=30)
        for p in alive:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        log.close()
    assert any(port == api_port for _, port, _ in seen)
    exposed = sorted(s for s in seen if not _is_loopback(s[0]))
    assert exposed == [], f"listening beyond loopback: {exposed}"
