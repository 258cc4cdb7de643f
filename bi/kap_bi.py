"""Apache Superset beside the pipeline: the "KAP clinic operations" dashboard, provisioned from this file.

Runs with bi/'s own locked environment (bi/pyproject.toml, bi/uv.lock: Superset's dependencies
clash with Airflow's).

    python bi/kap_bi.py serve [--port 8088]      # make bi: set up, start, provision, keep serving
    python bi/kap_bi.py check --analytics FILE   # make test-bi: a fresh home on a free port, then
                                                 # REST login, every chart's data, headless render

Guarantees:
- Superset binds to 127.0.0.1. Its home is KAP_HOME/bi (mode 700): the SQLite metadata DB, a
  generated SECRET_KEY and the generated admin password (`admin_password`, mode 600).
- analytics.duckdb is opened read-only through duckdb-engine: the database's `extra` carries
  engine_params.connect_args.read_only = true.
- Nothing is made by hand: the database, the datasets (SQL below), the charts and the dashboard
  with its clinic filter are (re)created through Superset's REST API from DATASETS and CHARTS.
- Small cells: the PHQ-9 dataset shows counts of 5 or fewer people as null (DOMAIN.md section 6).
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

BI_DIR = Path(__file__).resolve().parent
ROOT = BI_DIR.parent
SUPERSET = Path(sys.executable).with_name("superset")
DASHBOARD = "KAP clinic operations"
DATABASE = "KAP analytics (read-only)"
SMALL_CELL = 5
# Superset's frontend embeds an anonymous usage pixel (an <img> from Scarf) that no setting turns
# off in the built assets. The render check blocks it (nothing leaves the machine) and does not
# count its blocked request as a console error; any other failed resource is an error.
TELEMETRY_URLS = ("*scarf.sh*",)

# name -> SQL over analytics.duckdb (virtual datasets). Every dataset but dq_last_run has clinic_id.
DATASETS: dict[str, str] = {
    "kap_pathway_funnel": """
        SELECT clinic_id,
               count(*) AS episodes,
               count(screening_at) AS screened,
               count(first_preparation_at) AS prepared,
               count(first_dose_at) AS dosed,
               count(induction_completed_at) AS induction_completed,
               count(maintenance_started_at) AS in_maintenance,
               count(discharged_at) AS discharged
        FROM care_pathways GROUP BY clinic_id""",
    "kap_weekly_attendance": """
        SELECT clinic_id, week_start, appointments_due, noshows, late_cancellations,
               noshow_rate, late_cancel_rate
        FROM adherence_weekly""",
    "kap_chair_minutes": """
        SELECT clinic_id, activity_date, dosing_sessions, chair_minutes
        FROM clinic_daily""",
    "kap_integration_weekly": """
        SELECT clinic_id, week_start, doses, doses_with_integration_72h, integration_72h_share,
               integration_24h_share
        FROM adherence_weekly""",
    "kap_induction_by_route": """
        SELECT clinic_id, episode_route AS route,
               count(*) AS episodes_dosed,
               sum(CASE WHEN is_induction_completed THEN 1 ELSE 0 END) AS inductions_completed,
               round(avg(CASE WHEN is_induction_completed THEN 1.0 ELSE 0.0 END), 3) AS completion_share
        FROM care_pathways WHERE first_dose_at IS NOT NULL
        GROUP BY clinic_id, episode_route""",
    "kap_phq9_outcomes": f"""
        SELECT clinic_id,
               CASE WHEN assessed <= {SMALL_CELL} THEN NULL ELSE assessed END AS episodes_assessed,
               CASE WHEN assessed <= {SMALL_CELL} OR responders <= {SMALL_CELL} THEN NULL ELSE responders END AS responders,
               CASE WHEN assessed <= {SMALL_CELL} OR remitters <= {SMALL_CELL} THEN NULL ELSE remitters END AS remitters,
               CASE WHEN assessed <= {SMALL_CELL} THEN NULL ELSE round(1.0 * responders / assessed, 3) END AS response_share,
               CASE WHEN assessed <= {SMALL_CELL} THEN NULL ELSE round(1.0 * remitters / assessed, 3) END AS remission_share,
               assessed <= {SMALL_CELL} AS is_suppressed
        FROM (
            SELECT c.clinic_id,
                   count(*) AS assessed,
                   sum(CASE WHEN o.is_responder THEN 1 ELSE 0 END) AS responders,
                   sum(CASE WHEN o.is_remitter THEN 1 ELSE 0 END) AS remitters
            FROM patient_outcomes AS o
            JOIN care_pathways AS c ON c.episode_key = o.episode_key
            WHERE o.instrument = 'phq9' AND o.has_baseline AND o.scores_post_dose > 0
            GROUP BY c.clinic_id
        ) AS per_clinic""",
    "kap_safety_flags": """
        SELECT clinic_id, route, monitoring_rule,
               count(*) AS sessions,
               count(is_monitoring_complete) AS sessions_in_rate,
               sum(CASE WHEN is_monitoring_complete THEN 1 ELSE 0 END) AS monitoring_complete,
               sum(CASE WHEN has_bp_rise_flag THEN 1 ELSE 0 END) AS bp_rise_flags,
               sum(adverse_events) AS adverse_events,
               sum(serious_adverse_events) AS serious_adverse_events
        FROM dosing_safety GROUP BY clinic_id, route, monitoring_rule""",
    "kap_dq_last_run": """
        SELECT stage, severity, status, count(*) AS checks, max(run_id) AS run_id
        FROM dq_results
        WHERE run_id = (SELECT max(run_id) FROM publish_runs)
        GROUP BY stage, severity, status""",
}

# chart title -> (dataset, columns shown, order by)
CHARTS: list[tuple[str, str, list[str], str]] = [
    ("Pathway funnel per clinic", "kap_pathway_funnel",
     ["clinic_id", "episodes", "screened", "prepared", "dosed", "induction_completed", "in_maintenance",
      "discharged"], "clinic_id"),
    ("Weekly no-show and late-cancel rates", "kap_weekly_attendance",
     ["clinic_id", "week_start", "appointments_due", "noshow_rate", "late_cancel_rate"], "week_start"),
    ("Chair minutes per clinic-day", "kap_chair_minutes",
     ["clinic_id", "activity_date", "dosing_sessions", "chair_minutes"], "activity_date"),
    ("Integration within 72 h by week", "kap_integration_weekly",
     ["clinic_id", "week_start", "doses", "integration_72h_share", "integration_24h_share"], "week_start"),
    ("Induction completion by route", "kap_induction_by_route",
     ["clinic_id", "route", "episodes_dosed", "inductions_completed", "completion_share"], "clinic_id"),
    ("PHQ-9 response and remission (assessed episodes; counts <= 5 suppressed)", "kap_phq9_outcomes",
     ["clinic_id", "episodes_assessed", "responders", "remitters", "response_share", "remission_share",
      "is_suppressed"], "clinic_id"),
    ("Safety flags", "kap_safety_flags",
     ["clinic_id", "route", "monitoring_rule", "sessions", "sessions_in_rate", "monitoring_complete",
      "bp_rise_flags", "adverse_events", "serious_adverse_events"], "clinic_id"),
    ("Data quality of the last run", "kap_dq_last_run",
     ["run_id", "stage", "severity", "status", "checks"], "stage"),
]


# --- home, secrets, process ----------------------------------------------------------------------
def bi_home() -> Path:
    kap_home = Path(os.environ.get("KAP_HOME") or ROOT / "var")
    return (kap_home / "bi").resolve()


def _owner_only(path: Path, text: str) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text, encoding="utf-8")


def ensure_secrets(home: Path) -> str:
    """SECRET_KEY and the admin password, generated once, owner-only; returns the password."""
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o700)
    if not (home / "secret_key").exists():
        _owner_only(home / "secret_key", secrets.token_urlsafe(48))
    if not (home / "admin_password").exists():
        _owner_only(home / "admin_password", secrets.token_urlsafe(18))
    return (home / "admin_password").read_text(encoding="utf-8").strip()


def environ(home: Path) -> dict[str, str]:
    return {**os.environ, "KAP_BI_HOME": str(home), "SUPERSET_CONFIG_PATH": str(BI_DIR / "superset_config.py"),
            "FLASK_APP": "superset", "SUPERSET_LOAD_EXAMPLES": "no", "PYTHONUNBUFFERED": "1"}


def _superset(home: Path, *args: str, log) -> None:
    subprocess.run([str(SUPERSET), *args], env=environ(home), check=True, stdout=log, stderr=subprocess.STDOUT)


def setup(home: Path, log) -> str:
    """Metadata DB, admin user and roles (once per home); returns the admin password."""
    password = ensure_secrets(home)
    if (home / "setup.done").exists():
        return password
    _superset(home, "db", "upgrade", log=log)
    _superset(home, "fab", "create-admin", "--username", "admin", "--firstname", "KAP", "--lastname", "Admin",
              "--email", "admin@localhost", "--password", password, log=log)
    _superset(home, "init", log=log)
    (home / "setup.done").write_text("ok\n", encoding="utf-8")
    return password


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(home: Path, port: int, log) -> subprocess.Popen:
    return subprocess.Popen([str(SUPERSET), "run", "-h", "127.0.0.1", "-p", str(port), "--with-threads"],
                            env=environ(home), stdout=log, stderr=subprocess.STDOUT)


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"superset exited with status {proc.returncode}")
        try:
            if requests.get(f"{url}/health", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(2)
    raise TimeoutError(f"superset did not answer on {url} within {timeout:.0f} s")


# --- REST API -------------------------------------------------------------------------------------
class Api:
    """Superset's REST API as the admin: JWT for the calls, a CSRF token for the writes."""

    def __init__(self, url: str, password: str) -> None:
        self.url = url
        self.http = requests.Session()
        r = self.http.post(f"{url}/api/v1/security/login", json={
            "username": "admin", "password": password, "provider": "db", "refresh": False}, timeout=60)
        r.raise_for_status()
        self.http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        csrf = self.http.get(f"{url}/api/v1/security/csrf_token/", timeout=60)
        csrf.raise_for_status()
        self.http.headers.update({"X-CSRFToken": csrf.json()["result"], "Referer": url})

    def call(self, method: str, path: str, **kw) -> dict:
        r = self.http.request(method, f"{self.url}/api/v1/{path}", timeout=300, **kw)
        if r.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:500]}")
        return r.json() if r.content else {}

    def find(self, resource: str, column: str, value: str) -> list[int]:
        q = json.dumps({"filters": [{"col": column, "opr": "eq", "value": value}], "page_size": 100})
        return [row["id"] for row in self.call("GET", f"{resource}/", params={"q": q}).get("result", [])]


def provision(api: Api, analytics: Path) -> int:
    """(Re)create database, datasets, charts and dashboard from this file; returns the dashboard id."""
    for old in api.find("dashboard", "dashboard_title", DASHBOARD):
        api.call("DELETE", f"dashboard/{old}")
    for title, *_ in CHARTS:
        for old in api.find("chart", "slice_name", title):
            api.call("DELETE", f"chart/{old}")
    for name in DATASETS:
        for old in api.find("dataset", "table_name", name):
            api.call("DELETE", f"dataset/{old}")
    extra = json.dumps({"engine_params": {"connect_args": {"read_only": True}}})
    db_body = {"database_name": DATABASE, "sqlalchemy_uri": f"duckdb:///{analytics.resolve()}",
               "extra": extra, "expose_in_sqllab": True}
    existing = api.find("database", "database_name", DATABASE)
    if existing:
        db_id = existing[0]
        api.call("PUT", f"database/{db_id}", json=db_body)
    else:
        db_id = api.call("POST", "database/", json=db_body)["id"]

    dataset_ids = {}
    for name, sql in DATASETS.items():
        body = {"database": db_id, "table_name": name, "sql": " ".join(sql.split()), "schema": None}
        dataset_ids[name] = api.call("POST", "dataset/", json=body)["id"]

    chart_ids: list[int] = []
    for title, dataset, columns, order in CHARTS:
        ds = dataset_ids[dataset]
        form = {"datasource": f"{ds}__table", "viz_type": "table", "query_mode": "raw",
                "all_columns": columns, "order_by_cols": [json.dumps([order, True])],
                "row_limit": 10000, "adhoc_filters": [], "server_pagination": False}
        query_context = {"datasource": {"id": ds, "type": "table"}, "force": False,
                         "queries": [{"columns": columns, "metrics": [], "orderby": [[order, True]],
                                      "row_limit": 10000, "filters": [], "extras": {"having": "", "where": ""}}],
                         "form_data": form, "result_format": "json", "result_type": "full"}
        chart_ids.append(api.call("POST", "chart/", json={
            "slice_name": title, "viz_type": "table", "datasource_id": ds, "datasource_type": "table",
            "params": json.dumps(form), "query_context": json.dumps(query_context)})["id"])

    dq_chart = chart_ids[-1]
    position = {"DASHBOARD_VERSION_KEY": "v2", "ROOT_ID": {"type": "ROOT", "id": "ROOT_ID", "children": ["GRID_ID"]},
                "GRID_ID": {"type": "GRID", "id": "GRID_ID", "children": [], "parents": ["ROOT_ID"]},
                "HEADER_ID": {"id": "HEADER_ID", "type": "HEADER", "meta": {"text": DASHBOARD}}}
    for i in range(0, len(chart_ids), 2):
        row = f"ROW-{i // 2}"
        position["GRID_ID"]["children"].append(row)
        position[row] = {"type": "ROW", "id": row, "children": [], "parents": ["ROOT_ID", "GRID_ID"],
                         "meta": {"background": "BACKGROUND_TRANSPARENT"}}
        for chart_id, (title, *_rest) in zip(chart_ids[i:i + 2], CHARTS[i:i + 2]):
            key = f"CHART-{chart_id}"
            position[row]["children"].append(key)
            position[key] = {"type": "CHART", "id": key, "children": [], "parents": ["ROOT_ID", "GRID_ID", row],
                             "meta": {"chartId": chart_id, "width": 6, "height": 50, "sliceName": title}}
    clinic_filter = {
        "id": "NATIVE_FILTER-clinic", "name": "Clinic", "filterType": "filter_select", "type": "NATIVE_FILTER",
        "targets": [{"datasetId": dataset_ids["kap_pathway_funnel"], "column": {"name": "clinic_id"}}],
        "controlValues": {"multiSelect": True, "enableEmptyFilter": False, "searchAllOptions": False},
        "defaultDataMask": {"filterState": {"value": None}, "extraFormData": {}},
        "cascadeParentIds": [], "scope": {"rootPath": ["ROOT_ID"], "excluded": [dq_chart]},
        "chartsInScope": chart_ids[:-1], "description": "Clinic (Organization id)",
    }
    metadata = {"native_filter_configuration": [clinic_filter], "color_scheme": "", "refresh_frequency": 0,
                "cross_filters_enabled": False, "timed_refresh_immune_slices": [], "expanded_slices": {}}
    dash = api.call("POST", "dashboard/", json={
        "dashboard_title": DASHBOARD, "slug": "kap-clinic-operations", "published": True,
        "position_json": json.dumps(position), "json_metadata": json.dumps(metadata)})
    dash_id = dash["id"]
    for chart_id in chart_ids:
        api.call("PUT", f"chart/{chart_id}", json={"dashboards": [dash_id]})
    return dash_id


# --- checks ---------------------------------------------------------------------------------------
def chart_data(api: Api, dash_id: int) -> dict[str, int]:
    """Every chart of the dashboard answers its saved query without error: title -> rows."""
    rows = {}
    for chart in api.call("GET", f"dashboard/{dash_id}/charts")["result"]:
        payload = api.call("GET", f"chart/{chart['id']}/data/")
        result = payload["result"][0]
        if result.get("error"):
            raise RuntimeError(f"chart {chart['slice_name']!r}: {result['error']}")
        rows[chart["slice_name"]] = result["rowcount"]
    return rows


def browser_session_cookie(url: str, password: str) -> str:
    http = requests.Session()
    page = http.get(f"{url}/login/", timeout=60).text
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page) or re.search(r'"csrf_token":\s*"([^"]+)"', page)
    data = {"username": "admin", "password": password}
    if token:
        data["csrf_token"] = token.group(1)
    http.post(f"{url}/login/", data=data, timeout=60, allow_redirects=True)
    cookie = http.cookies.get("session")
    if not cookie:
        raise RuntimeError("could not log in through the login form")
    return cookie


def render(url: str, dash_id: int, cookie: str, screenshot: Path, settle_s: float = 5,
           timeout_s: float = 300) -> list[str]:
    """Open the dashboard in headless Chromium (DevTools protocol); return console errors, save a PNG."""
    import websocket  # websocket-client, a Superset dependency

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise RuntimeError("chromium is missing: apt-get install chromium (.ci/run installs it)")
    port = free_port()
    profile = Path(tempfile.mkdtemp(prefix="kap-bi-chromium-"))
    proc = subprocess.Popen([browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                             "--disable-background-networking", "--disable-component-update", "--disable-sync",
                             f"--remote-debugging-port={port}", "--remote-allow-origins=*",
                             f"--user-data-dir={profile}", "--window-size=1600,2000", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ws_url = None
        for _ in range(60):
            try:
                pages = requests.get(f"http://127.0.0.1:{port}/json", timeout=2).json()
                ws_url = next(p["webSocketDebuggerUrl"] for p in pages if p.get("type") == "page")
                break
            except (requests.RequestException, StopIteration, ValueError):
                time.sleep(1)
        if ws_url is None:
            raise RuntimeError("chromium's DevTools endpoint did not come up")
        ws = websocket.create_connection(ws_url, timeout=120)
        errors: list[str] = []
        counter = [0]

        def send(method: str, **params) -> dict:
            counter[0] += 1
            my_id = counter[0]
            ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
            while True:
                msg = json.loads(ws.recv())
                _collect(msg, errors)
                if msg.get("id") == my_id:
                    return msg.get("result", {})

        for domain in ("Page", "Runtime", "Log", "Network"):
            send(f"{domain}.enable")
        send("Emulation.setDeviceMetricsOverride", width=1600, height=2000, deviceScaleFactor=1, mobile=False)
        send("Network.setCookie", name="session", value=cookie, domain="127.0.0.1", path="/")
        send("Network.setBlockedURLs", urls=list(TELEMETRY_URLS))
        send("Page.navigate", url=f"{url}/superset/dashboard/{dash_id}/")
        # wait until every chart has drawn (no "Waiting on ..." / loading box left), then settle
        deadline = time.monotonic() + timeout_s
        ws.settimeout(1)
        done_at = None
        while time.monotonic() < deadline and (done_at is None or time.monotonic() < done_at + settle_s):
            try:
                _collect(json.loads(ws.recv()), errors)
            except websocket.WebSocketTimeoutException:
                ws.settimeout(120)
                state = send("Runtime.evaluate", returnByValue=True, expression=(
                    "[document.querySelectorAll('.dashboard-component-chart-holder').length,"
                    " document.querySelectorAll('.dashboard-component-chart-holder table').length,"
                    " document.body.innerText.includes('Waiting on')]"))
                holders, tables, waiting = state.get("result", {}).get("value", [0, 0, True])
                if done_at is None and holders and tables >= holders and not waiting:
                    done_at = time.monotonic()
                ws.settimeout(1)
        ws.settimeout(120)
        if done_at is None:
            errors.append(f"the charts did not finish drawing within {timeout_s:.0f} s")
        shot = send("Page.captureScreenshot", format="png")
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        ws.close()
        return errors
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(profile, ignore_errors=True)


def _collect(msg: dict, errors: list[str]) -> None:
    method, params = msg.get("method"), msg.get("params", {})
    if method == "Runtime.consoleAPICalled" and params.get("type") == "error":
        errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
    elif method == "Runtime.exceptionThrown":
        errors.append(params.get("exceptionDetails", {}).get("text", "exception"))
    elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
        entry = params["entry"]
        if "scarf.sh" in entry.get("url", ""):   # the blocked usage pixel (TELEMETRY_URLS)
            return
        errors.append(f"{entry.get('text', '')} {entry.get('url', '')}".strip())


# --- commands -------------------------------------------------------------------------------------
def cmd_serve(args) -> None:
    home = bi_home()
    analytics = Path(args.analytics or Path(os.environ.get("KAP_HOME") or ROOT / "var") / "analytics.duckdb")
    if not analytics.exists():
        sys.exit(f"{analytics} does not exist: run `make demo` (or `kap run DIR`) first")
    with open(home.parent / "bi.log" if home.parent.exists() else os.devnull, "a") as log:
        print("setting up Superset (first start takes a minute)...", flush=True)
        setup(home, log)
        url = f"http://127.0.0.1:{args.port}"
        proc = start(home, args.port, log)
        try:
            wait_healthy(url, proc)
            dash_id = provision(Api(url, ensure_secrets(home)), analytics)
            print(f"Superset: {url}/superset/dashboard/{dash_id}/ - user admin, password in "
                  f"{home / 'admin_password'}", flush=True)
            proc.wait()
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=60)


def cmd_check(args) -> None:
    analytics = Path(args.analytics).resolve()
    work = Path(tempfile.mkdtemp(prefix="kap-bi-check-"))
    home = work / "bi"
    log_path = work / "superset.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "w") as log:
        password = setup(home, log)
        assert (home / "admin_password").stat().st_mode & 0o077 == 0, "admin password is not owner-only"
        proc = start(home, port, log)
        try:
            wait_healthy(url, proc)
            api = Api(url, password)                       # REST login
            dash_id = provision(api, analytics)
            db_id = api.find("database", "database_name", DATABASE)[0]
            db = api.call("GET", f"database/{db_id}/connection")["result"]   # the endpoint that shows extra
            assert json.loads(db["extra"])["engine_params"]["connect_args"]["read_only"] is True
            rows = chart_data(api, dash_id)
            assert len(rows) == len(CHARTS), rows
            for title, n in rows.items():
                print(f"chart ok: {title}: {n} rows", flush=True)
            errors = render(url, dash_id, browser_session_cookie(url, password), Path(args.screenshot))
            if errors:
                raise AssertionError("console errors while rendering the dashboard:\n  " + "\n  ".join(errors))
            print(f"rendered without console errors; screenshot {args.screenshot}", flush=True)
        except BaseException:
            print(f"Superset log: {log_path}", file=sys.stderr)
            raise
        finally:
            proc.terminate()
            proc.wait(timeout=60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="set up, start on 127.0.0.1, provision the dashboard, keep serving")
    serve.add_argument("--port", type=int, default=int(os.environ.get("KAP_BI_PORT", "8088")))
    serve.add_argument("--analytics", default=None, help="default: $KAP_HOME/analytics.duckdb")
    serve.set_defaults(func=cmd_serve)
    check = sub.add_parser("check", help="the dashboard test: fresh home, free port, REST, chart data, render")
    check.add_argument("--analytics", required=True)
    check.add_argument("--screenshot", default=str(ROOT / "docs" / "bi-dashboard.png"))
    check.set_defaults(func=cmd_check)
    args = ap.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
