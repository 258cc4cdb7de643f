"""`generate()`: simulate the network patient by patient and stream the three landing folders."""
from __future__ import annotations

import datetime as dt
import json
import random
import re
from pathlib import Path
from typing import BinaryIO, Callable

from .dosing import CSV_COLUMNS, csv_row
from .faults import FaultInjector, RecordContext
from .fhir import PatientFhir, network_resources
from .model import simulate_patient
from .network import add_care_team, build_network
from .notes import note_record

DOSING_FILE = "dosing/dosing_log.csv"
NOTES_FILE = "notes/therapy_notes.jsonl"
# files this generator owns: stale ones from an earlier run in the same folder are removed first
_OWN = {"ehr": re.compile(r"^[A-Z][A-Za-z]+\.\d{3}(\.part\d+)?\.ndjson$"),
        "dosing": re.compile(r"^dosing_log(_amendments)?\.csv$"),
        "notes": re.compile(r"^therapy_notes(_amendments)?\.jsonl$")}


# Bulk FHIR servers split a large export into several files per resource type; so does the
# generator, which also bounds the memory a file needs at ingest. Parts after the first are
# named `Observation.000.part2.ndjson`, `.part3`, ...
BULK_FILE_RESOURCES = 50_000


class _Files:
    """Lazily opened output files with line counts; EHR files are one per resource type, split
    into parts of BULK_FILE_RESOURCES lines."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.handles: dict[str, BinaryIO] = {}
        self.counts: dict[str, int] = {}
        self.parts: dict[str, tuple[int, str]] = {}   # EHR base file -> (number, path) being written

    def write_ehr(self, rel: str, lines: list[bytes]) -> None:
        n, part = self.parts.get(rel, (1, rel))
        if self.counts.get(part, 0) >= BULK_FILE_RESOURCES:
            self.handles.pop(part).close()
            n += 1
            part = rel.removesuffix(".ndjson") + f".part{n}.ndjson"
        self.parts[rel] = (n, part)
        self.write(part, lines)

    def write(self, rel: str, lines: list[bytes], header: bytes | None = None) -> None:
        fh = self.handles.get(rel)
        if fh is None:
            fh = (self.out / rel).open("wb", buffering=1 << 20)
            self.handles[rel] = fh
            self.counts[rel] = 0
            if header is not None:
                fh.write(header + b"\n")
        for line in lines:
            fh.write(line)
            fh.write(b"\n")
        self.counts[rel] += len(lines)

    def close(self) -> None:
        for fh in self.handles.values():
            fh.close()
        self.handles.clear()


def generate(out_dir: Path, patients: int = 200, days: int = 180, seed: int = 42,
             fault_rate: float = 0.0, start: dt.date = dt.date(2025, 1, 6),
             progress: Callable[[int], None] | None = None) -> dict:
    """Write a seeded sample clinic network into `out_dir` (ehr/, dosing/, notes/) and return counts.

    Same arguments, same bytes. `progress(n)` is called with the number of patients simulated since
    the previous call (an increment; the calls sum to `patients`).
    """
    if patients < 1 or days < 1:
        raise ValueError("patients and days must be at least 1")
    if not 0.0 <= fault_rate <= 1.0:
        raise ValueError("fault_rate must be between 0 and 1")
    out = Path(out_dir)
    for sub, pattern in _OWN.items():
        (out / sub).mkdir(parents=True, exist_ok=True)
        for old in sorted((out / sub).iterdir()):
            if old.is_file() and pattern.match(old.name):
                old.unlink()

    cutoff = dt.datetime.combine(start + dt.timedelta(days=days), dt.time())
    net = build_network(random.Random(f"kap:{seed}:network"), patients)
    add_care_team(net, random.Random(f"kap:{seed}:care-team"), start, days)
    faults = FaultInjector(fault_rate, seed, patients, cutoff)
    files = _Files(out)
    csv_header = faults.csv_line(list(CSV_COLUMNS))
    files.write(DOSING_FILE, [], header=csv_header)
    files.write(NOTES_FILE, [])
    for res in network_resources(net, start):
        files.write_ehr(f"ehr/{res['resourceType']}.000.ndjson", [faults.ehr(res, RecordContext(0))[0]])

    episodes = doses = 0
    pending_progress = 0
    for index in range(patients):
        rng = random.Random(f"kap:{seed}:patient:{index}")
        story = simulate_patient(index, rng, net, start, days,
                                 team_rng=random.Random(f"kap:{seed}:care-team:{index}"))
        ctx = RecordContext(story.person.birth_date.year)

        def emit(res: dict) -> None:
            files.write_ehr(f"ehr/{res['resourceType']}.000.ndjson", faults.ehr(res, ctx))

        PatientFhir(story, rng, cutoff, emit).write()
        episodes += sum(1 for ep in story.episodes if ep.start <= cutoff)
        note_no = 0
        for s in story.sessions:
            if s.start > cutoff:
                continue
            d = s.dose
            if d is not None and d.given:
                doses += 1
                if d.in_log and d.recorded_at <= cutoff:
                    files.write(DOSING_FILE, faults.dosing(csv_row(d, story.clinic.id, story.person.mrn,
                                                                   story.clinic.offset), ctx))
            if s.has_note:
                note_no += 1
                rec = note_record(story, s, note_no, rng, cutoff)
                if rec is not None:
                    files.write(NOTES_FILE, faults.note(rec, ctx))
        pending_progress += 1
        if progress is not None and (pending_progress >= 50 or index == patients - 1):
            progress(pending_progress)
            pending_progress = 0

    # re-exports: later files with corrections, retractions and conflicting copies
    for rel in sorted(faults.reexports):
        header = csv_header if rel.endswith(".csv") else None
        files.write(rel, faults.reexports[rel], header=header)
    files.close()
    counts = dict(sorted(files.counts.items()))
    write_manifest(out / "ehr", cutoff)
    return {
        "out_dir": str(out),
        "seed": seed,
        "start": start.isoformat(),
        "days": days,
        "fault_rate": fault_rate,
        "clinics": len(net.clinics),
        "patients": patients,
        "episodes": episodes,
        "doses": doses,
        "files": counts,
        "records": sum(counts.values()),
        "faults_injected": dict(sorted(faults.counts.items())),
    }


def write_manifest(drop: Path, transaction_time: dt.datetime) -> Path:
    """The drop's FHIR Bulk Data `$export` manifest (`manifest.json`, docs/inputs.md): one output
    entry per NDJSON file with its line count, `transactionTime` = the end of the generated period,
    so "now" of a pipeline run on the drop is the export's time."""
    outputs = []
    for path in sorted(drop.glob("*.ndjson")):
        with open(path, "rb") as fh:
            count = sum(1 for line in fh if line.strip())
        outputs.append({"type": path.name.split(".", 1)[0],
                        "url": f"https://ehr.example/fhir/bulk/export/{path.name}", "count": count})
    body = {"transactionTime": transaction_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "request": "https://ehr.example/fhir/$export?_type=" + ",".join(sorted({o["type"] for o in outputs})),
            "requiresAccessToken": False, "output": outputs, "error": []}
    target = drop / "manifest.json"
    target.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    return target
