"""Incremental dbt builds equal full rebuilds (macros/incremental.sql).

A generated clinic is split into two nightly drops: night 1 holds the clinics (Organization,
Location) and the first 70 % of every other base export file, night 2 the rest (new records, new
patients) plus every amendment file (re-exported FHIR versions, entered-in-error resources,
amended and voided dosing rows, amended notes). After night 2 the incremental build must give
exactly the tables a --full-refresh build gives, and an as-of build must never leave the
incremental tables behind.
"""
from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import duckdb
import pytest

from kap import transform
from kap.settings import Settings

CLINIC = {"patients": 60, "days": 120, "seed": 23, "fault_rate": 0.02}
AMENDMENT = re.compile(r"(\.0*[1-9]\d*\.ndjson$)|(_amendments\.)")
# the models a night builds as a delta (macros/incremental.sql); every other model says why not
# in its YAML (meta.nightly)
INCREMENTAL = {
    "staging/stg_raw__current_events.sql",
    "intermediate/int_doses_unified.sql", "intermediate/int_patient_episodes.sql",
    "intermediate/int_therapy_sessions_unified.sql", "intermediate/int_dose_series.sql",
    "intermediate/int_episode_dosing_summarised.sql", "intermediate/int_assessment_series.sql",
    "marts/dosing_sessions.sql", "marts/therapy_sessions.sql", "marts/assessments.sql",
    "marts/patient_outcomes.sql", "marts/dosing_safety.sql",
}
DELTA = "ingested_at > cast("


def is_delta(sql: str) -> bool:
    """The compiled model reads only what a delta reads: records ingested after the watermark, or
    the touched patients (a key list, or the set's SQL)."""
    return DELTA in sql or "patient_key in (" in sql


def split_into_nights(generated: Path, landing: Path, share: float = 0.7) -> None:
    """landing/<source>/night1 and night2 drop folders from one generated landing folder."""
    for path in sorted(generated.rglob("*")):
        if not path.is_file():
            continue
        source = path.relative_to(generated).parts[0]
        night1 = landing / source / "night1" / path.name
        night2 = landing / source / "night2" / path.name
        night1.parent.mkdir(parents=True, exist_ok=True)
        night2.parent.mkdir(parents=True, exist_ok=True)
        if AMENDMENT.search(path.name):
            shutil.copyfile(path, night2)
            continue
        if path.name.startswith(("Organization.", "Location.")):
            # the clinics arrive before their patients: a clinic's time zone arriving later re-dates
            # patients who sent nothing and makes the next build full (tested on its own below)
            shutil.copyfile(path, night1)
            continue
        lines = path.read_bytes().splitlines(keepends=True)
        header = lines[:1] if path.suffix == ".csv" else []
        body = lines[len(header):]
        cut = int(len(body) * share)
        night1.write_bytes(b"".join(header + body[:cut]))
        if body[cut:]:
            night2.write_bytes(b"".join(header + body[cut:]))


def ingest(landing: Path, settings: Settings, nights: tuple[str, ...]) -> None:
    """Ingest the named drop folders (a landing view holding only them, like files arriving).

    The view is the test's own (beside its KAP_HOME): the drops are shared by the module's tests,
    and a view shared with them would hold a later night another test already let arrive."""
    from kap.pipeline import step_ingest

    view = settings.home.parent / "arrived"
    for night in nights:
        for folder in landing.glob(f"*/{night}"):
            target = view / folder.parent.name / night
            if not target.exists():
                shutil.copytree(folder, target)
    summary = step_ingest(view, settings, run_id=f"test-{'-'.join(nights)}")
    assert not [f for f in summary.files if f.status == "failed"]


def query(settings: Settings, sql: str, params: list | None = None) -> list[tuple]:
    """Rows of one query on the warehouse, read-only."""
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def assert_night_equals_full_refresh(settings: Settings) -> None:
    """The tables the night's incremental build left equal those a --full-refresh build makes."""
    incremental = table_checksums(settings)
    transform.build(settings, full_refresh=True)
    full = table_checksums(settings)
    assert set(incremental) == set(full)
    assert [t for t in full if incremental[t] != full[t]] == []


def table_checksums(settings: Settings) -> dict[str, tuple[list[str], int, str]]:
    """Every dbt table (staging, intermediate, marts): columns, rows, checksum of the sorted rows."""
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        tables = con.execute("""
            select table_schema, table_name from information_schema.tables
            where table_schema in ('staging', 'intermediate', 'marts') and table_type = 'BASE TABLE'
              and table_name not in ('kap_incremental_state', 'stg_raw__touched_patients')
            order by 1, 2""").fetchall()
        out = {}
        for schema, table in tables:
            cur = con.execute(f'select * from {schema}."{table}"')
            columns = [c[0] for c in cur.description]
            rows = sorted(repr(r) for r in cur.fetchall())
            out[f"{schema}.{table}"] = (columns, len(rows),
                                        hashlib.sha256("\n".join(rows).encode()).hexdigest())
        return out
    finally:
        con.close()


def compiled_run_sql(settings: Settings, model_path: str) -> str:
    return (settings.dbt_target_dir / "compiled" / "kap" / "models" / model_path).read_text()


@pytest.fixture(scope="module")
def two_nights(tmp_path_factory) -> Path:
    from kap.generator import generate

    root = tmp_path_factory.mktemp("nights")
    generate(root / "generated", **CLINIC)
    split_into_nights(root / "generated", root / "landing")
    return root / "landing"


def copy_home(built: Settings, root: Path) -> Settings:
    """A copy of a built KAP_HOME under root (the tests that start from the same state share one
    build of it; each then changes its own copy). Paths reach dbt by environment, not by files in
    the home, so the copy is a home of its own."""
    shutil.copytree(built.home, root / "home")
    return Settings(home=(root / "home").resolve()).ensure_dirs()


@pytest.fixture(scope="module")
def night1_built(two_nights, tmp_path_factory) -> Settings:
    """Night 1 ingested and built (the first build: full). Read only: tests copy it."""
    settings = Settings(home=(tmp_path_factory.mktemp("night1") / "home").resolve()).ensure_dirs()
    ingest(two_nights, settings, ("night1",))
    transform.build(settings)
    return settings


@pytest.fixture(scope="module")
def night2_built(night1_built, two_nights, tmp_path_factory) -> Settings:
    """Then night 2 (new records and patients, amendments, retractions), built incrementally."""
    settings = copy_home(night1_built, tmp_path_factory.mktemp("night2"))
    ingest(two_nights, settings, ("night1", "night2"))
    transform.build(settings)                       # nightly: incremental
    return settings


@pytest.fixture(scope="module")
def both_nights_built(two_nights, tmp_path_factory) -> Settings:
    """Both nights ingested in one run, then one (full) build: the start of the three-night tests."""
    settings = Settings(home=(tmp_path_factory.mktemp("both") / "home").resolve()).ensure_dirs()
    ingest(two_nights, settings, ("night1", "night2"))
    transform.build(settings)
    return settings


def assert_nightly_meta(settings: Settings) -> None:
    """Every intermediate model and mart says in its YAML how a night builds it: the incremental
    ones 'incremental ...', the others 'full rebuild: <why>'."""
    import json

    nodes = json.loads((settings.dbt_target_dir / "manifest.json").read_text())["nodes"]
    models = {n["original_file_path"].removeprefix("models/"): n for n in nodes.values()
              if n["resource_type"] == "model" and n["package_name"] == "kap"}
    assert set(INCREMENTAL) <= set(models)
    for path, node in models.items():
        incremental = node["config"]["materialized"] == "incremental"
        assert incremental == (path in INCREMENTAL), path
        if path.startswith("staging/"):
            continue
        nightly = node["config"]["meta"].get("nightly") or node["meta"].get("nightly") or ""
        if incremental:
            assert nightly.startswith("incremental per patient"), (path, nightly)
        else:
            reason = nightly.removeprefix("full rebuild: ")
            assert nightly.startswith("full rebuild: ") and len(reason) > 20, (path, nightly)


def night2_changes(settings: Settings) -> dict[str, int]:
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        night2 = "(select max(ingested_at) from raw.events)"
        return {
            "retractions": con.execute(f"select count(*) from raw.events where event_type = 'record_retracted' "
                                       f"and ingested_at = {night2}").fetchone()[0],
            "new_versions_of_night1_records": con.execute(f"""
                select count(*) from raw.events n
                where n.ingested_at = {night2}
                  and exists (select 1 from raw.events o where o.ingested_at < {night2}
                              and o.source = n.source and o.source_record_id = n.source_record_id)""").fetchone()[0],
            "new_records": con.execute(f"""
                select count(*) from raw.events n
                where n.ingested_at = {night2}
                  and not exists (select 1 from raw.events o where o.ingested_at < {night2}
                                  and o.source = n.source and o.source_record_id = n.source_record_id)""").fetchone()[0],
        }
    finally:
        con.close()


@pytest.mark.slow
def test_incremental_build_after_corrections_equals_full_refresh(night2_built, tmp_path):
    settings = copy_home(night2_built, tmp_path)    # night 1 built in full, night 2 incrementally
    changes = night2_changes(settings)
    assert changes["retractions"] > 0 and changes["new_versions_of_night1_records"] > 0
    assert changes["new_records"] > 0

    # the delta path really ran in every incremental model: only records / patients touched since
    # the watermark
    assert [m for m in sorted(INCREMENTAL) if not is_delta(compiled_run_sql(settings, m))] == []
    # the touched patients were computed once and read as a key list, pushed into the event-log scan
    assert "record_patient_key in ('" in compiled_run_sql(settings, "intermediate/int_doses_unified.sql")
    # ... or, where a model is faster so (kap_incremental_config(..., touched='subquery')), as a subquery
    assert "record_patient_key in (select patient_key from" in compiled_run_sql(
        settings, "intermediate/int_patient_episodes.sql")
    assert_nightly_meta(settings)
    incremental = table_checksums(settings)

    transform.build(settings, full_refresh=True)
    assert "ingested_at > cast(" not in compiled_run_sql(settings, "staging/stg_raw__current_events.sql")
    full = table_checksums(settings)
    assert set(incremental) == set(full)
    assert {t for t in full if t.startswith("marts.")} >= {f"marts.{m}" for m in ("dosing_sessions", "integration_outcomes")}
    differing = [t for t in full if incremental[t] != full[t]]
    assert differing == []


def write_manifest(drop: Path, transaction_time: str) -> None:
    """A FHIR Bulk Data export manifest: its transactionTime is the drop's knowledge cutoff ("now")."""
    import json

    outputs = [{"type": f.name.split(".")[0], "url": f"https://ehr.example/bulk/{f.name}"}
               for f in sorted(drop.glob("*.ndjson"))]
    (drop / "manifest.json").write_text(json.dumps({
        "transactionTime": transaction_time, "request": "https://ehr.example/fhir/$export",
        "requiresAccessToken": True, "output": outputs, "error": []}))


def care_phases(settings: Settings) -> dict[str, int]:
    return dict(query(settings, "select current_phase, count(*) from marts.care_pathways group by 1"))


@pytest.mark.slow
def test_a_night_where_only_time_passes_equals_full_refresh(two_nights, tmp_path):
    """Night 3 brings no patient's record, only a later export time (and one new Practitioner):
    "now" moves 43 days, open episodes drop out, and the incremental models recompute nobody."""
    landing = tmp_path / "landing"
    shutil.copytree(two_nights, landing)
    write_manifest(landing / "ehr" / "night1", "2025-05-07T00:00:00Z")
    write_manifest(landing / "ehr" / "night2", "2025-05-08T00:00:00Z")
    night3 = landing / "ehr" / "night3"
    night3.mkdir()
    (night3 / "Practitioner.000.ndjson").write_text(
        '{"resourceType": "Practitioner", "id": "pr-night3", "meta": {"versionId": "1", '
        '"lastUpdated": "2025-06-19T09:00:00Z"}, "active": true}\n')
    write_manifest(night3, "2025-06-20T00:00:00Z")

    settings = Settings(home=(tmp_path / "home").resolve()).ensure_dirs()
    ingest(landing, settings, ("night1", "night2"))
    transform.build(settings)
    before = care_phases(settings)
    ingest(landing, settings, ("night1", "night2", "night3"))
    [(night3_patients,)] = query(settings, "select count(patient_key) from raw.events "
                                           "where ingested_at = (select max(ingested_at) from raw.events)")
    [(now,)] = query(settings, "select cutoff_at from raw.knowledge_cutoffs order by recorded_at desc limit 1")
    assert night3_patients == 0 and str(now) == "2025-06-20 00:00:00"

    transform.build(settings)                       # nightly: incremental, nobody touched
    assert [m for m in sorted(INCREMENTAL) if not is_delta(compiled_run_sql(settings, m))] == []
    after = care_phases(settings)
    assert after.get("dropped_out", 0) > before.get("dropped_out", 0)     # time passing mattered
    assert_night_equals_full_refresh(settings)


def _patient_version(landing: Path, index: int, version: str, updated: str, link: list | None) -> dict:
    """A later version of the index-th Patient of night 1, with or without a Patient.link."""
    import json

    lines = (landing / "ehr" / "night1" / "Patient.000.ndjson").read_text().splitlines()
    resource = json.loads(lines[index])
    resource["meta"] = {"versionId": version, "lastUpdated": updated}
    resource.pop("link", None)
    if link:
        resource["link"] = link
    return resource


def _merge_count(settings: Settings) -> int:
    return query(settings, "select count(*) from staging.stg_ehr__patient_merges")[0][0]


@pytest.mark.slow
def test_a_chart_merge_and_its_undoing_equal_full_refresh(two_nights, both_nights_built, tmp_path):
    """Night 3 merges one chart into another (Patient.link replaced-by); night 4 sends the retired
    chart again without the link. Each night's delta moves the rows of both charts, as a full
    rebuild does."""
    import json

    landing = tmp_path / "landing"
    shutil.copytree(two_nights, landing)
    first = _patient_version(landing, 0, "1", "2025-01-01T00:00:00Z", None)
    survivor = json.loads((landing / "ehr" / "night1" / "Patient.000.ndjson").read_text().splitlines()[1])
    merge = [{"other": {"reference": f"Patient/{survivor['id']}"}, "type": "replaced-by"}]
    for night, version, updated, link in (("night3", "7", "2025-06-01T00:00:00Z", merge),
                                          ("night4", "8", "2025-06-02T00:00:00Z", None)):
        drop = landing / "ehr" / night
        drop.mkdir()
        (drop / "Patient.000.ndjson").write_text(json.dumps(_patient_version(landing, 0, version, updated, link)) + "\n")
    assert first["id"] != survivor["id"]

    settings = copy_home(both_nights_built, tmp_path)
    arrived: tuple[str, ...] = ("night1", "night2")
    for night, merges in (("night3", 1), ("night4", 0)):
        arrived += (night,)
        ingest(landing, settings, arrived)
        transform.build(settings)                   # nightly: incremental
        assert is_delta(compiled_run_sql(settings, "intermediate/int_doses_unified.sql"))
        assert _merge_count(settings) == merges, night
        assert_night_equals_full_refresh(settings)


@pytest.mark.slow
def test_a_clinic_time_zone_arriving_equals_full_refresh(two_nights, both_nights_built, tmp_path):
    """Night 3 sends a clinic's Organization again with another FHIR timezone extension: every
    local date of its patients moves, none of whom sent a record, so the next build is full."""
    import json

    landing = tmp_path / "landing"
    shutil.copytree(two_nights, landing)
    organization = json.loads((landing / "ehr" / "night1" / "Organization.000.ndjson").read_text().splitlines()[0])
    organization["meta"] = {"versionId": "9", "lastUpdated": "2025-06-01T00:00:00Z"}
    organization["extension"] = [{"url": "http://hl7.org/fhir/StructureDefinition/timezone",
                                  "valueCode": "Pacific/Kiritimati"}]
    (landing / "ehr" / "night3").mkdir()
    (landing / "ehr" / "night3" / "Organization.000.ndjson").write_text(json.dumps(organization) + "\n")

    settings = copy_home(both_nights_built, tmp_path)
    ingest(landing, settings, ("night1", "night2", "night3"))
    transform.build(settings)
    [(zone,)] = query(settings, "select time_zone from intermediate.int_clinic_time_zones where clinic_id = ?",
                      [organization["id"]])
    assert zone == "Pacific/Kiritimati"
    assert_night_equals_full_refresh(settings)


@pytest.mark.slow
def test_build_after_an_as_of_build_equals_full_refresh(two_nights, night1_built, tmp_path):
    settings = copy_home(night1_built, tmp_path)
    transform.build(settings, as_of="2025-02-15T00:00:00")          # a replay: always a full rebuild
    assert "ingested_at > cast(" not in compiled_run_sql(settings, "staging/stg_raw__current_events.sql")

    ingest(two_nights, settings, ("night1", "night2"))
    transform.build(settings)                       # the as_of changed since the last build: full
    assert "ingested_at > cast(" not in compiled_run_sql(settings, "staging/stg_raw__current_events.sql")
    after_as_of = table_checksums(settings)
    transform.build(settings, full_refresh=True)
    full = table_checksums(settings)
    assert [t for t in full if after_as_of.get(t) != full[t]] == []
    # and the next nightly build is a delta again
    transform.build(settings)
    assert "ingested_at > cast(" in compiled_run_sql(settings, "staging/stg_raw__current_events.sql")
    assert table_checksums(settings) == full


def _built_nodes(settings: Settings) -> list[str]:
    import json

    results = json.loads((settings.dbt_target_dir / "run_results.json").read_text())["results"]
    return [r["unique_id"] for r in results]


def _build_layer_by_layer(settings: Settings) -> list[str]:
    """kap_nightly's dbt tasks, in order; the nodes each `dbt build` ran, all layers together."""
    from kap.orchestration.tasks import DBT_LAYERS, layer_selector

    ran: list[str] = []
    for layer in DBT_LAYERS:
        transform.build(settings, select=layer_selector(layer), indirect_selection="buildable")
        ran += _built_nodes(settings)
    return ran


@pytest.mark.slow
def test_the_nightly_build_layer_by_layer_equals_one_build(two_nights, tmp_path):
    settings = Settings(home=(tmp_path / "home").resolve()).ensure_dirs()
    ingest(two_nights, settings, ("night1",))
    _build_layer_by_layer(settings)
    ingest(two_nights, settings, ("night1", "night2"))
    ran = _build_layer_by_layer(settings)                  # the second night: incremental
    by_layers = table_checksums(settings)

    transform.build(settings, full_refresh=True)           # what `kap build --full-refresh` makes
    in_one_build = _built_nodes(settings)
    full = table_checksums(settings)
    assert set(by_layers) == set(full)
    assert [t for t in full if by_layers[t] != full[t]] == []
    # every model and data test ran, each once, a test only after all the models it reads
    assert len(ran) == len(set(ran))
    assert sorted(ran) == sorted(in_one_build)
    import json

    nodes = json.loads((settings.dbt_target_dir / "manifest.json").read_text())["nodes"]
    tests = [node for node in ran if node.startswith("test.")]
    assert any(len([p for p in nodes[t]["depends_on"]["nodes"] if p.startswith("model.")]) > 1 for t in tests)
    for test in tests:
        for parent in nodes[test]["depends_on"]["nodes"]:
            if parent.startswith("model."):
                assert ran.index(parent) < ran.index(test), (test, parent)


# ---------------------------------------------------------------------------------------------
# Nightly data tests read what changed (macros/nightly_tests.sql); full checks read every row.

def _test_results(settings: Settings) -> dict[str, tuple[str, int, str]]:
    """test name -> (status, failures, compiled SQL) of the last build's data tests."""
    import json

    results = json.loads((settings.dbt_target_dir / "run_results.json").read_text())["results"]
    return {r["unique_id"].split(".")[2]: (r["status"], r["failures"] or 0, r.get("compiled_code") or "")
            for r in results if r["unique_id"].startswith("test.")}


# a nightly row test reads the touched set as a subquery (an inlined list made a 50k night's
# tests slower than the full build's)
SCOPED = "record_patient_key in (select patient_key from "


def _touched_patients(settings: Settings) -> set[str]:
    """The patient keys of the last build's touched set (stg_raw__touched_patients)."""
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        return {k for (k,) in con.execute("select patient_key from staging.stg_raw__touched_patients "
                                           "where patient_key is not null").fetchall()}
    finally:
        con.close()


def _append_vitals(settings: Settings, source_record_id: str, payload_sql: str, patient_sql: str) -> str:
    """Append one vital-signs event to the log, ingested now (after every build so far): a copy of
    the first vitals event of the patient `patient_sql` picks, with the payload `payload_sql` makes
    of it (`payload` names the original). Returns the patient key."""
    con = duckdb.connect(str(settings.warehouse))
    try:
        patient = con.execute(patient_sql).fetchone()[0]
        con.execute(f"""
            insert into raw.events
            select md5(?) as event_id, event_type, patient_key, occurred_at, recorded_at,
                   (select max(ingested_at) from raw.events) + interval 1 second as ingested_at,
                   source, file_id, ? as source_record_id, {payload_sql} as payload
            from raw.events
            where event_type = 'vital_signs_recorded' and patient_key = ?
            order by source_record_id limit 1""", [source_record_id, source_record_id, patient])
        return patient
    finally:
        con.close()


@pytest.mark.slow
def test_nightly_tests_read_what_changed_and_full_checks_read_everything(night1_built, night2_built, tmp_path):
    first = _test_results(night1_built)                             # first build: full, full tests
    assert "record_patient_key in (" not in first["not_null_stg_ehr__vitals_observation_id"][2]
    settings = copy_home(night2_built, tmp_path)                    # then night 2's build
    night = _test_results(settings)
    assert set(night) == set(first)                                 # the same tests, every night
    # the staging views' row tests read the touched patients' rows (and rows without a patient)
    for name in ("not_null_stg_ehr__vitals_observation_id", "not_null_stg_dosing__doses_start_at",
                 "not_null_stg_ehr__encounters_encounter_id"):
        assert SCOPED in night[name][2] and "record_patient_key is null" in night[name][2], name
    # ... but uniqueness reads the whole view (a new key can repeat an old one), and so do the
    # tests of the log's own relations, of the views without patients, and of the later layers
    for name in ("unique_stg_ehr__encounters_encounter_id", "unique_stg_ehr__vitals_observation_id",
                 "source_unique_raw_events_event_id", "not_null_stg_ehr__clinics_clinic_id",
                 "unique_int_doses_unified_dose_key", "unique_dosing_sessions_dose_key"):
        assert "record_patient_key" not in night[name][2], name
    assert night["not_null_stg_ehr__vitals_observation_id"][:2] == ("pass", 0)
    assert night["unique_stg_ehr__vitals_observation_id"][:2] == ("pass", 0)

    # A vital sign without an id, and a new record repeating an old record's observation id: each
    # for a patient that sent nothing else since the last build.
    untouched = ("select patient_key from raw.events where event_type = 'vital_signs_recorded' "
                 "group by patient_key having max(ingested_at) < (select max(ingested_at) from raw.events) "
                 "order by patient_key limit 1 offset {}")
    no_id = _append_vitals(settings, "Observation/no-id", "json_merge_patch(payload, '{\"observation_id\": null}')",
                           untouched.format(0))
    repeated = _append_vitals(settings, "Observation/repeats-an-id", "payload", untouched.format(1))
    assert no_id != repeated
    failing = {"not_null_stg_ehr__vitals_observation_id", "unique_stg_ehr__vitals_observation_id"}
    with pytest.raises(transform.DbtBuildError) as error:
        transform.build(settings)
    # both found; the repeated id though its first record did not change
    assert {f.split(".")[2] for f in error.value.failures} == failing
    caught = _test_results(settings)
    assert [caught[name][:2] for name in sorted(failing)] == [("fail", 1), ("fail", 1)]
    assert SCOPED in caught["not_null_stg_ehr__vitals_observation_id"][2]
    assert {no_id, repeated} <= _touched_patients(settings)       # what that scope read

    # These tests stop the build (severity error): the models after them did not run, so the
    # watermark stayed and the next night reads those rows again, though nothing new arrived ...
    with pytest.raises(transform.DbtBuildError) as error:
        transform.build(settings)
    assert {f.split(".")[2] for f in error.value.failures} == failing
    assert SCOPED in _test_results(settings)["not_null_stg_ehr__vitals_observation_id"][2]
    # ... and the full checks (the weekly night) read every row and find both
    with pytest.raises(transform.DbtBuildError) as error:
        transform.build(settings, full_checks=True)
    assert {f.split(".")[2] for f in error.value.failures} == failing
    full = _test_results(settings)
    assert "record_patient_key" not in full["not_null_stg_ehr__vitals_observation_id"][2]
    assert [full[name][:2] for name in sorted(failing)] == [("fail", 1), ("fail", 1)]
