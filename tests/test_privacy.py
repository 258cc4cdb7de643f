"""Privacy at the boundary (DOMAIN.md section 6), proven on a generated clinic.

One clinic (60 patients x 120 days, 2 % faults) is generated and run through the whole pipeline
(`kap.pipeline.run`) once per module. Every direct identifier and every note sentence is read
back from the generated landing files, then searched for:

- in raw.events payloads and in every text/JSON column of every table of analytics.duckdb:
  names, MRN, SSN and other identifier values, phone, email, street lines, exact birth dates and
  note sentences - zero hits;
- in raw.quarantine.raw_record (which keeps the rejected record, redacted): note text - zero hits.

Also: no birth date (finer than the year) in analytics, ages > 89 only as 90+, random surrogate keys
(not a hash of MRN or Patient.id, different in two fresh warehouses), and no restricted or
intermediate schema/table in analytics.duckdb.

Staff (Practitioner) are not patients, but the analytics file names them only by id and role: no
staff name or identifier value (NPI) anywhere in it, and the care-team tables carry no staff column
but the id and the role.
"""
from __future__ import annotations

import base64
import csv
import datetime as dt
import hashlib
import json
import logging
import re
import uuid
from pathlib import Path

import duckdb
import pytest

from kap.settings import Settings
from kap.generator import generate

CLINIC = {"patients": 60, "days": 120, "seed": 4242, "fault_rate": 0.02}
SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n")


# ---- what the landing files hold ----------------------------------------------------------------

def _json_lines(path: Path):
    for raw in path.read_bytes().splitlines():
        try:
            obj = json.loads(raw.decode("utf-8-sig"))
        except (UnicodeDecodeError, ValueError):
            continue
        if isinstance(obj, dict):
            yield obj
        elif isinstance(obj, list):
            yield from (o for o in obj if isinstance(o, dict))


def read_identifiers(landing: Path) -> dict[str, set[str]]:
    """Direct identifiers and note text the generator wrote, by kind."""
    found: dict[str, set[str]] = {k: set() for k in (
        "name_token", "full_name", "identifier", "telecom", "street", "birth_date", "sentence")}
    for path in sorted((landing / "ehr").glob("*.ndjson")):
        for r in _json_lines(path):
            rtype = r.get("resourceType")
            if rtype == "Patient":
                for n in r.get("name") or []:
                    tokens = [*(n.get("given") or []), n.get("family")]
                    found["name_token"].update(t for t in tokens if isinstance(t, str) and len(t) >= 3)
                    given = [g for g in n.get("given") or [] if isinstance(g, str)]
                    if given and isinstance(n.get("family"), str):
                        found["full_name"].add(f"{given[0]} {n['family']}")
                        found["full_name"].add(" ".join([*given, n["family"]]))
                for ident in r.get("identifier") or []:
                    if isinstance(ident.get("value"), str):
                        found["identifier"].add(ident["value"])
                for t in r.get("telecom") or []:
                    if isinstance(t.get("value"), str):
                        found["telecom"].add(t["value"])
                for a in r.get("address") or []:
                    found["street"].update(x for x in a.get("line") or [] if isinstance(x, str))
                if isinstance(r.get("birthDate"), str) and len(r["birthDate"]) == 10:
                    found["birth_date"].add(r["birthDate"])
            elif rtype == "DocumentReference":
                for c in r.get("content") or []:
                    data = (c.get("attachment") or {}).get("data")
                    if isinstance(data, str):
                        text = base64.b64decode(data).decode("utf-8", "replace")
                        found["sentence"].update(_sentences(text))
    for path in sorted((landing / "notes").glob("*.jsonl")):
        for r in _json_lines(path):
            if isinstance(r.get("text"), str):
                found["sentence"].update(_sentences(r["text"]))
    return found


def read_staff(landing: Path) -> dict[str, set[str]]:
    """Staff names, identifier values (NPI) and ids the generator wrote into Practitioner resources."""
    found: dict[str, set[str]] = {k: set() for k in ("name_token", "full_name", "identifier", "id")}
    for path in sorted((landing / "ehr").glob("Practitioner.*.ndjson")):
        for r in _json_lines(path):
            if r.get("resourceType") != "Practitioner":
                continue
            if isinstance(r.get("id"), str):
                found["id"].add(r["id"])
            for n in r.get("name") or []:
                given = [g for g in n.get("given") or [] if isinstance(g, str)]
                family = n.get("family")
                found["name_token"].update(t for t in [*given, family] if isinstance(t, str) and len(t) >= 3)
                if given and isinstance(family, str):
                    found["full_name"].add(f"{given[0]} {family}")
            for ident in r.get("identifier") or []:
                if isinstance(ident.get("value"), str):
                    found["identifier"].add(ident["value"])
    return found


def _sentences(text: str) -> set[str]:
    return {s.strip() for s in SENTENCE_SPLIT.split(text) if len(s.strip()) >= 12}


# ---- the module's clinic, run end to end -----------------------------------------------------------

def embed_identifiers_in_source_ids(landing: Path) -> None:
    """Make source record ids carry identifiers, as real systems do: every dosing id embeds the
    patient's MRN (`dl-MRN1000003-...`) and every appointment id the Patient.id
    (`apt-p-000001-...`, references to it included)."""
    for path in sorted((landing / "dosing").glob("*.csv")):
        out = []
        for line in path.read_bytes().splitlines(keepends=True):     # bytes: faults include bad UTF-8
            row = next(csv.reader([line.decode("utf-8", "replace")]), [])
            if len(row) > 2 and re.fullmatch(r"MRN\d+", row[2] or "") and re.fullmatch(r"[\w.-]+", row[0]):
                line = line.replace(row[0].encode(), f"dl-{row[2]}-{row[0]}".encode(), 1)
            out.append(line)
        path.write_bytes(b"".join(out))
    for path in sorted((landing / "ehr").glob("*.ndjson")):
        path.write_bytes(re.sub(rb"\bapt-(\d{6})-", rb"apt-p-\1-", path.read_bytes()))


def read_source_ids(landing: Path) -> dict[str, set[str]]:
    """Patient.id values, and every source record id that must not reach analytics: the ids of
    EHR resources (but clinics and practitioners, which stay), dosing ids and note ids."""
    found: dict[str, set[str]] = {"patient_id": set(), "source_id": set()}
    kept = {"Organization", "Location", "Practitioner", "PractitionerRole"}
    for path in sorted((landing / "ehr").glob("*.ndjson")):
        for r in _json_lines(path):
            rid, rtype = r.get("id"), r.get("resourceType")
            if isinstance(rid, str) and len(rid) >= 6 and rtype not in kept:
                found["patient_id" if rtype == "Patient" else "source_id"].add(rid)
    for path in sorted((landing / "dosing").glob("*.csv")):
        for row in csv.DictReader(path.read_text("utf-8", "replace").splitlines()):
            if isinstance(row.get("dosing_id"), str) and len(row["dosing_id"]) >= 6:
                found["source_id"].add(row["dosing_id"])
    for path in sorted((landing / "notes").glob("*.jsonl")):
        found["source_id"].update(r["note_id"] for r in _json_lines(path)
                                  if isinstance(r.get("note_id"), str) and len(r["note_id"]) >= 6)
    return found


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("privacy") / "landing"
    generate(out, **CLINIC)
    embed_identifiers_in_source_ids(out)
    return out


@pytest.fixture(scope="module")
def source_ids(landing) -> dict[str, set[str]]:
    found = read_source_ids(landing)
    assert len(found["patient_id"]) >= CLINIC["patients"] and len(found["source_id"]) > 500
    assert any(re.match(r"dl-MRN\d+-", i) for i in found["source_id"])
    assert any(re.match(r"apt-p-\d{6}-", i) for i in found["source_id"])
    return found


@pytest.fixture(scope="module")
def ids(landing) -> dict[str, set[str]]:
    found = read_identifiers(landing)
    # the generator must have given us something to look for
    assert len(found["identifier"]) >= 2 * CLINIC["patients"]
    assert len(found["birth_date"]) >= CLINIC["patients"] * 0.9
    assert len(found["sentence"]) >= 50 and found["street"] and found["telecom"] and found["full_name"]
    return found


@pytest.fixture(scope="module")
def ingested(landing, tmp_path_factory) -> Settings:
    """Ingest only (raw.events, raw.quarantine, restricted.patient_keys)."""
    from kap.pipeline import step_ingest

    logging.getLogger("ingest.loader").setLevel(logging.CRITICAL)
    settings = Settings(home=tmp_path_factory.mktemp("privacy_ingest").resolve()).ensure_dirs()
    summary = step_ingest(landing, settings)
    assert summary.ok and summary.totals["events_added"] > 1000
    return settings


@pytest.fixture(scope="module")
def published(landing, tmp_path_factory) -> Settings:
    """The whole nightly pipeline: ingest, checks, dbt build, publish."""
    pytest.importorskip("kap.transform", reason="kap.transform (dbt build) is missing")
    pytest.importorskip("kap.publish", reason="kap.publish is missing")
    pytest.importorskip("kap.quality", reason="kap.quality is missing")
    from kap.pipeline import run

    settings = Settings(home=tmp_path_factory.mktemp("privacy_run").resolve()).ensure_dirs()
    summary = run(landing, settings, progress=lambda msg: None)
    assert summary.published == settings.analytics and settings.analytics.is_file()
    return settings


def _connect(path: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(path), read_only=True)


# ---- the scanner --------------------------------------------------------------------------------

def _load_needles(con, ids: dict[str, set[str]], kinds) -> None:
    rows = [(k, v) for k in kinds for v in sorted(ids[k])]
    con.execute("CREATE OR REPLACE TEMP TABLE needles (kind VARCHAR, needle VARCHAR)")
    con.executemany("INSERT INTO needles VALUES (?, ?)", rows)


def _scan(con, haystack_sql: str, ids: dict[str, set[str]], kinds, mask: list[str] = ()) -> list[tuple]:
    """Rows (where, kind, needle, excerpt) of `haystack_sql(where, hay)` that contain a needle.

    Name tokens match as whole words, everything else as a substring. `mask` strings (clinic names,
    which are not patient identifiers but may share a word with a family name) are blanked first.
    """
    _load_needles(con, ids, kinds)
    hay = "hay"
    for m in mask:
        hay = f"replace({hay}, '{m.replace(chr(39), chr(39) * 2)}', '')"
    return con.execute(f"""
        WITH h AS (SELECT "where", {hay} AS hay FROM ({haystack_sql}) WHERE hay IS NOT NULL)
        SELECT h."where", n.kind, n.needle, left(h.hay, 300)
        FROM h JOIN needles n ON CASE
            WHEN n.kind = 'name_token' THEN regexp_matches(h.hay, '\\b' || n.needle || '\\b')
            ELSE contains(h.hay, n.needle) END
        LIMIT 50
    """).fetchall()


def _clinic_names(landing: Path) -> list[str]:
    names = []
    for rtype in ("Organization", "Location"):
        for path in sorted((landing / "ehr").glob(f"{rtype}.*.ndjson")):
            names += [r["name"] for r in _json_lines(path) if isinstance(r.get("name"), str)]
    return sorted(set(names), key=len, reverse=True)


SOURCE_ID_FIELDS = ("dosing_id", "appointment_id", "encounter_id", "episode_id", "observation_id",
                    "administration_id", "note_id", "referral_id", "condition_id", "adverse_event_id",
                    "suspect_administration_id", "consent_id", "response_id", "document_id")
ALL_KINDS = ("name_token", "full_name", "identifier", "telecom", "street", "birth_date", "sentence")


# ---- raw zone: the event log and the quarantine ------------------------------------------------------

def test_event_payloads_hold_no_identifier_or_note_text(ingested, ids, landing):
    con = _connect(ingested.warehouse)
    try:
        # Source record ids stay in the restricted log (to trace and correct records), even where
        # an exporter built them from an MRN (embed_identifiers_in_source_ids); every other field
        # of a payload is searched.
        without_ids = "payload"
        for f in SOURCE_ID_FIELDS:
            without_ids = f"json_remove({without_ids}, '$.{f}')"
        hits = _scan(con, f"SELECT event_type AS \"where\", {without_ids}::VARCHAR AS hay FROM raw.events",
                     ids, ALL_KINDS, mask=_clinic_names(landing))
    finally:
        con.close()
    assert hits == []


def test_quarantine_holds_no_note_text(ingested, ids):
    con = _connect(ingested.warehouse)
    try:
        n = con.execute("SELECT count(*) FROM raw.quarantine q JOIN raw.ingest_files f USING (file_id) "
                        "WHERE f.source = 'notes'").fetchone()[0]
        assert n > 0, "the faults should have quarantined some note lines"
        hits = _scan(con, "SELECT reason_code AS \"where\", raw_record AS hay FROM raw.quarantine "
                          "UNION ALL SELECT reason_code, detail FROM raw.quarantine", ids, ("sentence",))
    finally:
        con.close()
    assert hits == []


def test_patient_keys_are_random(landing, ingested, tmp_path):
    """Surrogate keys are not derived from the person's data: not a hash of the MRN or Patient.id,
    and a second fresh warehouse ingesting the same export gets different keys."""
    from kap.pipeline import step_ingest

    con = _connect(ingested.warehouse)
    try:
        first = con.execute("SELECT id_system, id_value, patient_key FROM restricted.patient_keys").fetchall()
    finally:
        con.close()
    assert len({k for _, _, k in first}) >= CLINIC["patients"]

    # a second warehouse, only the Patient file: same identifiers, other keys
    drop = tmp_path / "landing"
    (drop / "ehr").mkdir(parents=True)
    for p in (landing / "ehr").glob("Patient.*.ndjson"):
        (drop / "ehr" / p.name).write_bytes(p.read_bytes())
    other = Settings(home=(tmp_path / "home2").resolve())
    step_ingest(drop, other)
    con = _connect(other.warehouse)
    try:
        second = {(s, v): k for s, v, k in con.execute(
            "SELECT id_system, id_value, patient_key FROM restricted.patient_keys").fetchall()}
    finally:
        con.close()
    common = [(s, v, k) for s, v, k in first if (s, v) in second]
    assert len(common) >= CLINIC["patients"]
    assert all(second[(s, v)] != k for s, v, k in common)

    by_key: dict[str, set[str]] = {}
    for _, value, key in first:
        by_key.setdefault(key, set()).add(value)
    for key, values in by_key.items():
        compact = key.replace("-", "").lower()
        for value in values:
            for algo in ("md5", "sha1", "sha256", "sha512"):
                digest = hashlib.new(algo, value.encode()).hexdigest()
                assert compact not in digest and digest not in compact, (algo, value)
            for ns in (uuid.NAMESPACE_OID, uuid.NAMESPACE_URL, uuid.NAMESPACE_DNS, uuid.NAMESPACE_X500):
                assert key not in (str(uuid.uuid3(ns, value)), str(uuid.uuid5(ns, value)))
            assert value.lower() not in key.lower()
        try:
            assert uuid.UUID(key).version not in (3, 5), "name-based UUID: derived from data"
        except ValueError:
            pass   # not a UUID at all: the hash checks above still apply


# ---- BI zone: analytics.duckdb ------------------------------------------------------------------------

def _text_columns(con) -> list[tuple[str, str, str]]:
    return con.execute("""
        SELECT table_schema, table_name, column_name FROM information_schema.columns
        WHERE data_type IN ('VARCHAR', 'JSON') OR data_type LIKE '%[]' OR data_type LIKE 'STRUCT%'
           OR data_type LIKE 'MAP%'
        ORDER BY ALL""").fetchall()


def test_analytics_holds_no_identifier_or_note_text(published, ids, landing):
    con = _connect(published.analytics)
    try:
        cols = _text_columns(con)
        assert cols
        union = " UNION ALL ".join(
            f"SELECT '{t}.{c}' AS \"where\", \"{c}\"::VARCHAR AS hay FROM \"{s}\".\"{t}\"" for s, t, c in cols)
        hits = _scan(con, union, ids, ALL_KINDS, mask=_clinic_names(landing))
    finally:
        con.close()
    assert hits == []


def test_source_ids_and_identifiers_inside_them_never_reach_analytics(published, source_ids, ids):
    """Every source record id (dosing, appointment, encounter, administration, note, observation,
    episode ...) is a keyed surrogate in analytics, so neither the id nor an MRN or Patient.id
    embedded in it (`dl-MRN1000003-...`, `apt-p-000001-...`) can be found there."""
    needles = {**source_ids, "identifier": ids["identifier"]}
    con = _connect(published.analytics)
    try:
        cols = _text_columns(con)
        union = " UNION ALL ".join(
            f"SELECT '{t}.{c}' AS \"where\", \"{c}\"::VARCHAR AS hay FROM \"{s}\".\"{t}\"" for s, t, c in cols)
        hits = _scan(con, union, needles, ("patient_id", "source_id", "identifier"))
        published_ids = con.execute("SELECT count(DISTINCT dosing_id), count(DISTINCT appointment_id) "
                                    "FROM dosing_sessions, therapy_sessions").fetchone()
    finally:
        con.close()
    assert hits == []
    assert all(n > 0 for n in published_ids), "the marts carry the (surrogate) ids"


def test_source_record_keys_trace_a_published_row_back_and_stay_stable(published):
    """The restricted warehouse maps each surrogate back to its source id; a rebuild gives the same."""
    from kap.transform import build

    con = _connect(published.analytics)
    try:
        before = con.execute("SELECT dosing_id, appointment_id FROM dosing_sessions d "
                             "JOIN therapy_sessions t USING (patient_key) WHERE dosing_id IS NOT NULL "
                             "AND appointment_id IS NOT NULL LIMIT 1").fetchone()
    finally:
        con.close()
    wh = _connect(published.warehouse)
    try:
        traced = dict(wh.execute(
            "SELECT entity, source_id FROM restricted.source_record_keys WHERE surrogate_id IN (?, ?)",
            list(before)).fetchall())
        secret = wh.execute("SELECT value FROM restricted.secrets WHERE name = 'source_id_key'").fetchone()[0]
    finally:
        wh.close()
    assert re.match(r"dl-MRN\d+-", traced["dosing"]) and traced["Appointment"].startswith("apt-p-")
    assert len(secret) == 64
    for entity, value in traced.items():     # not a plain hash of the id: the secret is needed
        for text in (value, f"{entity}|{value}", f"|{entity}|{value}"):
            assert hashlib.sha256(text.encode()).hexdigest()[:32] not in before
    build(published, full_refresh=True)
    wh = _connect(published.warehouse)
    try:
        again = wh.execute("SELECT count(*) FROM marts.dosing_sessions WHERE dosing_id = ?", [before[0]]).fetchone()[0]
    finally:
        wh.close()
    assert again == 1


def test_analytics_has_no_restricted_or_intermediate_layer(published):
    con = _connect(published.analytics)
    try:
        rows = con.execute("SELECT table_schema, table_name FROM information_schema.tables").fetchall()
        schemas = {r[0] for r in con.execute("SELECT schema_name FROM information_schema.schemata").fetchall()}
    finally:
        con.close()
    forbidden = ("raw", "restricted", "staging", "intermediate", "stg_", "int_", "dbt")
    assert not [s for s in schemas if s.lower().startswith(forbidden)]
    assert not [(s, t) for s, t in rows if s.lower().startswith(forbidden) or t.lower().startswith(forbidden)
                or t.lower() in ("events", "quarantine", "patient_keys", "ingest_files")]
    assert {"care_pathways", "dosing_sessions", "patient_outcomes"} <= {t for _, t in rows}


def test_analytics_has_no_birth_date_and_groups_ages_over_89(published, ids):
    births = {dt.date.fromisoformat(b) for b in ids["birth_date"]}
    con = _connect(published.analytics)
    try:
        cols = con.execute("""SELECT table_name, column_name, data_type FROM information_schema.columns
                              ORDER BY ALL""").fetchall()
        for table, column, dtype in cols:
            name = column.lower()
            assert "birth_date" not in name and "birthdate" not in name and name not in ("dob", "date_of_birth")
            if dtype in ("DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_NS"):
                values = {r[0] for r in con.execute(
                    f'SELECT DISTINCT CAST("{column}" AS DATE) FROM "{table}" WHERE "{column}" IS NOT NULL').fetchall()}
                assert not (values & births), (table, column, sorted(values & births)[:3])
            if re.search(r"(^|_)age($|_)", name):
                if dtype.startswith(("INT", "BIGINT", "SMALLINT", "TINYINT", "HUGEINT", "DOUBLE", "DECIMAL", "FLOAT")):
                    top = con.execute(f'SELECT max("{column}") FROM "{table}"').fetchone()[0]
                    assert top is None or top <= 90, f"{table}.{column}: exact age {top} > 89 (group as 90+)"
                else:
                    values = [r[0] for r in con.execute(f'SELECT DISTINCT "{column}"::VARCHAR FROM "{table}"').fetchall()]
                    for v in values:
                        nums = [int(x) for x in re.findall(r"\d+", v or "")]
                        assert all(n <= 90 for n in nums), f"{table}.{column}: band {v!r} above 90+"
    finally:
        con.close()


def test_scanner_finds_what_it_looks_for(landing, ids):
    """Positive control: the same scan over the landing files themselves finds every kind."""
    con = duckdb.connect()
    try:
        con.execute("CREATE TABLE landing_lines (\"where\" VARCHAR, hay VARCHAR)")
        for path in [*sorted((landing / "ehr").glob("Patient.*.ndjson")),
                     *sorted((landing / "ehr").glob("Appointment.*.ndjson")),   # "display": "Given Family"
                     *sorted((landing / "notes").glob("*.jsonl"))]:
            con.executemany("INSERT INTO landing_lines VALUES (?, ?)",
                            [(path.name, line) for line in path.read_text("utf-8", "replace").splitlines()])
        _load_needles(con, ids, ALL_KINDS)
        for kind in ALL_KINDS:
            assert _scan(con, "SELECT * FROM landing_lines", ids, (kind,)), kind
        source_ids = read_source_ids(landing)
        for kind in ("patient_id", "source_id"):
            assert _scan(con, "SELECT * FROM landing_lines", source_ids, (kind,)), kind
    finally:
        con.close()


# ---- staff: only by id and role -------------------------------------------------------------------

CARE_TEAM_TABLES = ("care_team", "care_continuity", "staff_weekly", "care_team_outcomes")
# the only columns of the care-team tables that speak of staff
STAFF_COLUMNS = {"staff_id", "staff_role", "staff_week_key", "usual_therapist_id", "is_usual_therapist", "usual_therapist_sessions",
                 "distinct_therapists", "is_integrated_by_preparer", "has_therapist_switch_in_induction",
                 "integration_known_therapist_share"}


@pytest.fixture(scope="module")
def staff(landing) -> dict[str, set[str]]:
    found = read_staff(landing)
    assert len(found["id"]) >= 20 and len(found["identifier"]) >= 20 and found["full_name"]
    return found


def test_analytics_holds_no_staff_name_or_identifier(published, staff, landing):
    con = _connect(published.analytics)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        assert set(CARE_TEAM_TABLES) <= tables
        cols = _text_columns(con)
        union = " UNION ALL ".join(
            f"SELECT '{t}.{c}' AS \"where\", \"{c}\"::VARCHAR AS hay FROM \"{s}\".\"{t}\"" for s, t, c in cols)
        hits = _scan(con, union, staff, ("name_token", "full_name", "identifier"), mask=_clinic_names(landing))
    finally:
        con.close()
    assert hits == []


def test_care_team_tables_name_staff_only_by_id_and_role_and_patients_only_by_key(published, staff):
    con = _connect(published.analytics)
    try:
        for table in CARE_TEAM_TABLES:
            cols = {r[0] for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table]).fetchall()}
            staffish = {c for c in cols if any(w in c for w in ("staff", "therapist", "practitioner", "clinician",
                                                               "prescriber", "npi", "name"))}
            assert staffish <= STAFF_COLUMNS, (table, sorted(staffish - STAFF_COLUMNS))
            patientish = {c for c in cols if "patient" in c or c in ("mrn", "ssn", "subject")}
            assert patientish <= {"patient_key", "patients", "responding_patients"}, (table, sorted(patientish))
        ids = {r[0] for r in con.execute(
            "SELECT staff_id FROM care_team UNION SELECT staff_id FROM staff_weekly "
            "UNION SELECT usual_therapist_id FROM care_continuity WHERE usual_therapist_id IS NOT NULL").fetchall()}
        roles = {r[0] for r in con.execute(
            "SELECT staff_role FROM care_team UNION SELECT staff_role FROM staff_weekly").fetchall()}
    finally:
        con.close()
    assert ids and ids <= staff["id"]            # Practitioner ids, never an NPI or a name
    assert not ids & staff["identifier"]
    assert roles <= {"prescriber", "dosing_clinician", "therapist", "other"} and "therapist" in roles
