"""Resource limits per landing file: what a hostile or broken export can cost, at most.

A file over a limit is rejected whole with a file-level reason (ingest.reasons.FILE_REASONS) and
recorded in raw.ingest_files, so the same bytes are not read again every night; a changed file
(a new sha256) is read again. The files after it in the drop are ingested as usual.

- `max_decompressed_bytes`: the most bytes a file may hold once decompressed (a plain file: its
  size). Gzip is decompressed in chunks and counted while streaming; the limit stops the stream,
  so a decompression bomb costs one chunk of memory, never its expanded size.
- `max_expansion_ratio`: a gzip file may expand to at most this many times its compressed size.
  Files that expand to less than `ratio_exempt_bytes` are exempt (small, repetitive files
  compress very well and are harmless).
- `max_line_bytes`: the longest line (one record) in bytes.
- `max_json_depth`: the deepest nesting of JSON objects/arrays in a line of an NDJSON/JSONL file
  (brackets inside JSON strings do not count). CSV has no nesting.

The defaults are far above what real exports need (a FHIR resource is a few kB, nested about ten
levels; bulk files come split into parts of tens of MB) and low enough that one file never takes
more than about its decompressed size of memory.
"""
from __future__ import annotations

from dataclasses import dataclass

MIB = 1 << 20


@dataclass(frozen=True)
class Limits:
    max_decompressed_bytes: int = 1024 * MIB
    max_expansion_ratio: float = 100.0
    ratio_exempt_bytes: int = 16 * MIB
    max_line_bytes: int = 16 * MIB
    max_json_depth: int = 64

    def __post_init__(self) -> None:
        for name in ("max_decompressed_bytes", "max_expansion_ratio", "max_line_bytes", "max_json_depth"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.ratio_exempt_bytes < 0:
            raise ValueError("ratio_exempt_bytes must not be negative")

    def allowed_decompressed(self, compressed_size: int) -> tuple[int, str]:
        """(the most bytes a gzip file of this size may expand to, the reason code past it)."""
        by_ratio = max(int(compressed_size * self.max_expansion_ratio), self.ratio_exempt_bytes)
        if by_ratio < self.max_decompressed_bytes:
            return by_ratio, "expansion_ratio_exceeded"
        return self.max_decompressed_bytes, "file_too_large"


DEFAULT = Limits()


class LimitExceeded(Exception):
    """A file over a resource limit: `reason` is a FILE_REASONS code, `detail` says by how much."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail
