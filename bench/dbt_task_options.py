"""kap_nightly's dbt under the Airflow scheduler: one task per layer against one per model (Cosmos).

    UV_PROJECT_ENVIRONMENT=.venv-cosmos uv sync --frozen --extra cosmos
    .venv-cosmos/bin/python bench/dbt_task_options.py --work /tmp/kap-dbt-options
    .venv-cosmos/bin/python bench/dbt_task_options.py --variants layer,cosmos-runner-each --repeat 1

For one generated clinic (`kap generate --patients 60 --days 90 --seed 42 --fault-rate 0.01`, the
scheduled small clinic of bench/run_bench.py), each variant runs kap_nightly's full first night under `airflow
standalone` (scheduler, LocalExecutor, parallelism 2) in a fresh KAP_HOME: unpausing makes the
scheduler start the night by itself. Recorded per run: the night's wall seconds from queued to
end (as Airflow records them), every task's duration, the span of the dbt task group (first dbt
task start to last dbt task end), and the load average before and after.

Then, per variant, the DAG parse: a fresh interpreter imports Airflow and times
`DagBag(dag_folder=dags/)`, --parse-repeat times (the first parse of a dbt_ls variant runs `dbt ls`;
later ones may hit Cosmos's cache).

The variants (KAP_DBT_TASKS and KAP_COSMOS_* of kap.orchestration.cosmos_tasks) are listed by
--list. `layer` runs in --layer-python's environment (default .venv: without astronomer-cosmos,
as the product ships), the others in this interpreter's, which must have the cosmos extra.

Before each Airflow measurement the script waits, polling every 60 s, while a process whose command
line contains --wait-for (default run_bench.py) runs: another benchmark on the same cores would
distort both. Progress goes to stderr; results to --out (JSON), one entry per run, written after
each run so an interrupted session keeps what it measured.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

COSMOS_ENV = {
    # Cosmos keeps its partial-parse and dbt ls caches here (default /tmp/cosmos, shared).
    "AIRFLOW__COSMOS__CACHE_DIR": "{home}/cosmos",
    # Cosmos otherwise reports usage to its telemetry host from every task.
    "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
    # Cosmos asks for an OpenLineage namespace on import; there is no OpenLineage backend here.
    "AIRFLOW__OPENLINEAGE__NAMESPACE": "kap",
}


def _cosmos(tests: str, invocation: str | None = "dbt_runner", **more: str) -> dict[str, str]:
    """The environment of a per-model Cosmos variant (kap.orchestration.cosmos_tasks reads it)."""
    env = {"KAP_DBT_TASKS": "cosmos-model", "KAP_COSMOS_TESTS": tests, **more}
    if invocation:
        env["KAP_COSMOS_INVOCATION"] = invocation
    return env


# name -> (environment for the Airflow processes, what it is)
VARIANTS: dict[str, tuple[dict[str, str], str]] = {
    "layer": ({"KAP_DBT_TASKS": "layer"},
              "one PythonOperator per layer (staging, intermediate, marts): kap.transform.build, dbtRunner in-process"),
    "layer-cosmos-installed": ({"KAP_DBT_TASKS": "layer"},
                               "as layer, with astronomer-cosmos installed (its plugin loads in every Airflow process)"),
    "cosmos-runner-each": (_cosmos("after_each"),
                           "Cosmos per model, InvocationMode.DBT_RUNNER, TestBehavior.AFTER_EACH, LoadMode.DBT_MANIFEST"),
    "cosmos-subprocess-each": (_cosmos("after_each", "subprocess"),
                               "Cosmos per model, InvocationMode.SUBPROCESS, TestBehavior.AFTER_EACH, LoadMode.DBT_MANIFEST"),
    "cosmos-subprocess-build": (_cosmos("build", "subprocess"),
                                "Cosmos per model, InvocationMode.SUBPROCESS, TestBehavior.BUILD, LoadMode.DBT_MANIFEST"),
    "cosmos-runner-build": (_cosmos("build"),
                            "Cosmos per model, DBT_RUNNER, TestBehavior.BUILD (`dbt build` of the model and its tests)"),
    "cosmos-runner-all": (_cosmos("after_all"),
                          "Cosmos per model, DBT_RUNNER, TestBehavior.AFTER_ALL (one test task at the end)"),
    "cosmos-runner-build-noparse": (_cosmos("build", KAP_COSMOS_PARTIAL_PARSE="0"),
                                    "as cosmos-runner-build, partial parse off (every task parses the project)"),
    "cosmos-runner-build-dbtls": (_cosmos("build", KAP_COSMOS_LOAD="dbt_ls"),
                                  "as cosmos-runner-build, rendered with LoadMode.DBT_LS (dbt ls at parse, cached)"),
    "cosmos-watcher": (_cosmos("after_each", None, KAP_COSMOS_EXECUTION="watcher"),
                       "Cosmos ExecutionMode.WATCHER: one `dbt build` producer task, one sensor task per model"),
}
DEFAULT_VARIANTS = ("layer", "cosmos-runner-each", "cosmos-subprocess-each", "cosmos-runner-build",
                    "cosmos-runner-all")


def say(msg: str) -> None:
    print(f"[dbt-options {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def wait_while_running(pattern: str) -> None:
    """Sleep in 60 s steps while a process whose command line contains `pattern` runs."""
    if not pattern:
        return
    announced = False
    while True:
        found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
        found = [pid for pid in found if int(pid) != os.getpid()]
        if not found:
            return
        if not announced:
            say(f"waiting: {pattern} is running (pids {', '.join(found)}); polling every 60 s")
            announced = True
        time.sleep(60)


def variant_env(name: str, home: Path) -> dict[str, str]:
    env = dict(VARIANTS[name][0])
    if name != "layer":
        env.update({k: v.format(home=home) for k, v in COSMOS_ENV.items()})
    return env


def python_for(name: str, args) -> str:
    return args.layer_python if name == "layer" else sys.executable


# ---------------------------------------------------------------- steps (run in a child process)

def step_night(a: dict) -> dict:
    """kap_nightly's full first night under `airflow standalone` in a fresh KAP_HOME."""
    from kap.orchestration.standalone import StandaloneAirflow
    from kap.settings import Settings

    # SIGTERM ends the night through the context manager, so Airflow's processes stop with it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    home = Path(a["home"])
    shutil.rmtree(home, ignore_errors=True)
    settings = Settings(home=home.resolve())
    airflow = StandaloneAirflow(settings, parallelism=2,
                                extra_env={"KAP_LANDING": a["landing"], **a["env"]}, log_file=Path(a["log"]))
    out: dict = {"load_before": load()}
    t = time.perf_counter()
    with airflow:
        out["start_s"] = time.perf_counter() - t
        airflow.wait_for_dag("kap_nightly")
        airflow.unpause("kap_nightly")
        run = airflow.finished_run("kap_nightly", airflow.scheduled_run_id("kap_nightly"), timeout=a["timeout"])
    out.update({"load_after": load(), "seconds": run.seconds, "state": run.state,
                "tasks": [{k: ti.get(k) for k in ("task_id", "state", "duration", "start_date", "end_date",
                                                   "try_number")} for ti in run.task_instances]})
    return out


def step_parse(a: dict) -> dict:
    """Import Airflow, then time DagBag(dags/) in this fresh interpreter (the KAP_HOME is prepared)."""
    from kap.orchestration import environment
    from kap.settings import DAGS_DIR, Settings

    settings = Settings(home=Path(a["home"]))
    environment.apply(settings)
    os.environ.update(a["env"])
    t0 = time.perf_counter()
    from airflow.dag_processing.dagbag import DagBag
    t1 = time.perf_counter()
    bag = DagBag(dag_folder=str(DAGS_DIR))
    t2 = time.perf_counter()
    dag = bag.dags.get("kap_nightly")
    return {"airflow_import_s": t1 - t0, "dagbag_s": t2 - t1,
            "import_errors": {k: v[-2000:] for k, v in bag.import_errors.items()},
            "tasks": len(dag.tasks) if dag else None,
            "dbt_tasks": len([t for t in dag.tasks if t.task_id.startswith("dbt_build.")]) if dag else None}


STEPS = {"night": step_night, "parse": step_parse}


def child(python: str, step: str, a: dict, log: Path) -> dict:
    """Run one step in a fresh interpreter (`python`), its output to `log`; its JSON result."""
    log.parent.mkdir(parents=True, exist_ok=True)
    result = log.with_suffix(".json")
    result.unlink(missing_ok=True)
    cmd = [python, str(Path(__file__).resolve()), "--_step", step, "--_args", json.dumps(a),
           "--_result", str(result)]
    with open(log, "w") as out:
        code = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT).returncode
    if code != 0 or not result.exists():
        tail = log.read_text(errors="replace")[-3000:]
        return {"error": f"exit {code}", "log_tail": tail}
    return json.loads(result.read_text())


# ---------------------------------------------------------------- driver

def generate(landing: Path, a) -> None:
    made = json.dumps([a.patients, a.days, a.seed, a.fault_rate])
    if (landing / ".complete").exists() and (landing / ".complete").read_text() == made:
        return
    say(f"generating {a.patients} patients x {a.days} days (seed {a.seed}, fault rate {a.fault_rate}) into {landing}")
    shutil.rmtree(landing, ignore_errors=True)
    subprocess.run([str(Path(a.layer_python).parent / "kap"), "generate", "--out", str(landing),
                    "--patients", str(a.patients), "--days", str(a.days), "--seed", str(a.seed),
                    "--fault-rate", str(a.fault_rate)],
                   check=True, stdout=subprocess.DEVNULL)
    (landing / ".complete").write_text(made)


def dbt_figures(tasks: list[dict]) -> dict:
    """Count, median duration and span of the dbt task group's task instances."""
    import datetime as dt

    dbt = [t for t in tasks if t["task_id"].startswith("dbt_build.")]
    if not dbt:
        return {}
    stamps = [(dt.datetime.fromisoformat(t["start_date"].replace("Z", "+00:00")),
               dt.datetime.fromisoformat(t["end_date"].replace("Z", "+00:00")))
              for t in dbt if t.get("start_date") and t.get("end_date")]
    durations = [float(t["duration"] or 0) for t in dbt]
    return {"dbt_tasks": len(dbt), "dbt_median_s": statistics.median(durations),
            "dbt_sum_s": sum(durations), "dbt_max_s": max(durations),
            "dbt_span_s": (max(e for _, e in stamps) - min(s for s, _ in stamps)).total_seconds() if stamps else None,
            "tasks": len(tasks)}


def table(results: dict) -> str:
    """The measured runs and parses as a Markdown table, one row per variant, in measured order."""
    names = list(dict.fromkeys([r["variant"] for r in results["runs"]] + [r["variant"] for r in results["parses"]]))
    rows = ["| variant | tasks (dbt) | full night s, each run | median dbt task s | dbt group span s | "
            "DagBag parse s, each | load before -> after | state |",
            "|---|---:|---:|---:|---:|---:|---|---|"]
    for name in names:
        runs = [r for r in results["runs"] if r["variant"] == name]
        ok = [r for r in runs if "error" not in r]
        parses = [r for r in results["parses"] if r["variant"] == name and "error" not in r]
        figures = [r["figures"] for r in ok if r.get("figures")]
        tasks = ", ".join(sorted({f"{f['tasks']} ({f['dbt_tasks']})" for f in figures})) or "-"
        state = ", ".join(r.get("state") or r.get("error", "?") for r in runs) or "-"
        rows.append("| " + " | ".join([
            name, tasks,
            ", ".join(f"{r['seconds']:.0f}" for r in ok) or "-",
            ", ".join(f"{f['dbt_median_s']:.1f}" for f in figures) or "-",
            ", ".join(f"{f['dbt_span_s']:.0f}" for f in figures if f.get("dbt_span_s")) or "-",
            ", ".join(f"{r['dagbag_s']:.2f}" for r in parses) or "-",
            "; ".join(f"{r['load_before']} -> {r['load_after']}" for r in ok) or "-",
            state]) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                   help="comma-separated variant names (see --list); default %(default)s")
    p.add_argument("--list", action="store_true", help="print the variants and exit")
    p.add_argument("--table", action="store_true", help="print the results in --out as a Markdown table and exit")
    p.add_argument("--repeat", type=int, default=2, help="full nights per variant (default 2)")
    p.add_argument("--parse-repeat", type=int, default=3, help="DagBag parses per variant (default 3)")
    p.add_argument("--no-nights", action="store_true", help="only the DAG parse figures (needs a previous night's KAP_HOME)")
    p.add_argument("--patients", type=int, default=60)
    p.add_argument("--days", type=int, default=90)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--fault-rate", type=float, default=0.01, help="as bench/run_bench.py (default %(default)s)")
    p.add_argument("--work", type=Path, default=Path("/tmp/kap-dbt-options"), help="work folder (default %(default)s)")
    p.add_argument("--out", type=Path, default=None, help="results JSON (default WORK/results.json)")
    p.add_argument("--layer-python", default=str(ROOT / ".venv" / "bin" / "python"),
                   help="interpreter of the `layer` variant (default .venv, without Cosmos)")
    p.add_argument("--wait-for", default="run_bench.py",
                   help="wait while a process with this in its command line runs ('' = never wait)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds one night may take")
    p.add_argument("--_step", help=argparse.SUPPRESS)
    p.add_argument("--_args", help=argparse.SUPPRESS)
    p.add_argument("--_result", help=argparse.SUPPRESS)
    a = p.parse_args(argv)

    if a._step:
        Path(a._result).write_text(json.dumps(STEPS[a._step](json.loads(a._args)), default=str))
        return 0
    if a.list:
        for name, (env, what) in VARIANTS.items():
            print(f"{name:28} {what}\n{'':28} {' '.join(f'{k}={v}' for k, v in env.items())}")
        return 0
    out_path = a.out or a.work / "results.json"
    if a.table:
        print(table(json.loads(out_path.read_text())))
        return 0
    names = [n.strip() for n in a.variants.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        p.error(f"unknown variant(s) {', '.join(unknown)}; see --list")

    a.work.mkdir(parents=True, exist_ok=True)
    results = json.loads(out_path.read_text()) if out_path.exists() else {"runs": [], "parses": []}
    landing = a.work / "landing"
    generate(landing, a)

    def save() -> None:
        out_path.write_text(json.dumps(results, indent=1, default=str))

    for name in names:
        python = python_for(name, a)
        last_home = None
        done = sum(1 for r in results["runs"] if r["variant"] == name)   # from an earlier invocation
        for k in range(done, done + (0 if a.no_nights else a.repeat)):
            wait_while_running(a.wait_for)
            home = a.work / f"{name}-{k}" / "home"
            say(f"{name}: full night {k + 1} (load {load()})")
            t = time.perf_counter()
            night = child(python, "night", {"home": str(home), "landing": str(landing),
                                            "env": variant_env(name, home), "timeout": a.timeout,
                                            "log": str(home.parent / "airflow.log")}, home.parent / "night.log")
            night.update({"variant": name, "run": k + 1, "harness_s": time.perf_counter() - t,
                          "figures": dbt_figures(night.get("tasks", []))})
            results["runs"].append(night)
            save()
            if "error" in night:
                say(f"  {name} failed: {night['error']}\n{night['log_tail'][-1500:]}")
                break
            f = night["figures"]
            say(f"  {night['state']}: {night['seconds']:.1f} s, {f.get('tasks')} tasks, {f.get('dbt_tasks')} dbt "
                f"(median {f.get('dbt_median_s', 0):.1f} s, span {f.get('dbt_span_s') or 0:.1f} s), "
                f"load {night['load_before']} -> {night['load_after']}")
            last_home = home
        # the variant's last night's KAP_HOME, else any measured one (the DAG parse reads only
        # its Airflow DB and dbt manifest)
        parse_home = (last_home or max(a.work.glob(f"{name}-*/home"), default=None)
                      or max(a.work.glob("*-*/home/airflow/airflow.db"), default=Path("/")).parent.parent)
        if parse_home == Path("/"):
            parse_home = None
        if parse_home is None:
            say(f"{name}: no KAP_HOME with a prepared Airflow DB to time the DAG parse in; skipped")
            continue
        for k in range(a.parse_repeat):
            wait_while_running(a.wait_for)
            parsed = child(python, "parse", {"home": str(parse_home), "env": variant_env(name, parse_home)},
                           a.work / f"{name}-parse{len(results['parses'])}.log")
            parsed.update({"variant": name, "run": k + 1, "load": load(), "home": str(parse_home)})
            results["parses"].append(parsed)
            save()
            if "error" in parsed:
                say(f"  {name} parse failed: {parsed['error']}\n{parsed['log_tail'][-1500:]}")
                break
            say(f"  {name} DagBag parse {k + 1}: {parsed['dagbag_s']:.2f} s ({parsed['tasks']} tasks, "
                f"{parsed['dbt_tasks']} dbt; import errors {len(parsed['import_errors'])})")
    say(f"results in {out_path}\n{table(results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
