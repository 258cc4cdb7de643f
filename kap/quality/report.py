"""The offline data-quality report: one self-contained HTML page per run (no CDN, no remote URL).

GX Data Docs load CSS/JS from CDNs (STACK.md), so this page is written by hand: inline CSS, no
scripts, readable from a file:// URL on a machine without network.
"""
from __future__ import annotations

import html
import json
import os
import re
from pathlib import Path

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem;color:#1d2430}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;width:100%;font-size:.85rem}
th,td{border:1px solid #d0d5dd;padding:.3rem .45rem;text-align:left;vertical-align:top}
th{background:#f2f4f7}
.failed.critical{background:#fde2e1}.failed.warning{background:#fff4d6}.not_run{background:#eef0f3;color:#555}
.badge{display:inline-block;padding:.1rem .45rem;border-radius:.6rem;font-weight:600;font-size:.8rem}
.b-passed{background:#d1f2dc}.b-warning{background:#ffe8a3}.b-failed{background:#f7b6b2}
code{font-size:.8rem}.muted{color:#667085}
"""


def safe_name(run_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", run_id)


def _e(value) -> str:
    return html.escape("" if value is None else str(value))


def render_html(run_id: str, runs: list[dict], checks: list[dict]) -> str:
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<title>KAP data quality - {_e(run_id)}</title><style>{STYLE}</style></head><body>",
             f"<h1>Data quality, run <code>{_e(run_id)}</code></h1>",
             "<p class='muted'>Checks from <code>expectations/checks.csv</code>, judged by Great "
             "Expectations on data read from the warehouse. Results are also in the warehouse tables "
             "<code>dq.validation_runs</code> and <code>dq.check_results</code>, and in "
             "<code>dq_results</code> of analytics.duckdb. A critical failure stops publishing.</p>"]
    parts.append("<table><tr><th>stage</th><th>status</th><th>checks</th><th>failed critical</th>"
                 "<th>failed warning</th><th>not run</th><th>as_of</th><th>compared with now =</th>"
                 "<th>started</th><th>finished</th></tr>")
    for r in runs:
        parts.append(f"<tr><td>{_e(r['stage'])}</td><td><span class='badge b-{_e(r['status'])}'>{_e(r['status'])}"
                     f"</span></td><td>{_e(r['checks'])}</td><td>{_e(r['failed_critical'])}</td>"
                     f"<td>{_e(r['failed_warning'])}</td><td>{_e(r['not_run'])}</td><td>{_e(r['as_of'])}</td>"
                     f"<td>{_e(r['checked_now'])}</td><td>{_e(r['started_at'])}</td><td>{_e(r['finished_at'])}</td></tr>")
    parts.append("</table>")
    for stage in dict.fromkeys(c["stage"] for c in checks):
        rows = [c for c in checks if c["stage"] == stage]
        parts.append(f"<h2>Stage {_e(stage)}</h2><table><tr><th>status</th><th>severity</th><th>check</th>"
                     "<th>Kahn</th><th>target / column</th><th>rows checked</th><th>rows failed</th>"
                     "<th>% failed (allowed)</th><th>sample of failing keys / detail</th><th>why</th></tr>")
        for c in rows:
            keys = json.loads(c["failing_keys_sample"] or "[]")
            pct = "" if c["pct_failed"] is None else f"{c['pct_failed']:.2f}"
            sample = ", ".join(_e(k) for k in keys)
            detail = _e(c["detail"])
            where = _e(c["location"])
            parts.append(
                f"<tr class='{_e(c['status'])} {_e(c['severity'])}'><td>{_e(c['status'])}</td>"
                f"<td>{_e(c['severity'])}</td><td><code>{_e(c['check_id'])}</code><br>"
                f"<span class='muted'>{_e(c['check_type'])}</span></td><td>{_e(c['kahn_category'])}</td>"
                f"<td>{_e(c['target'])}<br><code>{_e(c['column'])}</code></td><td>{_e(c['rows_checked'])}</td>"
                f"<td>{_e(c['rows_failed'])}</td><td>{pct} ({_e(c['threshold_pct'])})</td>"
                f"<td>{sample}{'<br>' if sample and detail else ''}{detail}"
                f"{'<br><span class=muted>in ' + where + '</span>' if c['status'] == 'failed' else ''}</td>"
                f"<td class='muted'>{_e(c['note'])}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>\n")
    return "".join(parts)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_report(dq_dir: Path, run_id: str, runs: list[dict], checks: list[dict]) -> Path:
    """Write dq/<run_id>.html and dq/latest.html; return the run's page."""
    dq_dir.mkdir(parents=True, exist_ok=True)
    page = render_html(run_id, runs, checks)
    path = dq_dir / f"{safe_name(run_id)}.html"
    _write_atomic(path, page)
    _write_atomic(dq_dir / "latest.html", page)
    return path
