"""Malformed landing inputs: every one ends as accepted, quarantined with a reason, or a rejected file.

The corpus (tests/fixtures/bad_inputs/, written by its make_corpus.py, listed in its README.md) holds
one small landing drop per case: a good base (Patient.000.ndjson with two patients, one Observation,
one dosing row, one note) plus the malformed file, which carries good records (`-good-` in their id)
beside the bad ones. Inputs that should not be committed (a 10 MB line, gzip data, symlinks, a file
still being written) are built here in tmp_path.

For every case: the bad file's outcome is exactly the expected one, the whole base and the good
records of the bad file are ingested, and `records_read = accepted + quarantined + duplicate +
ignored` holds for every file (in the summary and in raw.ingest_files, matching the rows written).
"""
from __future__ import annotations

import gzip
import importlib.util
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pytest

from ingest import loader
from kap.settings import Settings
from kap.pipeline import step_ingest
from ingest.reasons import FILE_REASONS, RECORD_REASONS

CORPUS = Path(__file__).parent / "fixtures" / "bad_inputs"

_spec = importlib.util.spec_from_file_location("bad_inputs_corpus", CORPUS / "make_corpus.py")
corpus = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(corpus)

BASE_IDS = {"Organization/clinic-01", "Patient/p-bi-0001", "Patient/p-bi-0002", "Observation/obs-base-1",
            "dl-base-1", "note-base-1"}
BASE_ACCEPTED = {"ehr/Organization.000.ndjson": 1, "ehr/Patient.000.ndjson": 2, "ehr/Observation.000.ndjson": 1, "dosing/dosing.000.csv": 1,
                 "notes/notes.000.jsonl": 1}


@dataclass(frozen=True)
class Expect:
    """Expected outcome of the bad file of a drop.

    `reasons`: record reason code -> number of quarantine rows; a tuple key means "any of these codes"
    (where the reason-code list allows two readings). `file_reason`: the file-level reason of a
    rejected file. `accepted`: records accepted (all of them, and only them, carry `-good-`).
    """

    bad_file: str
    status: str = "ingested"                 # ingested | rejected | unstable
    accepted: int = 0
    reasons: dict = field(default_factory=dict)
    duplicate: int = 0
    ignored: int = 0
    file_reason: str | None = None


def _q(n: int, reason) -> dict:
    return {reason: n}


OBS = "ehr/Observation.100.ndjson"
MED = "ehr/MedicationAdministration.100.ndjson"
CSV = "dosing/dosing.100.csv"
NOTES = "notes/notes.100.jsonl"

# case id -> expected outcome of its bad file (one row per committed corpus folder)
EXPECTED: dict[str, Expect] = {
    # EHR (FHIR NDJSON)
    "ehr_truncated_last_line": Expect(OBS, accepted=2, reasons=_q(1, "unparseable")),
    "ehr_invalid_json": Expect(OBS, accepted=2, reasons=_q(4, "unparseable")),
    "ehr_not_an_object": Expect(OBS, accepted=1, reasons=_q(4, "not_an_object")),
    "ehr_unknown_resource_type": Expect("ehr/Mixed.100.ndjson", accepted=1, ignored=3),
    "ehr_non_string_resource_type": Expect(OBS, accepted=1,
                                           reasons=_q(4, ("wrong_type", "missing_resource_type"))),
    "ehr_missing_resource_type": Expect(OBS, accepted=1, reasons=_q(3, "missing_resource_type")),
    "ehr_missing_id": Expect(OBS, accepted=1, reasons=_q(2, "missing_required_field")),
    "ehr_utf8_bom": Expect(OBS, accepted=2),
    "ehr_crlf": Expect(OBS, accepted=2),
    "ehr_bom_crlf_patient_file": Expect("ehr/Patient.100.ndjson", accepted=1),
    "ehr_latin1_bytes": Expect(OBS, accepted=2, reasons=_q(1, "invalid_encoding")),
    "ehr_zero_byte_file": Expect(OBS, status="rejected", file_reason="empty_file"),
    "ehr_blank_lines_only": Expect(OBS, status="rejected", file_reason="empty_file"),
    "ehr_score_out_of_range": Expect(OBS, accepted=1, reasons=_q(2, "out_of_range")),
    "ehr_bp_out_of_range": Expect(OBS, accepted=1, reasons=_q(2, "out_of_range")),
    "ehr_future_date": Expect(OBS, accepted=1, reasons=_q(1, "future_time")),
    "ehr_before_birth": Expect(OBS, accepted=1, reasons=_q(2, "before_birth")),
    "ehr_unknown_patient": Expect(OBS, accepted=2, reasons=_q(2, "unknown_patient")),
    "ehr_conflicting_duplicate": Expect(OBS, accepted=1, reasons=_q(1, "conflicting_duplicate")),
    "ehr_exact_duplicate_across_files": Expect(OBS, accepted=1, duplicate=1),
    "ehr_duplicate_in_file": Expect(OBS, accepted=2, reasons=_q(2, "duplicate_in_file")),
    "ehr_dose_out_of_range": Expect(MED, accepted=1, reasons=_q(3, "out_of_range")),
    "ehr_dose_not_numeric": Expect(MED, accepted=1, reasons=_q(2, "wrong_type")),
    "ehr_missing_value": Expect(OBS, accepted=1, reasons=_q(1, "missing_value")),
    "ehr_bad_timestamp": Expect(OBS, accepted=1, reasons=_q(2, "wrong_type")),
    "ehr_invalid_status": Expect(OBS, accepted=1, reasons=_q(1, "invalid_code")),
    "ehr_unknown_instrument": Expect(OBS, accepted=1, reasons=_q(1, "unknown_instrument")),
    # dosing log (CSV)
    "dosing_truncated_last_line": Expect(CSV, accepted=1, reasons=_q(1, "unparseable")),
    "dosing_header_only": Expect(CSV, status="rejected", file_reason="empty_file"),
    "dosing_zero_byte_file": Expect(CSV, status="rejected", file_reason="empty_file"),
    "dosing_missing_column": Expect(CSV, status="rejected", file_reason="missing_columns"),
    "dosing_extra_column": Expect(CSV, accepted=2),
    "dosing_wrong_field_count": Expect(CSV, accepted=1, reasons=_q(2, "unparseable")),
    "dosing_dose_not_numeric": Expect(CSV, accepted=1, reasons=_q(2, "wrong_type")),
    "dosing_dose_negative": Expect(CSV, accepted=1, reasons=_q(2, "out_of_range")),
    "dosing_dose_absurd": Expect(CSV, accepted=1, reasons=_q(2, "out_of_range")),
    "dosing_bp_out_of_range": Expect(CSV, accepted=1, reasons=_q(2, "out_of_range")),
    "dosing_future_date": Expect(CSV, accepted=1, reasons=_q(1, "future_time")),
    "dosing_before_birth": Expect(CSV, accepted=1, reasons=_q(1, "before_birth")),
    "dosing_unknown_patient": Expect(CSV, accepted=1, reasons=_q(1, "unknown_patient")),
    "dosing_bom_crlf": Expect(CSV, accepted=2),
    "dosing_latin1_bytes": Expect(CSV, accepted=2, reasons=_q(1, "invalid_encoding")),
    "dosing_conflicting_duplicate": Expect(CSV, accepted=1, reasons=_q(1, "conflicting_duplicate")),
    "dosing_missing_required_value": Expect(CSV, accepted=1, reasons=_q(2, "missing_required_field")),
    "dosing_invalid_code": Expect(CSV, accepted=1, reasons=_q(2, "invalid_code")),
    "dosing_end_before_start": Expect(CSV, accepted=1, reasons=_q(1, "end_before_start")),
    "dosing_bad_timestamp": Expect(CSV, accepted=1, reasons=_q(1, "wrong_type")),
    # therapy notes (JSONL)
    "notes_truncated_last_line": Expect(NOTES, accepted=1, reasons=_q(1, "unparseable")),
    "notes_invalid_json": Expect(NOTES, accepted=2, reasons=_q(1, "unparseable")),
    "notes_unescaped_quote_in_text": Expect(NOTES, accepted=2, reasons=_q(1, "unparseable")),
    "notes_not_an_object": Expect(NOTES, accepted=1, reasons=_q(1, "not_an_object")),
    "notes_zero_byte_file": Expect(NOTES, status="rejected", file_reason="empty_file"),
    "notes_bom_crlf": Expect(NOTES, accepted=2),
    "notes_latin1_bytes": Expect(NOTES, accepted=2, reasons=_q(1, "invalid_encoding")),
    "notes_unknown_patient": Expect(NOTES, accepted=1, reasons=_q(1, "unknown_patient")),
    "notes_future_date": Expect(NOTES, accepted=1, reasons=_q(1, "future_time")),
    "notes_before_birth": Expect(NOTES, accepted=1, reasons=_q(1, "before_birth")),
    "notes_invalid_code": Expect(NOTES, accepted=1, reasons=_q(3, "invalid_code")),
    "notes_end_before_start": Expect(NOTES, accepted=1, reasons=_q(1, "end_before_start")),
    "notes_missing_required_field": Expect(NOTES, accepted=1, reasons=_q(2, "missing_required_field")),
    "notes_duplicate_conflicting": Expect(NOTES, accepted=1, reasons=_q(1, "conflicting_duplicate")),
}

@pytest.fixture(autouse=True)
def _quiet_loader():
    logging.getLogger("ingest.loader").setLevel(logging.CRITICAL)
    yield


def _settings(tmp_path: Path) -> Settings:
    return Settings(home=(tmp_path / "kap_home").resolve())


def _rows(settings: Settings, sql: str, params=None) -> list[tuple]:
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _write_drop(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def check_drop(settings: Settings, summary, expect: Expect) -> None:
    """The bad file's outcome, the base and good records ingested, the count identity everywhere."""
    assert summary.ok, [f for f in summary.files if f.status == "failed"]
    by_path = {f.path: f for f in summary.files}
    assert expect.bad_file in by_path, sorted(by_path)

    # 1. the rest of the drop: every base file ingested in full, nothing of it quarantined
    for rel, n in BASE_ACCEPTED.items():
        f = by_path[rel]
        assert (f.status, f.records_read, f.records_accepted, f.records_quarantined) == ("ingested", n, n, 0), f
    ids = {r[0] for r in _rows(settings, "SELECT source_record_id FROM raw.events")}
    assert BASE_IDS <= ids

    # 2. the count identity for every file: summary, raw.ingest_files and the rows actually written
    for f in summary.files:
        assert f.records_read == (f.records_accepted + f.records_quarantined + f.records_duplicate
                                  + f.records_ignored), f
    files = _rows(settings, """SELECT f.path, f.status, f.reject_reason, f.records_read, f.records_accepted,
                                      f.records_quarantined, f.records_duplicate, f.records_ignored,
                                      f.events_added,
                                      (SELECT count(*) FROM raw.events e WHERE e.file_id = f.file_id),
                                      (SELECT count(*) FROM raw.quarantine q WHERE q.file_id = f.file_id)
                               FROM raw.ingest_files f""")
    for path, status, reason, read, acc, quar, dup, ign, added, n_events, n_quar in files:
        assert read == acc + quar + dup + ign, path
        assert added == acc == n_events, path
        assert quar == n_quar, path
        assert status in ("ingested", "rejected") and (reason is None) == (status == "ingested"), path
    assert len(files) == sum(1 for f in summary.files if f.status in ("ingested", "rejected"))

    # 3. the bad file itself
    bad = by_path[expect.bad_file]
    assert bad.status == expect.status, bad
    if expect.status == "rejected":
        assert bad.reject_reason == expect.file_reason and expect.file_reason in FILE_REASONS
        row = [r for r in files if r[0] == expect.bad_file]
        assert len(row) == 1 and row[0][1:3] == ("rejected", expect.file_reason)
        assert row[0][3:] == (0,) * 8     # no records counted, nothing written
        return
    if expect.status == "unstable":
        assert bad.reject_reason == "unstable_file"
        assert not [r for r in files if r[0] == expect.bad_file], "an unstable file is not recorded"
        return
    assert (bad.records_accepted, bad.records_duplicate, bad.records_ignored) == (
        expect.accepted, expect.duplicate, expect.ignored), bad
    accepted_ids = [r[0] for r in _rows(settings, "SELECT source_record_id FROM raw.events WHERE file_id = ?",
                                        [bad.file_id])]
    assert len(accepted_ids) == expect.accepted and all("-good-" in i for i in accepted_ids), accepted_ids
    got = dict(_rows(settings, "SELECT reason_code, count(*) FROM raw.quarantine WHERE file_id = ? GROUP BY 1",
                     [bad.file_id]))
    assert set(got) <= set(RECORD_REASONS)
    assert bad.records_quarantined == sum(got.values()) == sum(expect.reasons.values())
    for reason, n in expect.reasons.items():
        codes = reason if isinstance(reason, tuple) else (reason,)
        assert sum(got.get(c, 0) for c in codes) == n, (reason, got)
    # every quarantine row leads back to its line and says why
    for line_number, detail in _rows(settings, "SELECT line_number, detail FROM raw.quarantine WHERE file_id = ?",
                                     [bad.file_id]):
        assert line_number >= 1 and detail


def _param(case_id: str):
    return pytest.param(case_id, id=case_id)


@pytest.mark.parametrize("case_id", [_param(c) for c in EXPECTED])
def test_corpus_case(case_id: str, tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    summary = step_ingest(CORPUS / case_id, settings)
    check_drop(settings, summary, EXPECTED[case_id])


# ---- inputs built in tmp_path -----------------------------------------------------------------

TEN_MB = 10 * 1024 * 1024


def _drop_10mb_line(root: Path, outside: Path) -> Expect:
    big = corpus.obs("obs-good-3", note=[{"text": "x" * TEN_MB}])
    garbage = b'{"resourceType":"Observation","id":"obs-bad-1","note":"' + b"y" * TEN_MB   # never closed
    _write_drop(root, {**corpus.base_files(),
                       OBS: corpus.lines(corpus.GOOD_OBS_1, big, garbage, corpus.GOOD_OBS_2)})
    return Expect(OBS, accepted=3, reasons=_q(1, "unparseable"))


def _drop_gzip_without_extension(root: Path, outside: Path) -> Expect:
    _write_drop(root, {**corpus.base_files(),
                       OBS: gzip.compress(corpus.lines(corpus.GOOD_OBS_1), mtime=0)})
    return Expect(OBS, status="rejected", file_reason="compressed_without_extension")


def _drop_gzip_with_extension(root: Path, outside: Path) -> Expect:
    _write_drop(root, {**corpus.base_files(),
                       OBS + ".gz": gzip.compress(corpus.lines(corpus.GOOD_OBS_1, corpus.GOOD_OBS_2), mtime=0)})
    return Expect(OBS + ".gz", accepted=2)


def _drop_corrupt_gzip(root: Path, outside: Path) -> Expect:
    data = gzip.compress(corpus.lines(*(corpus.obs(f"obs-bad-{i}") for i in range(200))), mtime=0)
    _write_drop(root, {**corpus.base_files(), OBS + ".gz": data[: len(data) // 2]})
    return Expect(OBS + ".gz", status="rejected", file_reason="unreadable")


def _drop_symlink_outside(root: Path, outside: Path) -> Expect:
    _write_drop(root, corpus.base_files())
    target = outside / "secret.ndjson"
    target.write_bytes(corpus.lines(corpus.obs("obs-bad-1")))
    os.symlink(target, root / OBS)
    return Expect(OBS, status="rejected", file_reason="outside_landing")


def _drop_symlinked_drop_folder(root: Path, outside: Path) -> Expect:
    _write_drop(root, corpus.base_files())
    (outside / "drop").mkdir()
    (outside / "drop" / "Observation.100.ndjson").write_bytes(corpus.lines(corpus.obs("obs-bad-1")))
    os.symlink(outside / "drop", root / "ehr" / "2025-06-01")
    return Expect("ehr/2025-06-01/Observation.100.ndjson", status="rejected", file_reason="outside_landing")


GENERATED = {
    "ehr_10mb_line": _drop_10mb_line,
    "ehr_gzip_without_extension": _drop_gzip_without_extension,
    "ehr_gzip_with_extension": _drop_gzip_with_extension,
    "ehr_corrupt_gzip": _drop_corrupt_gzip,
    "ehr_symlink_outside_landing": _drop_symlink_outside,
    "ehr_symlinked_drop_folder_outside_landing": _drop_symlinked_drop_folder,
}


@pytest.mark.parametrize("case_id", list(GENERATED))
def test_generated_case(case_id: str, tmp_path: Path) -> None:
    root, outside = tmp_path / "landing", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    expect = GENERATED[case_id](root, outside)
    settings = _settings(tmp_path)
    summary = step_ingest(root, settings)
    check_drop(settings, summary, expect)
    if expect.file_reason == "outside_landing":
        # never opened: nothing of the outside file was read or stored
        assert not _rows(settings, "SELECT 1 FROM raw.events WHERE source_record_id LIKE '%bad%'")
        assert not _rows(settings, "SELECT 1 FROM raw.quarantine")


def test_file_still_being_written_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file that grows while it is read is `unstable_file`: not recorded, picked up next run.

    The loader has no hook for this, so the exporter is simulated by wrapping the loader's line
    reader: right after the file's lines are read, another line is appended to it (as a writer
    still flushing would), which the loader's stability check (size/mtime) must notice.
    """
    root = _write_drop(tmp_path / "landing", {**corpus.base_files(), NOTES: corpus.lines(corpus.note("note-good-1"))})
    growing = (root / NOTES).absolute()
    original = loader._load_lines
    grown = []

    def load_and_grow(con, path, gz, *limits):
        out = original(con, path, gz, *limits)
        if Path(path).absolute() == growing and not grown:
            with open(growing, "ab") as f:
                f.write(corpus.lines(corpus.note("note-good-2")))
            grown.append(path)
        return out

    monkeypatch.setattr(loader, "_load_lines", load_and_grow)
    settings = _settings(tmp_path)
    first = step_ingest(root, settings)
    assert grown, "the loader did not read the notes file through _load_lines"
    check_drop(settings, first, Expect(NOTES, status="unstable"))
    assert not _rows(settings, "SELECT 1 FROM raw.events WHERE source_record_id LIKE 'note-good-%'")

    monkeypatch.setattr(loader, "_load_lines", original)
    second = step_ingest(root, settings)
    by_path = {f.path: f for f in second.files}
    assert by_path[NOTES].status == "ingested" and by_path[NOTES].records_accepted == 2
    assert all(f.status == "skipped" for p, f in by_path.items() if p != NOTES)


# ---- privacy of quarantined note lines ----------------------------------------------------------

NOTE_FRAGMENTS = ("orchard", "grandmother", "felt calmer", "wept quietly")
NOTE_CASES = [c for c in EXPECTED if c.startswith("notes_") and EXPECTED[c].reasons]


@pytest.mark.parametrize("case_id", NOTE_CASES)
def test_quarantined_note_lines_hold_no_note_text(case_id: str, tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    step_ingest(CORPUS / case_id, settings)
    stored = _rows(settings, "SELECT raw_record FROM raw.quarantine")
    assert stored
    leaks = [(frag, rec) for (rec,) in stored for frag in NOTE_FRAGMENTS if rec and frag in rec]
    assert not leaks
    assert not [rec for (rec,) in stored if rec and corpus.P1["mrn"] in rec]


# ---- the corpus and its README agree ------------------------------------------------------------

def test_corpus_is_complete_and_documented() -> None:
    folders = {p.name for p in CORPUS.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))}
    assert folders == set(corpus.CASES) == set(EXPECTED)
    assert len(EXPECTED) + len(GENERATED) + 1 >= 25
    readme = (CORPUS / "README.md").read_text()
    for case_id in [*EXPECTED, *GENERATED, "notes_file_still_being_written"]:
        assert f"`{case_id}`" in readme, case_id
    for case_id in EXPECTED:   # every folder is a landing drop with the patients in it
        assert (CORPUS / case_id / "ehr" / "Patient.000.ndjson").is_file()
    # committed bytes are what make_corpus.py writes
    for case_id, bad in corpus.CASES.items():
        for rel, data in {**corpus.base_files(), **bad}.items():
            assert (CORPUS / case_id / rel).read_bytes() == data, (case_id, rel)
