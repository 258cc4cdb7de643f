"""Seeded sample-clinic generator behind `kap generate`.

Writes a landing folder exactly as docs/inputs.md specifies: FHIR R4 bulk NDJSON (`ehr/`), the
dosing log CSV (`dosing/`) and the therapy-note export JSONL (`notes/`). Modules:
`network` (clinics, staff), `people` (identities), `model` (the care pathway), `dosing`
(protocols, vitals, CSV rows), `fhir` (resources), `notes` (note lines and text), `faults`
(bad records and re-exports), `core` (the streaming writer).
"""
from __future__ import annotations

from .core import generate

__all__ = ["generate"]
