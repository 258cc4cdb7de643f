"""The run report opens offline: charts drawn by a real browser, no remote URL anywhere."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kap.pipeline import run
from kap.report import SMALL_CELL, suppress

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _require_chromium() -> str:
    if CHROMIUM:
        return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail("chromium is missing: .ci/run installs Debian's chromium package")
    pytest.skip("chromium is not installed (apt-get install chromium); CI installs it")


@pytest.fixture(scope="module")
def report(tmp_path_factory, small_landing) -> Path:
    from kap.settings import Settings

    settings = Settings(home=tmp_path_factory.mktemp("report_home")).ensure_dirs()
    summary = run(small_landing, settings, run_id="report-test")
    assert summary.report is not None
    return summary.report


def test_small_counts_are_suppressed():
    assert suppress(SMALL_CELL) == f"<={SMALL_CELL}"
    assert suppress(1) == f"<={SMALL_CELL}"
    assert suppress(SMALL_CELL + 1) == f"{SMALL_CELL + 1:,}"
    assert suppress(0) == "0"


def test_report_references_no_remote_url(report: Path):
    page = report.read_text(encoding="utf-8")
    assert not re.search(r"(?i)\b(?:https?:)?//[a-z0-9.-]+", page.replace("data:image/svg+xml;base64,", ""))
    for attr in re.findall(r'(?:src|href)="([^"]*)"', page):
        assert attr.startswith(("data:", "#")), attr
    assert (report.parent / "latest.html").read_text(encoding="utf-8") == page


def test_report_charts_are_drawn_by_a_headless_browser(report: Path, tmp_path: Path):
    browser = _require_chromium()
    probe = tmp_path / "probe.html"
    # After load, record every image's decoded size where --dump-dom can read it.
    script = ("<script>window.addEventListener('load',()=>{document.body.setAttribute('data-images',"
              "JSON.stringify([...document.images].map(i=>[i.alt,i.complete,i.naturalWidth,i.naturalHeight])))})"
              "</script>")
    probe.write_text(report.read_text(encoding="utf-8").replace("</body>", script + "</body>"), encoding="utf-8")
    out = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=5000",
         "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    found = re.search(r'data-images="([^"]*)"', out.stdout)
    assert found, "the page's load handler did not run"
    images = json.loads(found.group(1).replace("&quot;", '"'))
    alts = {alt for alt, *_ in images}
    assert {"pathway funnel bar chart", "weekly adherence line chart", "PHQ-9 response curve",
            "therapist caseload chart per clinic"} <= alts
    for alt, complete, width, height in images:
        assert complete and width > 100 and height > 100, f"chart {alt!r} was not drawn ({width}x{height})"


def test_report_shows_the_sections_an_analyst_reads(report: Path):
    page = report.read_text(encoding="utf-8")
    for heading in ("Pathway funnel", "Adherence by week", "PHQ-9 response", "Caseload by clinic", "Safety flags",
                    "Data quality"):
        assert f"<h2>{heading}</h2>" in page
    assert "Could not be drawn" not in page

