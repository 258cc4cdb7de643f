"""The run report: one self-contained HTML page per run, written to KAP_HOME/reports/.

It reads the published analytics.duckdb (what BI tools see), so it shows exactly what was
published. Charts are drawn with matplotlib and embedded as data: URIs, styles are inline: the
page opens offline and references no remote URL. Counts of 5 or fewer are suppressed
(DOMAIN.md section 6: small cells), with complementary suppression where a shown total would give
a hidden count back (kap.suppression).
"""
from __future__ import annotations

import base64
import datetime as dt
import html
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import duckdb

from kap.settings import Settings, limit_resources
from kap.suppression import SMALL_CELL, complementary_suppression, is_small

log = logging.getLogger(__name__)


def suppress(n: int | None) -> str:
    """A count as shown in the report: '<=5' when small enough to single out a person."""
    if n is None:
        return "n/a"
    return f"<={SMALL_CELL}" if 0 < n <= SMALL_CELL else f"{n:,}"


@dataclass
class Section:
    title: str
    body: str


def _has(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                            [table]).fetchone()[0])


def _figure_uri(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode()


def _chart(uri: str, alt: str) -> str:
    return f'<img class="chart" src="{uri}" alt="{html.escape(alt)}">'


def _table(headers: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _funnel(con) -> Section:
    import matplotlib.pyplot as plt

    if not _has(con, "care_pathways"):
        return Section("Pathway funnel", "<p>care_pathways was not published.</p>")
    row = con.execute("""
        SELECT count(*) FILTER (WHERE referred_at IS NOT NULL),
               count(*) FILTER (WHERE screening_result IS NOT NULL),
               count(*) FILTER (WHERE preparation_sessions > 0),
               count(*) FILTER (WHERE first_dose_at IS NOT NULL),
               count(*) FILTER (WHERE is_induction_completed),
               count(*) FILTER (WHERE maintenance_doses > 0)
        FROM care_pathways""").fetchone()
    stages = ["referred", "screened", "prepared", "first dose", "induction complete", "maintenance"]
    shown = [0 if n <= SMALL_CELL else n for n in row]
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.barh(stages[::-1], shown[::-1], color="#3b6ea5")
    ax.set_xlabel("episodes")
    ax.set_title("Care-pathway funnel (episodes reaching each step)")
    table = _table(["step", "episodes"], [[s, suppress(n)] for s, n in zip(stages, row)])
    return Section("Pathway funnel", _chart(_figure_uri(fig), "pathway funnel bar chart") + table)


def _adherence(con) -> Section:
    import matplotlib.pyplot as plt

    if not _has(con, "adherence_weekly"):
        return Section("Adherence by week", "<p>adherence_weekly was not published.</p>")
    rows = con.execute("""
        SELECT week_start, sum(doses) AS doses,
               sum(doses_with_integration_72h) AS integrated,
               sum(appointments_due) AS due, sum(noshows) AS noshows
        FROM adherence_weekly GROUP BY week_start ORDER BY week_start""").fetchall()
    weeks = [r[0] for r in rows if r[1] and r[1] > SMALL_CELL]
    share = [r[2] / r[1] for r in rows if r[1] and r[1] > SMALL_CELL]
    noshow_weeks = [r[0] for r in rows if r[3] and r[3] > SMALL_CELL]
    noshow = [r[4] / r[3] for r in rows if r[3] and r[3] > SMALL_CELL]
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.plot(weeks, share, marker="o", label="doses with integration within 72 h")
    ax.plot(noshow_weeks, noshow, marker="s", label="no-show rate")
    ax.set_ylim(0, 1)
    ax.set_ylabel("share")
    ax.set_title("Adherence by week (weeks with more than 5 doses / appointments)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2, fontsize=8, frameon=False)
    fig.autofmt_xdate()
    return Section("Adherence by week", _chart(_figure_uri(fig), "weekly adherence line chart"))


def _response_curve(con) -> Section:
    import matplotlib.pyplot as plt

    if not _has(con, "assessments"):
        return Section("PHQ-9 response", "<p>assessments was not published.</p>")
    rows = con.execute("""
        SELECT CAST(floor(days_from_first_dose / 7) AS INTEGER) AS week,
               count(DISTINCT episode_key) AS episodes,
               count(DISTINCT episode_key) FILTER (WHERE meets_response) AS responding
        FROM assessments
        WHERE instrument = 'phq9' AND is_post_dose AND baseline_score IS NOT NULL
        GROUP BY week ORDER BY week""").fetchall()
    # each week is a line: scored = responding + not responding (complementary suppression)
    hidden_by_week = {w: _response_hidden(n, r) for w, n, r in rows}
    kept = [(w, n, r) for w, n, r in rows if not hidden_by_week[w] & {"scored", "responding"}]
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.plot([w for w, _, _ in kept], [r / n for _, n, r in kept], marker="o", color="#2e7d32")
    ax.set_ylim(0, 1)
    ax.set_xlabel("weeks since first dose")
    ax.set_ylabel("share responding (>= 50 % below baseline)")
    ax.set_title("PHQ-9 response by weeks since first dose")
    table = _table(["week", "episodes scored", "responding"],
                   [[w, _shown(n, "scored" in hidden_by_week[w]), _shown(r, "responding" in hidden_by_week[w])]
                    for w, n, r in rows])
    return Section("PHQ-9 response", _chart(_figure_uri(fig), "PHQ-9 response curve") + table
                   + _outcome_status(con))


def _outcome_status(con) -> str:
    """PHQ-9 episodes by outcome_status, and rates over the assessed ones (unknown is not "no")."""
    if not _has(con, "patient_outcomes"):
        return ""
    counts = dict(con.execute("""SELECT outcome_status, count(*) FROM patient_outcomes
                                 WHERE instrument = 'phq9' GROUP BY 1""").fetchall())
    assessed, responders, remitters = con.execute("""
        SELECT count(*), count(*) FILTER (WHERE is_responder), count(*) FILTER (WHERE is_remitter)
        FROM patient_outcomes WHERE instrument = 'phq9' AND outcome_status = 'assessed'""").fetchone()
    rate = (lambda k: f"{100 * k / assessed:.1f} %" if assessed > SMALL_CELL else "suppressed")
    table = _table(["outcome_status", "PHQ-9 episodes"],
                   [[k, suppress(counts.get(k, 0))] for k in ("assessed", "no_followup", "no_baseline")])
    return (f"<p>Response {rate(responders)}, remission {rate(remitters)} of the {suppress(assessed)} "
            "assessed episodes (a baseline and a score after the first dose). Episodes without a later "
            "score (no_followup) or without a baseline (no_baseline) have unknown outcomes and are not "
            "in the denominator.</p>" + table)


def _caseload(con) -> Section:
    """Per clinic, each therapist's active caseload by week (staff_weekly): one panel per clinic.
    A caseload of 5 or fewer episodes is left out of the chart and shown as '<=5' in the table."""
    import matplotlib.pyplot as plt

    if not _has(con, "staff_weekly"):
        return Section("Caseload by clinic", "<p>staff_weekly was not published.</p>")
    rows = con.execute("""
        SELECT clinic_id, staff_id, week_start, active_caseload FROM staff_weekly
        WHERE staff_role = 'therapist' ORDER BY clinic_id, staff_id, week_start""").fetchall()
    clinics = sorted({r[0] for r in rows})
    if not clinics:
        return Section("Caseload by clinic", "<p>No therapist has a recorded contact yet.</p>")
    fig, axes = plt.subplots(len(clinics), 1, figsize=(7, 2.2 * len(clinics)), sharex=True, squeeze=False)
    for ax, clinic in zip(axes[:, 0], clinics):
        for staff in sorted({r[1] for r in rows if r[0] == clinic}):
            series = [(w, n if n > SMALL_CELL else None) for c, s, w, n in rows if c == clinic and s == staff]
            ax.plot([w for w, _ in series], [n for _, n in series], marker=".", linewidth=1, label=staff)
        ax.set_title(f"{clinic}: active caseload per therapist (episodes seen in the last 30 days)", fontsize=9)
        ax.set_ylabel("episodes")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=6, ncol=3, loc="upper left", frameon=False)
    fig.autofmt_xdate()
    latest = con.execute("""
        WITH last AS (SELECT clinic_id, max(week_start) AS week_start FROM staff_weekly
                      WHERE staff_role = 'therapist' GROUP BY clinic_id)
        SELECT w.clinic_id, w.week_start, count(*), sum(w.active_caseload), max(w.active_caseload)
        FROM staff_weekly w JOIN last USING (clinic_id, week_start)
        WHERE w.staff_role = 'therapist' GROUP BY ALL ORDER BY w.clinic_id""").fetchall()
    table = _table(["clinic", "latest week", "therapists active", "episodes in their caseloads", "largest caseload"],
                   [[c, w, t, suppress(total), suppress(top)] for c, w, t, total, top in latest])
    return Section("Caseload by clinic", _chart(_figure_uri(fig), "therapist caseload chart per clinic") + table)


def _response_hidden(scored: int, responding: int) -> set[str]:
    """Which of a week's counts to hide: small ones, and complementary ones (kap.suppression)."""
    counts = {"scored": scored, "responding": responding, "not_responding": scored - responding}
    return complementary_suppression(counts, [("scored", ["responding", "not_responding"])])


def _shown(n: int, hidden: bool) -> str:
    if not hidden:
        return suppress(n)
    return f"<={SMALL_CELL}" if is_small(n) else "suppressed"


def _safety(con) -> Section:
    if not _has(con, "dosing_safety"):
        return Section("Safety", "<p>dosing_safety was not published.</p>")
    row = con.execute("""
        SELECT count(*), count(*) FILTER (WHERE has_bp_rise_flag),
               count(*) FILTER (WHERE NOT is_monitoring_complete),
               coalesce(sum(adverse_events), 0), coalesce(sum(serious_adverse_events), 0)
        FROM dosing_safety""").fetchone()
    labels = ["dosing sessions", "BP rise >= 40 systolic or >= 25 diastolic",
              "monitoring incomplete by its route's rule (at-home SL/PO not counted)", "adverse events", "serious adverse events"]
    return Section("Safety flags", _table(["flag", "count"], [[l, suppress(n)] for l, n in zip(labels, row)]))


def _data_quality(con) -> Section:
    if not _has(con, "dq_results"):
        return Section("Data quality", "<p>dq_results was not published.</p>")
    counts = con.execute("""
        SELECT stage, severity, status, count(*) FROM dq_results
        GROUP BY ALL ORDER BY stage, severity, status""").fetchall()
    failed = con.execute("""
        SELECT stage, check_id, severity, rows_failed, pct_failed FROM dq_results
        WHERE status = 'failed' ORDER BY severity, stage, check_id""").fetchall()
    body = _table(["stage", "severity", "status", "checks"], [list(r) for r in counts])
    if failed:
        body += "<h3>Failed checks</h3>" + _table(
            ["stage", "check", "severity", "rows failed", "% failed"],
            [[s, c, sev, n, f"{p:.2f}" if p is not None else ""] for s, c, sev, n, p in failed])
    return Section("Data quality", body)


def _export(con) -> Section:
    """The knowledge cutoff ("now") of the published marts and what the Bulk Data manifests said."""
    body = ""
    if _has(con, "care_pathways"):
        now = con.execute("SELECT max(as_of_at) FROM care_pathways").fetchone()[0]
        body += f"<p>Now (knowledge cutoff of the data received): {html.escape(str(now or 'n/a'))}</p>"
    if not _has(con, "dq_results"):
        return Section("Bulk Data export", body + "<p>dq_results was not published.</p>")
    rows = con.execute("""
        SELECT check_id, status, rows_checked, rows_failed, failing_keys_sample FROM dq_results
        WHERE check_id LIKE 'landing_manifest%' ORDER BY check_id""").fetchall()
    if not any(checked for _, _, checked, _, _ in rows):
        return Section("Bulk Data export", body + "<p>No Bulk Data manifest was read in this run.</p>")
    body += _table(["check", "status", "listed", "problems", "files (sample)"],
                   [[c, s, n if n is not None else "", f if f is not None else "", k or ""]
                    for c, s, n, f, k in rows])
    return Section("Bulk Data export", body)


def _section(build, con) -> Section:
    """One section; a mart that lacks what it needs gets a note, never a failed run."""
    try:
        return build(con)
    except duckdb.Error as error:
        title = build.__name__.strip("_").replace("_", " ").capitalize()
        log.warning("run report section %s could not be drawn: %s", title, error)
        return Section(title, f"<p>Could not be drawn: {html.escape(str(error).splitlines()[0])}</p>")


STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem;color:#222;max-width:60rem}
h1{font-size:1.5rem} h2{font-size:1.2rem;border-bottom:1px solid #ccc;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.5rem 0} td,th{border:1px solid #ccc;padding:.2rem .6rem;text-align:left}
.chart{max-width:100%;display:block} .meta{color:#666}
"""


def render(analytics: Path, run_id: str) -> str:
    """The report page for one published file."""
    import matplotlib

    matplotlib.use("Agg")
    con = limit_resources(duckdb.connect(str(analytics), read_only=True))
    try:
        published = con.execute("SELECT max(published_at), max(as_of) FROM publish_runs").fetchone() \
            if _has(con, "publish_runs") else (None, None)
        sections = [_section(build, con) for build in (_funnel, _adherence, _response_curve, _caseload, _safety,
                                                     _export, _data_quality)]
    finally:
        con.close()
    parts = [f"<h2>{html.escape(s.title)}</h2>{s.body}" for s in sections]
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>KAP run report {html.escape(run_id)}</title><style>{STYLE}</style></head><body>"
        f"<h1>KAP nightly run report</h1><p class=meta>run {html.escape(run_id)} - published "
        f"{html.escape(str(published[0]))} - as of {html.escape(str(published[1] or 'latest'))} - "
        f"counts of {SMALL_CELL} or fewer are suppressed, and so is the smallest other count wherever "
        "a total would give a suppressed one back</p>"
        + "".join(parts) + "</body></html>"
    )


def write_run_report(settings: Settings, run_id: str, analytics: Path | None = None) -> Path:
    """Write reports/<run_id>.html and reports/latest.html; returns the run's page."""
    analytics = analytics or settings.analytics
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    page = render(analytics, run_id)
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in run_id)
    path = settings.reports_dir / f"{safe}.html"
    path.write_text(page, encoding="utf-8")
    (settings.reports_dir / "latest.html").write_text(page, encoding="utf-8")
    log.info("run report written to %s", path)
    return path
