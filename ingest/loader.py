"""Event-sourced ingestion: landing files -> raw.events / raw.quarantine / raw.ingest_files.

`ingest_landing` walks the landing folder (ingest.landing) in a fixed order - EHR Patient files,
other EHR files, dosing, notes; by path within each - and takes every file through two phases:
`_stage` (steps 1-3, no warehouse writes, each file on a connection of its own) and `_commit`
(step 4, in file order). While file i commits, files i+1 and i+2 are staged (STAGE_AHEAD), so
parsing and writing overlap on the two cores. `ingest_file` is both phases for one file.

`ingest_file` works on one file, as DuckDB SQL over the whole file (no Python loop per record):
1. path safety, sha256, skip when the sha256 is already in raw.ingest_files (exactly once);
2. lines with exact line numbers: `read_text` + `string_split` + `generate_subscripts`; BOM and a
   trailing CR stripped; blank lines are not records. Gzip is decompressed in Python, chunk by
   chunk, and a file past a resource limit (ingest.limits: decompressed size, expansion ratio,
   line length, JSON depth) is rejected whole; a file that is not UTF-8 falls back to Python
   splitting bytes, and undecodable lines become `invalid_encoding`;
3. the source reader (ingest.sources.*) turns lines into candidate records with payloads and its
   own checks; then, for all sources alike: patient keys (identity), unknown patient, future time,
   before birth, deterministic event ids, duplicates in the file, duplicates of / conflicts with
   events already in the log;
4. ONE transaction writes the file's events, quarantine rows, new patient keys and its
   raw.ingest_files row, after checking records_read = accepted + quarantined + duplicate + ignored.
   A crash anywhere before COMMIT leaves nothing of the file; the next run ingests it again.
"""
from __future__ import annotations

from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor

import codecs
import dataclasses
import datetime as dt
import gzip
import hashlib
import logging
import os
import tempfile
import threading
import time
import uuid
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import duckdb

from ingest import clocks, crashpoints, identity, knowledge, landing, manifest, parking
from ingest.limits import DEFAULT as DEFAULT_LIMITS
from ingest.limits import LimitExceeded, Limits
from ingest.schema import ensure_event_log
from ingest.reasons import FILE_REASONS, RECORD_REASONS
from ingest.sources import MACROS as COMMON_MACROS
from ingest.sources import Context, dosing, fhir, notes, sql_str

log = logging.getLogger(__name__)

READERS = {"ehr": fhir, "dosing": dosing, "notes": notes}
STAGE_AHEAD = 2      # files read and parsed ahead of the one committing, each on its own connection
_TEMP_TABLES = ("_kap_lines_raw", "_kap_badenc", "_kap_rec", "_kap_out", notes.TAG_TABLE, "_kap_conflicts",
                "_kap_merges")


class ReconciliationError(RuntimeError):
    """records_read != accepted + quarantined + duplicate + ignored for a file."""


@dataclass
class FileResult:
    path: str
    source: str
    status: str                      # ingested | rejected | skipped | unstable | failed
    file_id: str | None = None
    reject_reason: str | None = None
    detail: str | None = None
    records_read: int = 0
    records_accepted: int = 0
    records_quarantined: int = 0
    records_duplicate: int = 0
    records_ignored: int = 0
    events_added: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


COUNT_FIELDS = ("records_read", "records_accepted", "records_quarantined", "records_duplicate",
                "records_ignored", "events_added")


@dataclass
class IngestSummary:
    run_id: str
    landing_dir: str
    ingested_at: str
    files: list[FileResult] = field(default_factory=list)
    ignored_paths: list[str] = field(default_factory=list)
    seconds: float = 0.0
    manifests: list[dict] = field(default_factory=list)        # Bulk Data manifests recorded this run
    knowledge_cutoff: dict = field(default_factory=dict)       # "now" recorded for this run
    parked: dict = field(default_factory=dict)                 # parked records released / still open

    @property
    def totals(self) -> dict[str, int]:
        t = {k: sum(getattr(f, k) for f in self.files) for k in COUNT_FIELDS}
        for status in ("ingested", "rejected", "skipped", "unstable", "failed"):
            t[f"files_{status}"] = sum(1 for f in self.files if f.status == status)
        return t

    @property
    def ok(self) -> bool:
        return not any(f.status == "failed" for f in self.files)

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "landing_dir": self.landing_dir, "ingested_at": self.ingested_at,
                "seconds": round(self.seconds, 3), "totals": self.totals,
                "files": [f.to_dict() for f in self.files], "ignored_paths": self.ignored_paths,
                "manifests": self.manifests, "parked": self.parked,
                "knowledge_cutoff": {k: (v.isoformat() + "Z" if isinstance(v, dt.datetime) else v)
                                     for k, v in self.knowledge_cutoff.items()}}


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def ingest_landing(con: duckdb.DuckDBPyConnection, landing_dir: Path, run_id: str | None = None,
                   progress: Callable[[str], None] | None = None,
                   sources: Collection[str] | None = None,
                   time_zones: Mapping[str, str] | None = None,
                   default_time_zone: str | None = None,
                   limits: Limits | None = None,
                   on_file: Callable[[int, int, FileResult | None], None] | None = None) -> IngestSummary:
    """Ingest every new file of a landing folder, each exactly once, each in its own transaction.

    con: a read-write connection to the warehouse, held by the caller's single writer (the
    event-log tables are created on it when missing). sources: only these (ehr, dosing, notes);
    None = all. Dosing logs and notes name patients by MRN, so ingest 'ehr' before the others
    (the Airflow DAG orders its per-source tasks so). time_zones ({clinic_id: IANA zone}) and
    default_time_zone: where a clinical time sent without a UTC offset is read (ingest/clocks.py).
    limits: the resource limits per file (ingest.limits; None = the defaults); a file over one is
    rejected and the next one goes on.
    progress: one message per file (default: the log). on_file(done, total, result): called with
    (0, total, None) once the new files are known, then after each file - for a progress bar.
    """
    zones = (tuple(sorted((time_zones or {}).items())), default_time_zone)
    landing_dir = Path(landing_dir).absolute()
    run_id = run_id or f"ingest__{uuid.uuid4().hex[:12]}"
    ingested_at = _utcnow()
    say = progress or (lambda msg: log.info(msg))
    started = time.monotonic()
    found = landing.discover(landing_dir)
    summary = IngestSummary(run_id=run_id, landing_dir=str(landing_dir),
                            ingested_at=ingested_at.isoformat() + "Z", ignored_paths=found.ignored)
    todo = [lf for lf in found.files if sources is None or lf.source in sources]
    ensure_event_log(con)
    # Bulk Data manifests: read before the files, whose meta-less records take their transactionTime
    manifests = manifest.read_all(landing_dir, ingested_at) if sources is None or "ehr" in sources else []
    export_times = manifest.transaction_times(manifests, landing_dir)
    manifest_paths = {p.relative_to(landing_dir).as_posix() for p in manifest.find(landing_dir)}
    summary.ignored_paths = [p for p in summary.ignored_paths if p not in manifest_paths]
    if on_file is not None:
        on_file(0, len(todo), None)
    with ThreadPoolExecutor(STAGE_AHEAD, thread_name_prefix="kap-stage") as pool:
        # Connections take turns: while one commits file i, the others read and parse files
        # i+1 .. i+STAGE_AHEAD (DuckDB releases the GIL), so both cores work. Commits stay in
        # file order; a staged file holds only its own temp tables.
        cons = [con.cursor() for _ in range(STAGE_AHEAD + 1)]

        def stage(i: int):
            lf = todo[i]
            return pool.submit(_stage, cons[i % len(cons)], landing_dir, lf.path, lf.source,
                               file_stamp(ingested_at, i, len(todo)), lf.problem, zones, limits,
                               export_times.get(lf.path.parent.absolute()) if lf.source == "ehr" else None)

        pending = [stage(i) for i in range(min(STAGE_AHEAD, len(todo)))]
        for i, lf in enumerate(todo):
            try:
                staged = pending.pop(0).result()
            except Exception as exc:
                staged = exc
            if i + STAGE_AHEAD < len(todo):      # on the connection file i-1 has finished with
                pending.append(stage(i + STAGE_AHEAD))
            try:
                if isinstance(staged, Exception):
                    raise staged
                result = _commit(staged, run_id, file_stamp(ingested_at, i, len(todo)))
            except Exception as exc:  # one bad file must not stop the others; it is retried
                log.exception("ingest of %s failed", lf.rel_path)
                result = FileResult(path=lf.rel_path, source=lf.source, status="failed",
                                    detail=f"{type(exc).__name__}: {exc}"[:500])
            summary.files.append(result)
            crashpoints.reached("ingest.between_files", when=result.status == "ingested")
            say(f"{result.source:6} {result.status:8} {result.path}: read {result.records_read}, "
                f"accepted {result.records_accepted}, quarantined {result.records_quarantined}, "
                f"duplicate {result.records_duplicate}, ignored {result.records_ignored}"
                + (f" ({result.reject_reason})" if result.reject_reason else ""))
            if on_file is not None:
                on_file(i + 1, len(todo), result)
        for c in cons:
            c.close()
    _after_files(con, summary, manifests, run_id, ingested_at)
    summary.seconds = time.monotonic() - started
    return summary


def file_stamp(run_started_at: dt.datetime, i: int, n: int) -> dt.datetime:
    """The ingest time of the run's i-th file of n: the run's start minus (n - 1 - i) microseconds.

    Files of one run commit one after another, and their ingest times keep that order, so the later
    of two versions with the same knowledge time (one resource without meta in two files of one
    drop: both take the drop's transactionTime) is the later file's, deterministically
    (stg_raw__current_events orders by recorded_at, then ingested_at). The last file's time is the
    run's start, so no ingest time of a run is later than its start."""
    return run_started_at - dt.timedelta(microseconds=n - 1 - i)


def _after_files(con, summary: IngestSummary, manifests: list, run_id: str, ingested_at) -> None:
    """One transaction after the run's files: new manifests recorded, parked records re-evaluated
    against the log, and the run's knowledge cutoff ("now") recorded."""
    con.execute("BEGIN TRANSACTION")
    try:
        new = manifest.record(con, manifests, run_id, ingested_at)
        summary.manifests = [m.to_dict() for m in new]
        summary.parked = parking.release(con, run_id, ingested_at)
        summary.knowledge_cutoff = knowledge.record_cutoff(con, run_id, ingested_at)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


_MACROS_TAG = hashlib.sha256((COMMON_MACROS + identity.RESOLVE_MACROS + fhir.MACROS).encode()).hexdigest()[:16]


def prepare(con: duckdb.DuckDBPyConnection) -> None:
    """Session settings and SQL macros the readers use (idempotent; the macros are created once
    per connection, recognised by a tag macro holding a hash of their text)."""
    con.execute("SET TimeZone = 'UTC'")
    try:
        if con.execute("SELECT kap_macros_tag()").fetchone()[0] == _MACROS_TAG:
            return
    except duckdb.Error:
        pass
    con.execute(COMMON_MACROS)
    con.execute(identity.RESOLVE_MACROS)
    con.execute(fhir.MACROS)
    con.execute(f"CREATE OR REPLACE TEMP MACRO kap_macros_tag() AS '{_MACROS_TAG}'")


def _file_types(source: str, path: Path) -> tuple[str, ...] | None:
    if source != "ehr":
        return None
    return fhir.file_resource_types(path.name)


def _drop_temps(con) -> None:
    con.execute("DROP VIEW IF EXISTS _kap_lines")
    for t in _TEMP_TABLES:
        con.execute(f"DROP TABLE IF EXISTS {t}")


@dataclass
class _Staged:
    """A file read and parsed (steps 1-3 up to the reader's records), waiting for its commit.

    `reject` set: a file-level rejection to record. `result.status` 'unstable'/'skipped' with no
    reject: nothing to write. Otherwise the connection `con` holds the file's temp tables."""
    con: object
    result: FileResult
    started: float
    sha: str | None = None
    size: int | None = None
    reject: tuple[str, str] | None = None
    ctx: Context | None = None
    bad_lines: list = field(default_factory=list)


def ingest_file(con, landing_dir: Path, path: Path, source: str, run_id: str | None, ingested_at,
                problem: str | None = None, limits: Limits | None = None, known_at=None) -> FileResult:
    """Ingest one landing file (see the module docstring). Raises on unexpected errors, after
    rolling back everything of this file. known_at: knowledge time of records without their own
    (the drop's manifest transactionTime; None = the ingest time)."""
    return _commit(_stage(con, landing_dir, path, source, ingested_at, problem, limits=limits, known_at=known_at),
                   run_id, ingested_at)


def _stage(con, landing_dir: Path, path: Path, source: str, ingested_at,
           problem: str | None = None, zones: tuple = ((), None),
           limits: Limits | None = None, known_at=None) -> _Staged:
    """Steps 1-3 without writing the warehouse: safety, sha256, lines, the reader's records (in
    temp tables of `con`). Runs on its own connection while the previous file commits."""
    started = time.monotonic()
    landing_dir = Path(landing_dir).absolute()
    path = Path(path)
    if not path.is_absolute():
        path = landing_dir / path if (landing_dir / path).exists() else path.absolute()
    ingested_at = _naive_utc(ingested_at)
    try:
        rel = path.relative_to(landing_dir).as_posix()
    except ValueError:
        rel = str(path)
    st = _Staged(con=con, result=FileResult(path=rel, source=source, status="ingested"), started=started)
    result = st.result
    prepare(con)
    _drop_temps(con)

    def reject(reason: str, detail: str, sha: str | None = None, size: int | None = None) -> _Staged:
        st.reject, st.sha, st.size = (reason, detail), sha or result.file_id, size
        return st

    def unstable(detail: str) -> _Staged:
        result.status, result.reject_reason, result.detail = "unstable", "unstable_file", detail
        return st

    # 1. safety and identity of the file
    root = landing_dir.resolve()
    if problem == "outside_landing" or not landing._inside(path, root) or ".." in Path(rel).parts:
        result.file_id = landing.path_id(rel)
        return reject("outside_landing", "resolves outside the landing folder")
    try:
        fh = landing.hash_file(path)
    except landing.UnstableFile as exc:
        return unstable(str(exc))
    except OSError as exc:
        result.file_id = landing.path_id(rel)
        return reject("unreadable", type(exc).__name__)
    result.file_id, st.sha, st.size = fh.sha256, fh.sha256, fh.size
    if _known(con, fh.sha256):
        return _skipped(st)
    if fh.size == 0:
        return reject("empty_file", "0 bytes", fh.sha256, 0)
    gz = path.name.endswith(".gz")
    if landing.is_gzip(fh.head) and not gz:
        return reject("compressed_without_extension", "gzip magic bytes", fh.sha256, fh.size)
    limits = limits or DEFAULT_LIMITS
    if not gz and fh.size > limits.max_decompressed_bytes:
        return reject("file_too_large", f"{fh.size} bytes, limit {limits.max_decompressed_bytes}",
                      fh.sha256, fh.size)

    try:
        # 2. lines, within the resource limits
        try:
            bad_lines = _load_lines(con, path, gz, limits, fh.size)
            _check_lines(con, source, limits)
        except _Unreadable as exc:
            _drop_temps(con)
            return reject("unreadable", str(exc), fh.sha256, fh.size)
        except LimitExceeded as exc:
            _drop_temps(con)
            return reject(exc.reason, exc.detail, fh.sha256, fh.size)
        try:
            landing.check_stable(path, fh.stat)
        except landing.UnstableFile as exc:
            return unstable(str(exc))

        header = None
        con.execute(_LINES_VIEW.format(after=0))
        if source == "dosing":
            first = con.execute("SELECT line_number, line FROM _kap_lines ORDER BY line_number LIMIT 1").fetchone()
            if first is None:
                return reject("empty_file", "no lines", fh.sha256, fh.size)
            header = dosing.parse_header(first[1])
            missing = dosing.missing_columns(header)
            if missing:
                return reject("missing_columns", ", ".join(missing), fh.sha256, fh.size)
            con.execute(_LINES_VIEW.format(after=int(first[0])))
            bad_lines = [b for b in bad_lines if b[0] > first[0]]
        st.ctx = Context(file_id=fh.sha256, source=source, ingested_at=ingested_at, header=header,
                         resource_types=_file_types(source, path), time_zones=zones[0],
                         default_time_zone=zones[1], known_at=known_at)
        st.bad_lines = bad_lines
        # 3. the reader's candidate records (a reader may first derive what SQL cannot: note tags)
        prepare_lines = getattr(READERS[source], "prepare_lines", None)
        if prepare_lines is not None:
            prepare_lines(con)
        _create_records(con, READERS[source], st.ctx, ingested_at)
    except BaseException:
        _drop_temps(con)
        raise
    return st


def _commit(st: _Staged, run_id: str | None, ingested_at) -> FileResult:
    """Step 4: write a staged file in ONE transaction (or its file-level rejection)."""
    con, result = st.con, st.result
    ingested_at = _naive_utc(ingested_at)

    def finish(r: FileResult) -> FileResult:
        r.seconds = round(time.monotonic() - st.started, 3)
        return r

    try:
        if st.reject is not None:
            reason, detail = st.reject
            return finish(_reject(con, result, reason, detail, run_id, ingested_at, st.sha, st.size))
        if st.ctx is None:                       # unstable or already ingested: nothing to write
            return finish(result)
        if _known(con, st.sha):                  # the same bytes under another name, just committed
            return finish(_skipped(st).result)
        con.execute("BEGIN TRANSACTION")
        try:
            counts = _process(con, READERS[st.ctx.source], st.ctx, st.bad_lines, ingested_at)
            result.records_read = counts.pop("records") + len(st.bad_lines)
            if result.records_read == 0:
                con.execute("ROLLBACK")
                return finish(_reject(con, result, "empty_file", "no records", run_id, ingested_at,
                                      st.sha, st.size))
            for k, v in counts.items():
                setattr(result, k, v)
            _check_identity(result)
            parking.park(con, st.ctx, run_id, ingested_at)
            _write_file_row(con, result, "ingested", None, run_id, ingested_at, st.sha, st.size)
            crashpoints.reached("ingest.mid_file")
            con.execute("COMMIT")
        except BaseException:
            try:
                con.execute("ROLLBACK")
            except duckdb.Error:      # already rolled back (empty file path)
                pass
            raise
    finally:
        _drop_temps(con)
    return finish(result)


def _naive_utc(ingested_at):
    if isinstance(ingested_at, dt.datetime) and ingested_at.tzinfo is not None:
        return ingested_at.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return ingested_at


def _known(con, sha: str) -> bool:
    return con.execute("SELECT 1 FROM raw.ingest_files WHERE file_id = ?", [sha]).fetchone() is not None


def _skipped(st: _Staged) -> _Staged:
    st.result.status, st.result.detail = "skipped", "already ingested (same sha256)"
    st.ctx = None
    return st


class _Unreadable(Exception):
    pass


_RECORDING = "kap_record_utf8_errors"
_RECORDED = threading.local()        # files are staged in several threads


def _recording_log() -> list[int]:
    if not hasattr(_RECORDED, "log"):
        _RECORDED.log = []
    return _RECORDED.log


def _record_error(exc: UnicodeDecodeError):
    """Codec error handler: remember where undecodable bytes are, substitute U+0000 meanwhile."""
    _recording_log().append(exc.start)
    return ("\x00", exc.end)


codecs.register_error(_RECORDING, _record_error)

# The file's lines, exactly numbered. Materialised raw (splitting is fast; any expression on the
# unnested strings in the same statement is not), then cleaned in a view the readers scan once:
# a UTF-8 BOM on line 1 and a trailing CR are stripped, blank lines are not records.
_LINES_SQL = """
CREATE OR REPLACE TEMP TABLE _kap_lines_raw AS
SELECT generate_subscripts(parts, 1) AS n, unnest(parts) AS l
FROM (SELECT string_split(content, chr(10)) AS parts FROM {src})
"""
_LINES_VIEW = r"""
CREATE OR REPLACE TEMP VIEW _kap_lines AS
SELECT n AS line_number,
       CASE WHEN n = 1 THEN regexp_replace(l, '^\x{{FEFF}}+|\r$', '', 'g')
            WHEN ends_with(l, chr(13)) THEN left(l, -1) ELSE l END AS line
FROM _kap_lines_raw
WHERE n > {after} AND NOT regexp_matches(l, '^[\s\x{{FEFF}}]*$')
"""
# (trim/rtrim scan every character of a line and cost ~5 us per line; the regexes above stop at the
# first character that is not blank, and ends_with looks at the last byte only.)


def _load_lines(con, path: Path, gz: bool, limits: Limits = DEFAULT_LIMITS,
                compressed_size: int | None = None) -> list[tuple[int, str]]:
    """Fill _kap_lines; return [(line_number, text)] of lines that are not valid UTF-8.

    The common case is all SQL (`read_text`). A gzip file is first decompressed in chunks into a
    private temporary file, counting bytes as they come: past the limits (ingest.limits) the stream
    stops and LimitExceeded is raised, so a bomb never expands in memory or on disk. Files with
    undecodable bytes take the fallback: the bytes are checked in line-aligned chunks (C-speed
    decoding; the error handler sees only bad bytes), each line holding a bad byte is reported and
    overwritten with spaces in place (a blank line is not a record), and DuckDB reads the cleaned
    bytes from a temporary file. Memory stays about one copy of the file (no Python string of the
    whole file, no list of lines).
    """
    plain = None
    try:
        if gz:
            if compressed_size is None:
                compressed_size = os.stat(path).st_size
            plain = _gunzip_within_limits(path, limits, compressed_size)
        if plain is not None or not any(c in str(path) for c in "*?[]{}"):
            try:
                con.execute(_LINES_SQL.format(src="read_text(?)"), [plain or str(path)])
                return []
            except duckdb.Error as exc:
                log.info("read_text failed on %s (%s): decoding in Python", path, exc)
        try:
            data = bytearray(landing.read_bytes(plain or path, False))
        except (OSError, EOFError, ValueError) as exc:
            raise _Unreadable(f"{type(exc).__name__}: {exc}") from None
    finally:
        if plain is not None:
            os.unlink(plain)
    bad = _blank_undecodable_lines(data)
    fd, tmp = tempfile.mkstemp(prefix="kap-lines-", suffix=".txt")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        del data
        con.execute(_LINES_SQL.format(src="read_text(?)"), [tmp])
    finally:
        os.unlink(tmp)
    return bad


def _gunzip_within_limits(path: Path, limits: Limits, compressed_size: int) -> str:
    """Decompress a gzip file chunk by chunk into a new private temporary file (its path is
    returned; the caller removes it). Raises LimitExceeded as soon as the decompressed bytes pass
    the allowed size, _Unreadable when the gzip data is broken."""
    allowed, reason = limits.allowed_decompressed(compressed_size)
    fd, tmp = tempfile.mkstemp(prefix="kap-gunzip-", suffix=".txt")
    total = 0
    try:
        with os.fdopen(fd, "wb") as out, gzip.open(path, "rb") as src:
            while True:
                try:
                    block = src.read(_GUNZIP_CHUNK)
                except (OSError, EOFError, ValueError, zlib.error) as exc:
                    raise _Unreadable(f"{type(exc).__name__}: {exc}") from None
                if not block:
                    break
                total += len(block)
                if total > allowed:
                    raise LimitExceeded(reason, (
                        f"expands past {allowed} bytes ({compressed_size} compressed; limits: "
                        f"{limits.max_decompressed_bytes} bytes, ratio {limits.max_expansion_ratio:g})"))
                out.write(block)
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


_GUNZIP_CHUNK = 1 << 20


def _check_lines(con, source: str, limits: Limits) -> None:
    """Raise LimitExceeded when a line of the loaded file is too long or, in a JSON source, nested
    too deep (DuckDB SQL, no Python per line). Depth is the deepest run of open brackets once JSON
    strings are removed. It is computed only where it can pass the limit: lines with more opening
    brackets than the limit, whose bracket skeleton is still not empty after `_PEEL` rounds of
    removing innermost pairs ("[]", "{}"): an empty skeleton after k rounds is nested at most k deep.
    Most FHIR lines have dozens of brackets and a depth under 10, so nearly every line stops there.
    """
    row = con.execute("SELECT n, strlen(l) FROM _kap_lines_raw ORDER BY strlen(l) DESC, n LIMIT 1").fetchone()
    if row and row[1] > limits.max_line_bytes:
        raise LimitExceeded("line_too_long",
                            f"line {row[0]} has {row[1]} bytes, limit {limits.max_line_bytes}")
    if source not in _JSON_SOURCES:
        return
    d = int(limits.max_json_depth)
    peeled = "b"
    for _ in range(max(0, min(_PEEL, d))):
        peeled = f"regexp_replace({peeled}, '\\[\\]|\\{{\\}}', '', 'g')"
    # The skeleton is computed in a subquery of its own: filters on the same level as the
    # list_reduce were evaluated after it, for every line (1.2-1.8 s per 50k-line file).
    row = con.execute(f"""
        SELECT n, depth FROM (
            SELECT n, list_reduce(string_split(b, ''),
                lambda acc, x: CASE WHEN x IN ('[', '{{')
                                    THEN {{'c': acc.c + 1, 'm': greatest(acc.m, acc.c + 1)}}
                                    ELSE {{'c': acc.c - 1, 'm': acc.m}} END,
                {{'c': 0, 'm': 0}}).m AS depth
            FROM (
                SELECT n, b FROM (
                    SELECT n, regexp_replace(regexp_replace(l, '"(?:[^"\\\\]|\\\\.)*"', '', 'g'),
                                             '[^\\[\\]{{}}]', '', 'g') AS b
                    FROM _kap_lines_raw
                    WHERE strlen(l) - strlen(replace(replace(l, '{{', ''), '[', '')) > {d})
                WHERE {peeled} <> '')
        ) WHERE depth > {d} ORDER BY n LIMIT 1""").fetchone()
    if row:
        raise LimitExceeded("nesting_too_deep", f"line {row[0]} is nested {row[1]} levels deep, limit {d}")


_PEEL = 8


_JSON_SOURCES = ("ehr", "notes")


_CHUNK = 16 << 20


def _decode_errors(buf) -> list[int]:
    """Offsets (in buf) where UTF-8 decoding fails."""
    codecs.utf_8_decode(buf, _RECORDING, True)
    errors = _recording_log()
    _RECORDED.log = []
    return errors


def _blank_undecodable_lines(data: bytearray) -> list[tuple[int, str]]:
    """Find lines with bytes that are not UTF-8; return [(line_number, shown text)] and overwrite
    those lines with spaces in `data`. Shown text: U+FFFD for each bad sequence, trailing CR cut."""
    view = memoryview(data)
    errors: list[int] = []
    pos, n = 0, len(data)
    while pos < n:                     # line-aligned chunks: a UTF-8 sequence never spans b"\n"
        end = data.find(b"\n", min(pos + _CHUNK, n))
        end = n if end < 0 else end + 1
        errors += [pos + e for e in _decode_errors(view[pos:end])]
        pos = end
    bad: list[tuple[int, str]] = []
    line_no, last, done_line = 1, 0, 0
    for e in errors:                   # count newlines incrementally: one pass over the data
        line_no += data.count(b"\n", last, e)
        last = e
        if line_no == done_line:
            continue
        done_line = line_no
        a = data.rfind(b"\n", 0, e) + 1
        b = data.find(b"\n", e)
        b = n if b < 0 else b
        shown = codecs.utf_8_decode(view[a:b], _RECORDING, True)[0]
        _RECORDED.log = []
        shown = shown.replace("\x00", "\ufffd").rstrip("\r")
        if shown.strip():
            bad.append((line_no, shown))
        data[a:b] = b" " * (b - a)
    view.release()
    return bad


def _records_statement(reader, ctx: Context, ingested_at) -> tuple[str, dict | None]:
    """The reader's SELECT as a CREATE TABLE statement. The run's timestamp goes in as a literal:
    a parameter makes DuckDB bind the (large) statement twice (~0.1 s per file)."""
    # the event id (deterministic: source, record id, version) is computed here, in the staging
    # phase that runs in parallel, rather than in the commit that files take one at a time
    sql = (f"CREATE OR REPLACE TEMP TABLE _kap_rec AS SELECT *, "
           f"sha256({sql_str(ctx.source)} || '|' || source_record_id || '|' || version_key) AS event_id "
           f"FROM ({reader.records_sql(ctx)})")
    known_at = _naive_utc(ctx.known_at)
    sql = sql.replace("$known_at", "$ingested_at" if not isinstance(known_at, dt.datetime) else
                      f"TIMESTAMP '{known_at.isoformat(sep=' ', timespec='microseconds')}'")
    return _inline_ingested_at(sql, ingested_at)


def _inline_ingested_at(sql: str, ingested_at) -> tuple[str, dict | None]:
    """(statement, parameters) with `$ingested_at` as a TIMESTAMP literal when it is a datetime."""
    if "$ingested_at" not in sql:
        return sql, None
    if isinstance(ingested_at, dt.datetime):
        literal = f"TIMESTAMP '{ingested_at.replace(tzinfo=None).isoformat(sep=' ', timespec='microseconds')}'"
        return sql.replace("$ingested_at", literal), None
    return sql, {"ingested_at": ingested_at}


def _create_records(con, reader, ctx: Context, ingested_at) -> None:
    """Fill _kap_rec. FHIR files are read with SQL built for the file's resource type (from its
    name); rows of other read types come back as '__retry__' and the file is read again with SQL
    for all the types found, so the records are the same as with the all-types statement."""
    con.execute(*_records_statement(reader, ctx, ingested_at))
    if ctx.source != "ehr" or ctx.resource_types is None:
        return
    found = con.execute("SELECT list(DISTINCT detail ORDER BY detail) FROM _kap_rec "
                        "WHERE reason = '__retry__'").fetchone()[0]
    if found:
        ctx = dataclasses.replace(ctx, resource_types=tuple(sorted(set(ctx.resource_types) | set(found))))
        con.execute(*_records_statement(reader, ctx, ingested_at))
        assert not con.execute("SELECT 1 FROM _kap_rec WHERE reason = '__retry__' LIMIT 1").fetchone()


#: Every identifier a record carries - its own id (the part after `Type/` of an EHR record), the
#: patient reference or MRN, and every payload field named `*_id` - must match this (documented in
#: docs/inputs.md): a letter or digit, then letters, digits and `.-_:`, at most 64 characters. A
#: record with another is quarantined as `invalid_identifier`: such an id could carry a
#: spreadsheet formula (`=HYPERLINK(...)`), a path or markup into the marts.
ID_PATTERN = "[A-Za-z0-9][A-Za-z0-9._:-]{0,63}"
_BAD_ID_FIELD = f"""CASE WHEN r.ignored OR r.reason IS NOT NULL THEN NULL
    WHEN r.source_record_id IS NOT NULL
         AND NOT regexp_full_match(regexp_replace(r.source_record_id, '^[A-Za-z]+/', ''), '{ID_PATTERN}')
        THEN 'record id'
    WHEN r.ref_value IS NOT NULL AND NOT regexp_full_match(r.ref_value, '{ID_PATTERN}')
        THEN 'patient reference'
    ELSE list_first(list_filter(json_keys(r.payload), lambda k: suffix(k, '_id')
        AND NOT regexp_full_match(coalesce(json_extract_string(r.payload, '$."' || k || '"'), 'x'),
                                  '{ID_PATTERN}')))
END"""


def _process(con, reader, ctx: Context, bad_lines: list[tuple[int, str]], ingested_at) -> dict[str, int]:
    identity.find_conflicts(con, "_kap_rec" if ctx.source == "ehr" else None)
    if ctx.source == "ehr":
        identity.assign_keys(
            con, "(SELECT key_fhir_id AS fhir_id, "
                 "CASE WHEN line_number IN (SELECT line_number FROM _kap_merges) THEN NULL ELSE key_mrn END AS mrn "
                 "FROM _kap_rec WHERE reason IS NULL AND NOT ignored AND key_fhir_id IS NOT NULL "
                 "AND line_number NOT IN (SELECT line_number FROM _kap_conflicts))",
            ctx.file_id, ingested_at)
    clocks.apply_local_clocks(con, dict(ctx.time_zones), ctx.default_time_zone)

    # Common checks and dedup. Wide columns (the line) stay in _kap_rec; duplicates are found with
    # a GROUP BY on the event id and one semi-join probe of the log, not with window functions.
    # (The run's timestamp is inlined: parameters make DuckDB bind it twice.)
    con.execute(*_inline_ingested_at("""
        CREATE OR REPLACE TEMP TABLE _kap_out AS
        WITH r AS (
            SELECT r.*, k.patient_key, k.file_id AS key_file_id, $bad_id_field AS bad_id_field,
                   lv.last_line, lv.last_event, ic.detail AS identity_conflict
            FROM _kap_rec r
            LEFT JOIN restricted.patient_keys k ON k.id_system = r.ref_kind AND k.id_value = r.ref_value
            LEFT JOIN (
                -- versions without meta (version_key 'h:' = content hash): the last line wins
                SELECT source_record_id, max(line_number) AS last_line,
                       arg_max(event_id, line_number) AS last_event
                FROM _kap_rec WHERE starts_with(version_key, 'h:') AND reason IS NULL AND NOT ignored
                GROUP BY source_record_id
            ) lv ON lv.source_record_id = r.source_record_id AND starts_with(r.version_key, 'h:')
            LEFT JOIN _kap_conflicts ic ON ic.line_number = r.line_number
        ), births AS (
            SELECT patient_key, arg_max(birth_year, recorded_at) AS birth_year FROM (
                SELECT patient_key, TRY_CAST(payload->>'$.birth_year' AS INTEGER) AS birth_year, recorded_at
                FROM raw.events
                WHERE event_type IN ('patient_registered', 'patient_updated')
                  AND patient_key IN (SELECT patient_key FROM r WHERE check_time)  -- only who is checked
                UNION ALL
                SELECT patient_key, birth_year, recorded_at FROM r
                WHERE birth_year IS NOT NULL AND reason IS NULL AND patient_key IS NOT NULL
            ) GROUP BY patient_key
        ), v AS (
            SELECT r.*,
                CASE WHEN r.ignored THEN NULL
                     WHEN r.reason IS NOT NULL THEN r.reason
                     WHEN r.bad_id_field IS NOT NULL THEN 'invalid_identifier'
                     WHEN r.check_time AND r.occurred_at > $ingested_at + INTERVAL 1 DAY THEN 'future_time'
                     WHEN r.recorded_at > $ingested_at + $skew THEN 'recorded_after_ingest'
                     WHEN r.line_number < r.last_line AND r.event_id <> r.last_event THEN 'superseded_in_file'
                     WHEN r.identity_conflict IS NOT NULL THEN 'identity_conflict'
                     WHEN r.needs_patient AND r.patient_key IS NULL THEN 'unknown_patient'
                     WHEN $check_clinic AND r.event_type <> 'record_retracted' AND kc.clinic_id IS NULL
                         THEN 'unknown_clinic'
                     WHEN r.check_time AND year(r.occurred_at) < b.birth_year THEN 'before_birth'
                END AS reason2,
                CASE WHEN r.ignored THEN NULL
                     WHEN r.reason IS NOT NULL THEN r.detail
                     WHEN r.bad_id_field IS NOT NULL
                         THEN r.bad_id_field || ' does not match the identifier pattern ' || $id_pattern
                     WHEN r.check_time AND r.occurred_at > $ingested_at + INTERVAL 1 DAY
                         THEN 'occurred_at ' || kap_iso(r.occurred_at) || ' is after ingestion + 1 day'
                     WHEN r.recorded_at > $ingested_at + $skew
                         THEN 'recorded_at ' || kap_iso(r.recorded_at) || ' is after the file was ingested ('
                              || kap_iso($ingested_at) || ') + $skew_text'
                     WHEN r.line_number < r.last_line AND r.event_id <> r.last_event
                         THEN 'no meta.versionId/lastUpdated: line ' || r.last_line || ' of the same resource is later and wins'
                     WHEN r.identity_conflict IS NOT NULL THEN r.identity_conflict
                     WHEN r.needs_patient AND r.patient_key IS NULL
                         THEN 'no patient key for ' || coalesce(r.ref_kind, 'unresolvable') || ' reference'
                     WHEN $check_clinic AND r.event_type <> 'record_retracted' AND kc.clinic_id IS NULL
                         THEN 'clinic_id ' || coalesce(r.payload->>'clinic_id', 'NULL') || ' is not a known clinic (yet)'
                     WHEN r.check_time AND year(r.occurred_at) < b.birth_year
                         THEN 'occurred in ' || year(r.occurred_at) || ', before birth year ' || b.birth_year
                END AS detail2
            FROM r LEFT JOIN births b USING (patient_key)
            LEFT JOIN ($known_clinics) kc ON kc.clinic_id = r.payload->>'clinic_id'
        ), firsts AS (
            SELECT event_id, min(line_number) AS first_line
            FROM v WHERE reason2 IS NULL AND NOT ignored GROUP BY event_id
        ), logged AS (
            SELECT e.event_id, e.payload::VARCHAR AS logged_payload
            FROM raw.events e SEMI JOIN firsts f ON e.event_id = f.event_id
        ), cmp AS (
            SELECT v.*, f.first_line,
                   lg.event_id IS NOT NULL AS in_log,
                   lg.logged_payload IS NOT DISTINCT FROM v.payload::VARCHAR AS same_payload
            FROM v
            LEFT JOIN firsts f ON f.event_id = v.event_id
            LEFT JOIN logged lg ON lg.event_id = v.event_id AND v.line_number = f.first_line
        )
        SELECT line_number, event_id, event_type, patient_key, key_file_id, ref_value, occurred_at,
            recorded_at, source_record_id, payload, ref_kind, key_fhir_id, key_mrn,
            CASE WHEN ignored THEN 'ignored'
                 WHEN reason2 IS NOT NULL OR line_number > first_line OR (in_log AND NOT same_payload)
                     THEN 'quarantined'
                 WHEN in_log THEN 'duplicate'
                 ELSE 'accepted' END AS outcome,
            CASE WHEN reason2 IS NOT NULL THEN reason2
                 WHEN line_number > first_line THEN 'duplicate_in_file'
                 WHEN in_log AND NOT same_payload THEN 'conflicting_duplicate' END AS reason_code,
            CASE WHEN reason2 IS NOT NULL THEN detail2
                 WHEN line_number > first_line THEN 'same record id and version as line ' || first_line
                 WHEN in_log AND NOT same_payload THEN 'event ' || event_id || ' already logged with other content'
            END AS detail
        FROM cmp
    """.replace("$bad_id_field", _BAD_ID_FIELD).replace("$id_pattern", sql_str(ID_PATTERN))
        .replace("$skew_text", str(knowledge.CLOCK_SKEW)).replace("$skew", knowledge.CLOCK_SKEW_SQL)
        .replace("$known_clinics", parking.known_clinics_sql(ctx.source))
        .replace("$check_clinic", "true" if ctx.source in parking.CLINIC_CHECKED_SOURCES else "false"), ingested_at))
    if ctx.source == "ehr":
        # patient_registered only for the first accepted version of a patient this file keyed
        con.execute("""
            UPDATE _kap_out SET event_type = 'patient_updated'
            WHERE event_type = 'patient_registered' AND outcome = 'accepted'
              AND (key_file_id IS DISTINCT FROM $file_id
                   OR line_number > (SELECT min(o.line_number) FROM _kap_out o
                                     WHERE o.event_type = 'patient_registered' AND o.outcome = 'accepted'
                                       AND o.ref_value = _kap_out.ref_value))
        """, {"file_id": ctx.file_id})

    _write_events(con, ctx, ingested_at)
    _write_quarantine(con, READERS[ctx.source], ctx, bad_lines, ingested_at)

    row = con.execute("""
        SELECT count(*), count(*) FILTER (outcome = 'accepted'), count(*) FILTER (outcome = 'quarantined'),
               count(*) FILTER (outcome = 'duplicate'), count(*) FILTER (outcome = 'ignored')
        FROM _kap_out""").fetchone()
    records, accepted, quarantined, duplicate, ignored = row
    return {"records": records, "records_accepted": accepted, "records_quarantined": quarantined + len(bad_lines),
            "records_duplicate": duplicate, "records_ignored": ignored, "events_added": accepted}


def _write_events(con, ctx: Context, ingested_at) -> None:
    con.execute("""
        INSERT INTO raw.events (event_id, event_type, patient_key, occurred_at, recorded_at, ingested_at,
                                source, file_id, source_record_id, payload)
        SELECT event_id, event_type, patient_key, occurred_at, recorded_at, ?, ?, ?, source_record_id, payload
        FROM _kap_out WHERE outcome = 'accepted' ORDER BY line_number
    """, [ingested_at, ctx.source, ctx.file_id])


def _write_quarantine(con, reader, ctx: Context, bad_lines, ingested_at) -> None:
    redact = reader.quarantine_sql(ctx)
    con.execute(f"""
        INSERT INTO raw.quarantine (file_id, line_number, reason_code, detail, raw_record, quarantined_at)
        SELECT ?, line_number, reason_code, detail, {redact}, ?
        FROM (SELECT o.line_number, o.reason_code, o.detail,
                     CASE WHEN r.n = 1 THEN regexp_replace(r.l, '^\\x{{FEFF}}+|\\r$', '', 'g')
                          WHEN ends_with(r.l, chr(13)) THEN left(r.l, -1) ELSE r.l END AS line
              FROM (SELECT * FROM _kap_out WHERE outcome = 'quarantined') o
              JOIN _kap_lines_raw r ON r.n = o.line_number)
        ORDER BY line_number
    """, [ctx.file_id, ingested_at])
    if bad_lines:
        con.execute("CREATE OR REPLACE TEMP TABLE _kap_badenc (line_number BIGINT, line VARCHAR)")
        con.executemany("INSERT INTO _kap_badenc VALUES (?, ?)", bad_lines)
        con.execute(f"""
            INSERT INTO raw.quarantine (file_id, line_number, reason_code, detail, raw_record, quarantined_at)
            SELECT ?, line_number, 'invalid_encoding', 'not valid UTF-8 (shown with U+FFFD replacements)',
                   {redact}, ?
            FROM _kap_badenc ORDER BY line_number
        """, [ctx.file_id, ingested_at])


def _check_identity(r: FileResult) -> None:
    total = r.records_accepted + r.records_quarantined + r.records_duplicate + r.records_ignored
    if r.records_read != total:
        raise ReconciliationError(
            f"{r.path}: read {r.records_read} != accepted {r.records_accepted} + quarantined "
            f"{r.records_quarantined} + duplicate {r.records_duplicate} + ignored {r.records_ignored}")


def _write_file_row(con, r: FileResult, status: str, reason: str | None, run_id, ingested_at,
                    sha: str, size: int | None) -> None:
    con.execute("""
        INSERT INTO raw.ingest_files (file_id, path, sha256, source, status, reject_reason, size_bytes,
            records_read, records_accepted, records_quarantined, records_duplicate, records_ignored,
            events_added, ingested_at, run_id)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    """, [r.file_id, r.path, sha, r.source, status, reason, size, r.records_read, r.records_accepted,
          r.records_quarantined, r.records_duplicate, r.records_ignored, r.events_added, ingested_at, run_id])


def _reject(con, r: FileResult, reason: str, detail: str, run_id, ingested_at, sha: str,
            size: int | None) -> FileResult:
    """A file-level rejection: recorded (status rejected, no records counted) so it is not retried."""
    assert reason in FILE_REASONS and reason != "unstable_file"
    r.status, r.reject_reason, r.detail = "rejected", reason, detail
    r.records_read = r.records_accepted = r.records_quarantined = 0
    r.records_duplicate = r.records_ignored = r.events_added = 0
    if con.execute("SELECT 1 FROM raw.ingest_files WHERE file_id = ?", [r.file_id]).fetchone():
        r.status = "skipped"
        return r
    _write_file_row(con, r, "rejected", reason, run_id, ingested_at, sha, size)
    return r


assert set(RECORD_REASONS) >= {"invalid_encoding", "duplicate_in_file", "conflicting_duplicate",
                               "unknown_patient", "future_time", "before_birth"}
