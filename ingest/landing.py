"""The landing folder: which files there are, whether they are safe to read, and their bytes' hash.

Layout (docs/inputs.md): `DIR/ehr`, `DIR/dosing`, `DIR/notes`, each holding files directly or in
one level of drop folders (`ehr/2025-06-01/Observation.000.ndjson`). Any subfolder may be missing.

Safety rules enforced here, before a byte is parsed:
- a path (file, symlink or drop folder) that resolves outside the landing folder is refused
  (`outside_landing`) and never opened;
- gzip data without a `.gz` name is refused (`compressed_without_extension`);
- a file whose size or mtime changes while it is hashed and loaded is `unstable_file`: not recorded,
  so the next run tries it again (an exporter still writing it).
"""
from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

SOURCES: tuple[str, ...] = ("ehr", "dosing", "notes")
EXTENSIONS: dict[str, tuple[str, ...]] = {
    "ehr": (".ndjson", ".ndjson.gz"),
    "dosing": (".csv", ".csv.gz"),
    "notes": (".jsonl", ".jsonl.gz"),
}
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class LandingFile:
    """One candidate file. `problem` is a file-level reason code found before reading, if any."""

    path: Path            # as found (inside the landing folder, not resolved)
    rel_path: str         # relative to the landing folder, '/'-separated
    source: str           # ehr | dosing | notes
    problem: str | None = None

    @property
    def is_gzip_name(self) -> bool:
        return self.path.name.endswith(".gz")

    @property
    def is_patient_file(self) -> bool:
        """FHIR bulk files are named by resource type: Patient files go first so keys exist."""
        return self.source == "ehr" and self.path.name.startswith("Patient")

    @property
    def is_clinic_file(self) -> bool:
        """Organization and Location files go next: their time zones read the others' local times."""
        return self.source == "ehr" and self.path.name.startswith(("Organization", "Location"))


@dataclass
class Discovery:
    files: list[LandingFile]
    ignored: list[str]     # files in the landing folder that no source reads (listed in the report)


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve(strict=False).relative_to(root)
        return True
    except (ValueError, OSError, RuntimeError):
        return False


def _matches(source: str, name: str) -> bool:
    return any(name.endswith(ext) for ext in EXTENSIONS[source])


def discover(landing_dir: Path) -> Discovery:
    """List the landing folder's files, in processing order.

    Order: EHR Patient files, Organization and Location files, other EHR files, dosing, notes;
    within each group by path, so patient keys (and clinics' time zones) exist before anything
    references them and runs are deterministic.
    """
    root = Path(landing_dir).resolve()
    files: list[LandingFile] = []
    ignored: list[str] = []

    def rel(p: Path) -> str:
        return p.relative_to(landing_dir).as_posix() if p.is_relative_to(landing_dir) else str(p)

    def consider(source: str, p: Path) -> None:
        if not _matches(source, p.name):
            ignored.append(rel(p))
            return
        problem = None if _inside(p, root) else "outside_landing"
        files.append(LandingFile(path=p, rel_path=rel(p), source=source, problem=problem))

    for source in SOURCES:
        top = Path(landing_dir) / source
        if not top.is_dir():
            continue
        if not _inside(top, root):
            # the whole source folder is a symlink out of the landing folder: refuse its files
            for p in sorted(top.iterdir()):
                if p.is_file():
                    files.append(LandingFile(p, rel(p), source, "outside_landing"))
            continue
        for entry in sorted(top.iterdir()):
            if entry.is_dir():
                if not _inside(entry, root):
                    for p in sorted(entry.iterdir()):
                        if p.is_file():
                            files.append(LandingFile(p, rel(p), source, "outside_landing"))
                    continue
                for p in sorted(entry.iterdir()):
                    if p.is_file() or p.is_symlink():
                        consider(source, p)
                    # deeper folders are not part of the layout: ignored
                    elif p.is_dir():
                        ignored.append(rel(p) + "/")
            elif entry.is_file() or entry.is_symlink():
                consider(source, entry)
    for p in sorted(Path(landing_dir).iterdir()) if Path(landing_dir).is_dir() else []:
        if p.name not in SOURCES:
            ignored.append(rel(p))

    order = {s: i for i, s in enumerate(SOURCES)}
    files.sort(key=lambda f: (order[f.source], 0 if f.is_patient_file else 1 if f.is_clinic_file else 2,
                              f.rel_path))
    return Discovery(files=files, ignored=ignored)


@dataclass(frozen=True)
class FileStat:
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> "FileStat":
        st = os.stat(path)
        return cls(st.st_size, st.st_mtime_ns)


@dataclass
class FileHash:
    sha256: str
    size: int
    head: bytes           # first bytes, for magic-number checks
    stat: FileStat        # taken before reading


class UnstableFile(RuntimeError):
    """The file changed while it was read."""


def hash_file(path: Path, chunk: int = 1 << 20) -> FileHash:
    """sha256 of the file's bytes, streamed; raises UnstableFile if it changes meanwhile."""
    before = FileStat.of(path)
    h = hashlib.sha256()
    n = 0
    head = b""
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            if n == 0:
                head = block[:4]
            h.update(block)
            n += len(block)
    after = FileStat.of(path)
    if before != after or n != before.size:
        raise UnstableFile(f"{path} changed while it was hashed")
    return FileHash(h.hexdigest(), n, head, before)


def check_stable(path: Path, expected: FileStat) -> None:
    """Raise UnstableFile when the file's size or mtime differs from what was hashed."""
    if FileStat.of(path) != expected:
        raise UnstableFile(f"{path} changed while it was read")


def is_gzip(head: bytes) -> bool:
    return head[:2] == GZIP_MAGIC


def read_bytes(path: Path, gz: bool) -> bytes:
    """The file's (decompressed) bytes; used for gzip files and the non-UTF-8 error path."""
    data = Path(path).read_bytes()
    return gzip.decompress(data) if gz else data


def path_id(rel_path: str) -> str:
    """file_id for a file that is never opened (outside the landing folder): hash of its path."""
    return hashlib.sha256(("path:" + rel_path).encode()).hexdigest()
