"""Per-clinic files: every analyst saw every clinic; now each clinic gets a file with its rows only.

`kap publish` writes analytics_clinic_<clinic_id>.duckdb beside analytics.duckdb for each clinic:
its rows of every table (by clinic_id, else by the clinic's episodes), integration_outcomes
recomputed for the clinic, dq_results without samples of failing rows. The files are renamed into
place like the network file and take the mode of KAP_ANALYTICS_MODE.
"""
from __future__ import annotations

import stat
from pathlib import Path

import duckdb
import pytest

from kap.pipeline import run
from kap.publish import clinic_target, publish
from kap.quality.targets import MART_TABLES
from kap.settings import Settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def published(tmp_path_factory, small_landing) -> Settings:
    settings = Settings(home=tmp_path_factory.mktemp("clinics").resolve()).ensure_dirs()
    run(small_landing, settings, run_id="clinics-1", progress=lambda msg: None)
    return settings


def _rows(path: Path, sql: str, params=None) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _clinic_files(settings: Settings) -> dict[str, Path]:
    clinics = [r[0] for r in _rows(settings.analytics,
                                   "SELECT DISTINCT clinic_id FROM care_pathways WHERE clinic_id IS NOT NULL "
                                   "UNION SELECT DISTINCT clinic_id FROM clinic_daily ORDER BY 1")]
    return {c: clinic_target(settings.analytics, c) for c in clinics}


def test_every_analyst_sees_every_clinic_no_more_each_clinic_file_holds_only_its_rows(published):
    files = _clinic_files(published)
    assert len(files) >= 2
    assert sorted(published.home.glob("analytics_clinic_*.duckdb")) == sorted(files.values())
    episodes_of = {c: {r[0] for r in _rows(published.analytics,
                                           "SELECT episode_key FROM care_pathways WHERE clinic_id = ?", [c])}
                   for c in files}
    for clinic, path in files.items():
        tables = {r[0] for r in _rows(path, "SELECT table_name FROM information_schema.tables")}
        assert set(MART_TABLES) | {"dq_results", "publish_runs"} == tables
        others = set().union(*(e for c, e in episodes_of.items() if c != clinic)) - episodes_of[clinic]
        for table in MART_TABLES:
            cols = {r[0] for r in _rows(path, "SELECT column_name FROM information_schema.columns "
                                              "WHERE table_name = ?", [table])}
            if "clinic_id" in cols:
                assert {r[0] for r in _rows(path, f'SELECT DISTINCT clinic_id FROM "{table}"')} <= {clinic}, table
            if "episode_key" in cols:
                found = {r[0] for r in _rows(path, f'SELECT DISTINCT episode_key FROM "{table}"')}
                assert not found & others, f"{table} holds another clinic's episodes"
                if "clinic_id" not in cols:
                    assert found <= episodes_of[clinic], table
        # the clinic's own rows are all there
        mine = _rows(published.analytics, "SELECT count(*) FROM dosing_sessions WHERE clinic_id = ?", [clinic])[0][0]
        assert _rows(path, "SELECT count(*) FROM dosing_sessions")[0][0] == mine
        assert not _rows(path, "SELECT 1 FROM dq_results WHERE failing_keys_sample IS NOT NULL")


def test_integration_outcomes_is_recomputed_for_the_clinic(published):
    files = _clinic_files(published)
    network = dict(_rows(published.analytics,
                         "SELECT cell_key, episodes FROM integration_outcomes WHERE NOT is_suppressed"))
    per_clinic_total = 0
    for clinic, path in files.items():
        cols = [r[0] for r in _rows(path, "SELECT column_name FROM information_schema.columns "
                                          "WHERE table_name = 'integration_outcomes' ORDER BY ordinal_position")]
        assert "clinic_id" not in cols and cols[0] == "cell_key"
        wh = duckdb.connect(str(published.warehouse), read_only=True)
        try:
            expected = wh.execute("""
                SELECT count(*) FROM marts.care_pathways p
                JOIN marts.adherence_patient a USING (episode_key)
                JOIN marts.patient_outcomes o USING (episode_key)
                WHERE p.clinic_id = ? AND o.instrument = 'phq9' AND o.baseline_score > 0
                  AND o.scores_post_dose > 0 AND p.doses_total > 0 AND p.episode_route IS NOT NULL""",
                [clinic]).fetchone()[0]
            recomputed = wh.execute("SELECT episodes, is_suppressed FROM marts.integration_outcomes_clinic "
                                    "WHERE clinic_id = ? AND cell_key = 'all:all'", [clinic]).fetchone()
        finally:
            wh.close()
        per_clinic_total += expected
        if expected:
            shown = _rows(path, "SELECT episodes, is_suppressed FROM integration_outcomes WHERE cell_key = 'all:all'")[0]
            assert shown == recomputed
            assert shown[0] == (None if shown[1] else expected)
    if "all:all" in network:
        assert per_clinic_total == network["all:all"]


def test_clinic_files_follow_the_analytics_mode_setting(published):
    for path in _clinic_files(published).values():
        assert stat.S_IMODE(path.stat().st_mode) == published.analytics_mode == 0o640
    closed = Settings(home=published.home, analytics_mode=0o600)
    publish(closed, run_id="clinics-2")
    for path in [closed.analytics, *_clinic_files(closed).values()]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not list(published.home.glob("*.tmp-*"))


def test_a_stale_clinic_file_is_removed_and_leftover_tmp_files_cleared(published):
    stale = clinic_target(published.analytics, "clinic-gone")
    stale.write_bytes(b"old")
    leftover = published.home / "analytics_clinic_x.duckdb.tmp-killed"
    leftover.write_bytes(b"half")
    publish(published, run_id="clinics-3")
    assert not stale.exists() and not leftover.exists()
    runs = {r[0] for f in _clinic_files(published).values() for r in _rows(f, "SELECT DISTINCT run_id FROM publish_runs")}
    assert runs == {"clinics-3"}
