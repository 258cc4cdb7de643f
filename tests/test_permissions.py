"""Least privilege on disk: under KAP_HOME only the owner reads anything, but the published files.

With the usual umask 022 a run used to leave the restricted warehouse (with the identity map),
reports, DQ pages, dbt logs and Airflow's files at 0644. Now every folder is 0700 (KAP_HOME
itself 0710 when the published files are group-readable: the group may open them by name, never
list the folder), every file 0600, and analytics*.duckdb has the mode of KAP_ANALYTICS_MODE
(default 0640).
"""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from kap.settings import PROJECT_ROOT, Settings, analytics_mode_from_env, secure_home
from support.modes import wrong_modes


def _kap(home: Path, *args: str, **env_extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KAP_HOME": str(home), **env_extra}
    return subprocess.run([sys.executable, "-m", "kap.cli", *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=900,
                          preexec_fn=lambda: os.umask(0o022))      # the usual, permissive umask


@pytest.mark.slow
def test_world_readable_files_after_kap_run_are_owner_only(tmp_path, small_landing):
    home = tmp_path / "home"
    out = _kap(home, "run", str(small_landing))
    assert out.returncode == 0, out.stderr[-3000:]
    for must in ("warehouse.duckdb", "analytics.duckdb", "reports", "dq", "dbt"):
        assert (home / must).exists(), must
    assert wrong_modes(home) == {}
    assert stat.S_IMODE((home / "analytics.duckdb").stat().st_mode) == 0o640
    assert stat.S_IMODE((home / "warehouse.duckdb").stat().st_mode) == 0o600

    # the published file's mode is a setting: owner-only, and the home then closed to the group
    out = _kap(home, "publish", KAP_ANALYTICS_MODE="0600")
    assert out.returncode == 0, out.stderr[-3000:]
    assert wrong_modes(home, analytics_mode=0o600) == {}
    assert stat.S_IMODE(home.stat().st_mode) == 0o700


def test_a_home_left_open_by_an_older_version_is_tightened(tmp_path):
    home = tmp_path / "old"
    (home / "reports").mkdir(parents=True)
    (home / "reports" / "latest.html").write_text("x")
    (home / "warehouse.duckdb").write_text("x")
    (home / "analytics.duckdb").write_text("x")
    (home / "analytics_clinic_c1.duckdb").write_text("x")
    (home / "analytics.duckdb.tmp-run1").write_text("x")
    outside = tmp_path / "outside.txt"
    outside.write_text("x")
    os.chmod(outside, 0o644)
    (home / "link.txt").symlink_to(outside)
    for p in [home, *home.rglob("*")]:
        if not p.is_symlink():
            os.chmod(p, 0o777 if p.is_dir() else 0o666)
    settings = Settings(home=home.resolve(), analytics_mode=0o640)
    secure_home(settings)
    assert wrong_modes(home) == {}
    assert stat.S_IMODE((home / "analytics.duckdb.tmp-run1").stat().st_mode) == 0o600
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644, "a symlink's target outside is not touched"


def test_files_created_after_ensure_dirs_are_owner_only(tmp_path):
    old = os.umask(0o022)
    try:
        Settings(home=tmp_path / "h").ensure_dirs()
        (tmp_path / "h" / "new.txt").write_text("x")
        (tmp_path / "h" / "newdir").mkdir()
        assert stat.S_IMODE((tmp_path / "h" / "new.txt").stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / "h" / "newdir").stat().st_mode) == 0o700
    finally:
        os.umask(old)


@pytest.mark.parametrize("value, mode", [("0640", 0o640), ("600", 0o600), ("0660", 0o660)])
def test_analytics_mode_is_an_octal_setting(monkeypatch, value, mode):
    monkeypatch.setenv("KAP_ANALYTICS_MODE", value)
    assert analytics_mode_from_env() == mode


@pytest.mark.parametrize("value", ["0644", "0604", "0400", "rw-r-----", "01640"])
def test_analytics_mode_never_opens_to_others_or_locks_out_the_owner(monkeypatch, value):
    monkeypatch.setenv("KAP_ANALYTICS_MODE", value)
    with pytest.raises(ValueError, match="KAP_ANALYTICS_MODE"):
        analytics_mode_from_env()
