"""Resource limits per landing file: a hostile file is rejected, recorded, and never blocks a night.

A decompression bomb, an oversized plain file, an over-long line and JSON nested too deep are
each rejected whole with a file-level reason recorded in raw.ingest_files (so the same bytes are
not read again), and the files after it in the drop are ingested in the same run.
"""
from __future__ import annotations

import gzip
import shutil
import zlib
from pathlib import Path

import duckdb
import pytest

from ingest import loader
from ingest.limits import Limits
from kap.pipeline import step_ingest
from kap.settings import Settings

LANDING = Path(__file__).parent / "fixtures" / "ingest" / "landing"
DROP = "ehr/2025-06-01"
MIB = 1 << 20


def _gzip_bomb(path: Path, expanded_mib: int) -> None:
    """A gzip file of `expanded_mib` MiB of spaces and newlines (blank lines), written in chunks."""
    chunk = (b" " * 1023 + b"\n") * 1024               # 1 MiB
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    with open(path, "wb") as f:
        for _ in range(expanded_mib):
            f.write(comp.compress(chunk))
        f.write(comp.flush())


def _landing_with(tmp_path: Path, name: str, write) -> Path:
    land = tmp_path / "landing"
    shutil.copytree(LANDING, land)
    write(land / DROP / name)
    return land


def _files(settings: Settings) -> dict[str, tuple]:
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        return {r[0]: r[1:] for r in con.execute(
            "SELECT path, status, reject_reason, sha256, records_read FROM raw.ingest_files").fetchall()}
    finally:
        con.close()


def test_decompression_bomb_sorting_first_is_rejected_and_the_rest_of_its_drop_ingested(tmp_path):
    # 'Patient.0.ndjson.gz' sorts before every other file of the drop (Patient files go first)
    land = _landing_with(tmp_path, "Patient.0.ndjson.gz", lambda p: _gzip_bomb(p, 200))
    assert land.joinpath(DROP, "Patient.0.ndjson.gz").stat().st_size < 1 * MIB
    settings = Settings(home=tmp_path / "home")            # default limits
    summary = step_ingest(land, settings)
    first = summary.files[0]
    assert first.path == f"{DROP}/Patient.0.ndjson.gz"
    assert (first.status, first.reject_reason) == ("rejected", "expansion_ratio_exceeded")
    assert summary.ok and summary.totals["files_ingested"] == 17   # every other file of the drop
    files = _files(settings)
    assert files[f"{DROP}/Patient.0.ndjson.gz"][:2] == ("rejected", "expansion_ratio_exceeded")
    # recorded: the next night does not read it again
    again = step_ingest(land, settings)
    assert [f.status for f in again.files] == ["skipped"] * 18


def test_gzip_past_the_size_limit_is_rejected_while_streaming(tmp_path):
    land = _landing_with(tmp_path, "Observation.9.ndjson.gz", lambda p: _gzip_bomb(p, 12))
    settings = Settings(home=tmp_path / "home",
                        limits=Limits(max_decompressed_bytes=4 * MIB, max_expansion_ratio=1e9))
    summary = step_ingest(land, settings)
    bomb = next(f for f in summary.files if f.path.endswith("Observation.9.ndjson.gz"))
    assert (bomb.status, bomb.reject_reason) == ("rejected", "file_too_large")
    assert "expands past 4194304 bytes" in bomb.detail
    assert summary.totals["files_ingested"] == 17


def test_plain_file_over_the_size_limit_is_rejected_before_it_is_read(tmp_path):
    def big(p: Path) -> None:
        p.write_bytes(b"\n" * (2 * MIB))
    land = _landing_with(tmp_path, "Observation.9.ndjson", big)
    settings = Settings(home=tmp_path / "home", limits=Limits(max_decompressed_bytes=1 * MIB))
    summary = step_ingest(land, settings)
    assert _files(settings)[f"{DROP}/Observation.9.ndjson"][:2] == ("rejected", "file_too_large")
    assert summary.totals["files_ingested"] == 17


def test_a_small_repetitive_gzip_under_the_exempt_size_is_read(tmp_path):
    # 2 MiB of blank lines compress ~1000x, past the ratio, but stay under ratio_exempt_bytes
    land = _landing_with(tmp_path, "Observation.9.ndjson.gz", lambda p: _gzip_bomb(p, 2))
    settings = Settings(home=tmp_path / "home")
    step_ingest(land, settings)
    status, reason, _, _ = _files(settings)[f"{DROP}/Observation.9.ndjson.gz"]
    assert (status, reason) == ("rejected", "empty_file")    # read through: only blank lines


def test_line_longer_than_the_limit_rejects_the_file(tmp_path):
    def long_line(p: Path) -> None:
        p.write_text('{"resourceType":"Observation","id":"o-long","note":"' + "x" * 5000 + '"}\n')
    land = _landing_with(tmp_path, "Observation.9.ndjson", long_line)
    settings = Settings(home=tmp_path / "home", limits=Limits(max_line_bytes=4096))
    summary = step_ingest(land, settings)
    rejected = next(f for f in summary.files if f.path.endswith("Observation.9.ndjson"))
    assert (rejected.status, rejected.reject_reason) == ("rejected", "line_too_long")
    assert rejected.detail.startswith("line 1 has 5")
    assert summary.totals["files_ingested"] == 17


def test_line_length_limit_applies_to_csv_and_gzip_too(tmp_path):
    land = tmp_path / "landing"
    (land / "dosing").mkdir(parents=True)
    with gzip.open(land / "dosing" / "dosing.9.csv.gz", "wt") as f:
        f.write("a,b\n" + "y" * 3000 + ",1\n")
    settings = Settings(home=tmp_path / "home", limits=Limits(max_line_bytes=1000))
    summary = step_ingest(land, settings)
    assert (summary.files[0].status, summary.files[0].reject_reason) == ("rejected", "line_too_long")


@pytest.mark.parametrize("depth, rejected", [(64, False), (65, True), (5000, True)])
def test_json_nested_deeper_than_the_limit_rejects_the_file(tmp_path, depth, rejected):
    # 'depth' levels in all: the resource object plus depth - 1 nested arrays
    def nested(p: Path) -> None:
        p.write_text('{"resourceType":"Basic","id":"b-1","x":' + "[" * (depth - 1) + "]" * (depth - 1) + "}\n"
                     '{"resourceType":"Basic","id":"b-2","text":"' + "[{" * 500 + '"}\n')
    land = _landing_with(tmp_path, "Basic.9.ndjson", nested)
    settings = Settings(home=tmp_path / "home")
    step_ingest(land, settings)
    status, reason, _, _ = _files(settings)[f"{DROP}/Basic.9.ndjson"]
    assert (status, reason) == (("rejected", "nesting_too_deep") if rejected else ("ingested", None))


def test_notes_are_checked_for_nesting_and_csv_brackets_are_not(tmp_path):
    land = tmp_path / "landing"
    (land / "notes").mkdir(parents=True)
    (land / "notes" / "n.jsonl").write_text('{"a":' + "[" * 80 + "]" * 80 + "}\n")
    (land / "dosing").mkdir()
    (land / "dosing" / "d.csv").write_text("a,b\n" + "[" * 100 + ",1\n")
    settings = Settings(home=tmp_path / "home")
    step_ingest(land, settings)
    files = _files(settings)
    assert files["notes/n.jsonl"][:2] == ("rejected", "nesting_too_deep")
    assert files["dosing/d.csv"][1] != "nesting_too_deep"


def test_a_rejected_file_changed_by_the_exporter_is_read_again(tmp_path):
    land = _landing_with(tmp_path, "Observation.9.ndjson.gz", lambda p: _gzip_bomb(p, 12))
    settings = Settings(home=tmp_path / "home", limits=Limits(max_decompressed_bytes=4 * MIB))
    step_ingest(land, settings)
    old_sha = _files(settings)[f"{DROP}/Observation.9.ndjson.gz"][2]
    fixed = land / DROP / "Observation.9.ndjson.gz"
    fixed.write_bytes(gzip.compress((LANDING / DROP / "Observation.000.ndjson").read_bytes()))
    summary = step_ingest(land, settings)
    again = next(f for f in summary.files if f.path.endswith("Observation.9.ndjson.gz"))
    # read again: its records are those of Observation.000, already in the log
    assert again.status == "ingested" and again.file_id != old_sha
    assert again.records_read == again.records_duplicate > 0


def test_limits_are_settings_read_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("KAP_MAX_FILE_BYTES", "1000")
    monkeypatch.setenv("KAP_MAX_EXPANSION_RATIO", "7.5")
    monkeypatch.setenv("KAP_MAX_LINE_BYTES", "100")
    monkeypatch.setenv("KAP_MAX_JSON_DEPTH", "9")
    assert Settings.from_env(tmp_path).limits == Limits(
        max_decompressed_bytes=1000, max_expansion_ratio=7.5, max_line_bytes=100, max_json_depth=9)
    monkeypatch.setenv("KAP_MAX_JSON_DEPTH", "0")
    with pytest.raises(ValueError, match="max_json_depth"):
        Settings.from_env(tmp_path)


def test_library_takes_limits_as_an_argument(tmp_path):
    land = _landing_with(tmp_path, "Observation.9.ndjson", lambda p: p.write_text('{"a":1}\n' * 10))
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    summary = loader.ingest_landing(con, land, limits=Limits(max_decompressed_bytes=50))
    rejected = {f.path: f.reject_reason for f in summary.files if f.status == "rejected"}
    assert rejected[f"{DROP}/Observation.9.ndjson"] == "file_too_large"
    con.close()


def _python_depth(line: str) -> int:
    """Reference: the deepest nesting of brackets outside JSON strings."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in line:
        if in_string:
            escaped, in_string = (False, in_string) if escaped else (ch == "\\", ch != '"')
            continue
        if ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


@pytest.mark.parametrize("limit", [3, 8, 9, 64])
def test_the_depth_check_agrees_with_a_plain_count_on_wide_deep_and_quoted_lines(limit):
    """The SQL check skips lines that cannot pass the limit; whatever it skips, its verdict on each
    line must be a plain count's: wide but shallow FHIR-like lines (hundreds of brackets), deep
    ones just under and over the limit, brackets inside strings and escaped quotes, broken JSON."""
    import random

    import duckdb

    from ingest.limits import Limits, LimitExceeded
    from ingest.loader import _check_lines

    rng = random.Random(limit)
    wide = '{"resourceType":"Observation","code":{"coding":[' + ",".join(
        '{"system":"s","code":"c%d","x":[[{}]]}' % i for i in range(80)) + "]}}"
    lines = [wide,
             '{"a":' + "[" * (limit - 1) + "]" * (limit - 1) + "}",
             '{"a":' + "[" * limit + "]" * limit + "}",
             '{"a":"' + "[" * (limit + 5) + '","b":"\\"{{{{"}',
             '{"a":' + "[{" * (limit // 2 + 3) + "}]" * (limit // 2 + 3) + "}",
             "[" * (limit + 2),                                    # broken: never closed
             '{"a":' + "[" * (limit + 3) + "}" * (limit + 3) + "}"]  # broken: mismatched pairs
    for _ in range(60):    # random nestings around the limit: one deep spine with shallow siblings
        target = rng.randint(max(1, limit - 2), limit + 2)
        text = '"v"'
        for level in range(target - 1):
            siblings = [rng.choice(['"s"', "[]", "{}", '[{"a":[1]}]', '"]}["']) for _ in range(rng.randint(0, 2))]
            items = siblings + [text]
            rng.shuffle(items)
            text = "[" + ",".join(items) + "]" if rng.random() < 0.5 else "{" + ",".join(
                f'"k{i}":{v}' for i, v in enumerate(items)) + "}"
        lines.append('{"x":' + text + "}")
    limits = Limits(max_decompressed_bytes=1 << 30, max_expansion_ratio=100.0, max_line_bytes=1 << 24,
                    max_json_depth=limit)
    for line in lines:
        con = duckdb.connect()
        con.execute("CREATE TEMP TABLE _kap_lines_raw AS SELECT 1 AS n, ? AS l", [line])
        expected_rejected = _python_depth(line) > limit
        try:
            _check_lines(con, "ehr", limits)
            rejected = False
        except LimitExceeded as exc:
            rejected = True
            assert f"nested {_python_depth(line)} levels deep" in str(exc)
        assert rejected == expected_rejected, (limit, line[:120])
