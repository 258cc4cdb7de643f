"""FHIR Bulk Data `$export` manifests beside the NDJSON files of an EHR drop.

File name: `manifest.json`, in the EHR drop folder it describes (`ehr/<drop>/manifest.json`, or
`ehr/manifest.json` for files directly in `ehr/`) - the JSON body a Bulk Data server returns from
its status endpoint when the export completes (docs/inputs.md, "Bulk Data manifest"). It is never
read as a FHIR resource file. Read fields:

- `transactionTime`: when the export was taken. Resources without `meta.lastUpdated` in the drop take
  it as their knowledge time, and it is the drop's contribution to "now" (ingest/knowledge.py). A
  transactionTime later than the ingest time plus the clock skew is not used (problem recorded);
- `request`: the export request URL, kept for the record;
- `output[]` (`type`, `url`, `count`): each listed file is looked up in the drop folder by the last
  path segment of its url; a file that is missing, or whose non-blank line count differs from
  `count`, is recorded (raw.export_manifest_files) and reported by the landing checks;
- `error[]`: OperationOutcome NDJSON files the server wrote for resources it could not export;
  their lines are counted and shown (the files themselves are ignored as a foreign type).

A manifest is recorded once (by sha256), in the ingest run that first sees it.
"""
from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import logging
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import duckdb

from ingest import knowledge
from ingest.limits import DEFAULT as DEFAULT_LIMITS

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
#: A manifest lists files; a few kB per hundred parts. Anything larger is not read.
MAX_MANIFEST_BYTES = 16 << 20
#: Bulk Data is younger than this; an earlier transactionTime (1970-01-01, 0001-01-01: defaults
#: of a broken exporter) would move "now" decades back.
EARLIEST_TRANSACTION_TIME = dt.datetime(2000, 1, 1)
#: Counts that fit the BIGINT columns; a larger "count" is not a count.
_MAX_COUNT = (1 << 63) - 1


@dataclass
class ListedFile:
    kind: str                       # output | error
    resource_type: str | None
    url: str | None
    path: str | None                # relative to the landing folder
    listed_count: int | None
    found_lines: int | None = None
    status: str = "ok"              # ok | missing | count_mismatch | errors_reported | unreadable


@dataclass
class Manifest:
    manifest_id: str
    path: str                       # relative to the landing folder
    drop_folder: str                # relative to the landing folder
    transaction_time: dt.datetime | None = None   # naive UTC
    request: str | None = None
    files: list[ListedFile] = field(default_factory=list)
    problem: str | None = None

    @property
    def usable_time(self) -> dt.datetime | None:
        """transactionTime when it can serve as knowledge time (set, and not after ingest)."""
        return self.transaction_time if self.problem is None else None

    def to_dict(self) -> dict:
        outputs = [f for f in self.files if f.kind == "output"]
        errors = [f for f in self.files if f.kind == "error"]
        return {"path": self.path, "transaction_time": _iso(self.transaction_time), "problem": self.problem,
                "outputs_listed": len(outputs),
                "outputs_missing": [f.path for f in outputs if f.status == "missing"],
                "outputs_count_mismatch": [f"{f.path}: listed {f.listed_count}, found {f.found_lines}"
                                           for f in outputs if f.status == "count_mismatch"],
                "errors_listed": len(errors),
                "error_records": sum(f.found_lines or 0 for f in errors)}


def _iso(t: dt.datetime | None) -> str | None:
    return None if t is None else t.isoformat() + "Z"


def find(landing_dir: Path) -> list[Path]:
    """The manifests of a landing folder's EHR drops, in path order."""
    ehr = Path(landing_dir) / "ehr"
    if not ehr.is_dir():
        return []
    found = [ehr / MANIFEST_NAME] + [d / MANIFEST_NAME for d in sorted(ehr.iterdir()) if d.is_dir()]
    return [p for p in found if p.is_file()]


def _parse_time(value) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        t = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:        # Bulk Data requires an instant; a bare local time is taken as UTC
        return t
    return t.astimezone(dt.timezone.utc).replace(tzinfo=None)


def _count_lines(path: Path) -> int | None:
    """Non-blank lines of an NDJSON file (gzip by name), counted by DuckDB or in C-speed chunks.
    None when a gzip file is corrupt or decompresses past the ingest limit (ingest.limits): the
    file itself is then rejected at ingest, and the manifest must not decompress it either."""
    if path.name.endswith(".gz"):
        return _count_gzip_lines(path)
    con = duckdb.connect()
    try:
        return con.execute(r"""
            SELECT count(*) FROM (SELECT unnest(string_split(content, chr(10))) AS l FROM read_text(?))
            WHERE NOT regexp_matches(l, '^[\s\x{FEFF}]*$')""", [str(path)]).fetchone()[0]
    except duckdb.Error:      # not UTF-8 throughout: count the bytes' lines instead
        pass
    finally:
        con.close()
    data = path.read_bytes()
    return sum(1 for line in data.split(b"\n") if line.strip(b" \t\r\xef\xbb\xbf"))


def _count_gzip_lines(path: Path) -> int | None:
    allowed, _ = DEFAULT_LIMITS.allowed_decompressed(path.stat().st_size)
    count, seen, tail = 0, 0, b""
    try:
        with gzip.open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                seen += len(chunk)
                if seen > allowed:
                    return None
                lines = (tail + chunk).split(b"\n")
                tail = lines.pop()
                count += sum(1 for line in lines if line.strip(b" \t\r\xef\xbb\xbf"))
    except (OSError, EOFError, zlib.error):
        return None
    return count + (1 if tail.strip(b" \t\r\xef\xbb\xbf") else 0)


def read(path: Path, landing_dir: Path, ingested_at: dt.datetime) -> Manifest:
    """Parse one manifest and check its listed files against the drop folder."""
    landing_dir = Path(landing_dir)
    rel = path.relative_to(landing_dir).as_posix()
    drop = path.parent
    if path.is_symlink():       # never read outside the landing folder, as for landing files
        return Manifest(manifest_id=hashlib.sha256(rel.encode()).hexdigest(), path=rel,
                        drop_folder=drop.relative_to(landing_dir).as_posix(),
                        problem="a symbolic link: not followed")
    size = path.stat().st_size
    if size > MAX_MANIFEST_BYTES:
        return Manifest(manifest_id=hashlib.sha256(f"{rel}|{size}".encode()).hexdigest(), path=rel,
                        drop_folder=drop.relative_to(landing_dir).as_posix(),
                        problem=f"{size} bytes, over the {MAX_MANIFEST_BYTES} bytes a manifest may have: not read")
    data = path.read_bytes()
    m = Manifest(manifest_id=hashlib.sha256(data).hexdigest(), path=rel,
                 drop_folder=drop.relative_to(landing_dir).as_posix())
    try:
        body = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        m.problem = f"not valid JSON: {type(exc).__name__}"
        return m
    if not isinstance(body, dict):
        m.problem = "not a JSON object"
        return m
    m.transaction_time = _parse_time(body.get("transactionTime"))
    m.request = body.get("request") if isinstance(body.get("request"), str) else None
    if m.transaction_time is None:
        m.problem = "transactionTime missing or not an instant"
    elif m.transaction_time < EARLIEST_TRANSACTION_TIME:
        m.problem = (f"transactionTime {_iso(m.transaction_time)} is before "
                     f"{_iso(EARLIEST_TRANSACTION_TIME)}: implausible, not used")
    elif m.transaction_time > ingested_at + knowledge.CLOCK_SKEW:
        m.problem = (f"transactionTime {_iso(m.transaction_time)} is after the ingest time "
                     f"{_iso(ingested_at)} + {knowledge.CLOCK_SKEW}: not used")
    for kind in ("output", "error"):
        entries = body.get(kind) or []
        if not isinstance(entries, list):
            entries = []
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            url = entry.get("url") if isinstance(entry.get("url"), str) else None
            name = Path(urlparse(url).path).name if url else ""
            count = entry.get("count")
            listed = ListedFile(kind, entry.get("type") if isinstance(entry.get("type"), str) else None, url,
                                (drop / name).relative_to(landing_dir).as_posix() if name else None,
                                count if isinstance(count, int) and not isinstance(count, bool)
                                and 0 <= count <= _MAX_COUNT else None)
            target = drop / name if name else None
            if target is None or not target.is_file():
                listed.status = "missing"
            else:
                listed.found_lines = _count_lines(target)
                if listed.found_lines is None:
                    listed.status = "unreadable"
                elif kind == "error":
                    listed.status = "errors_reported" if listed.found_lines else "ok"
                elif listed.listed_count is not None and listed.listed_count != listed.found_lines:
                    listed.status = "count_mismatch"
            m.files.append(listed)
    return m


def read_all(landing_dir: Path, ingested_at: dt.datetime) -> list[Manifest]:
    out = []
    for path in find(landing_dir):
        try:
            out.append(read(path, landing_dir, ingested_at))
        except OSError as exc:      # vanished or unreadable: the drop's files still go on
            log.warning("manifest %s could not be read: %s", path, exc)
    return out


def transaction_times(manifests: list[Manifest], landing_dir: Path) -> dict[Path, dt.datetime]:
    """Drop folder (absolute) -> usable transactionTime."""
    return {(Path(landing_dir) / m.drop_folder).absolute(): m.usable_time
            for m in manifests if m.usable_time is not None}


def record(con: duckdb.DuckDBPyConnection, manifests: list[Manifest], run_id: str,
           ingested_at: dt.datetime) -> list[Manifest]:
    """Store manifests not seen before (by sha256) and their listed files; return the new ones.
    Runs inside the caller's transaction."""
    new = []
    for m in manifests:
        if con.execute("SELECT 1 FROM raw.export_manifests WHERE manifest_id = ?", [m.manifest_id]).fetchone():
            continue
        errors = [f for f in m.files if f.kind == "error"]
        con.execute("INSERT INTO raw.export_manifests VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [m.manifest_id, m.path, m.drop_folder, m.transaction_time, m.request,
                     sum(1 for f in m.files if f.kind == "output"), len(errors),
                     sum(f.found_lines or 0 for f in errors), m.problem, run_id, ingested_at])
        if m.files:
            con.executemany("INSERT INTO raw.export_manifest_files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [[m.manifest_id, f.kind, f.resource_type, f.url, f.path, f.listed_count,
                              f.found_lines, f.status, run_id, ingested_at] for f in m.files])
        new.append(m)
    return new
