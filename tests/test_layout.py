"""The layout's one-way arrows: dags/ -> kap -> ingest.

`ingest` is the ingestion library (landing files -> event log); `kap` is the product around it.
A library that imports its product, or a module that imports a higher layer, would make the road
a record travels unreadable from the folder names, so these tests pin the direction.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The library may use DuckDB and the standard library; the product's runtimes stay out of it.
PRODUCT_RUNTIMES = {"kap", "airflow", "dbt", "great_expectations", "matplotlib", "pandas", "click"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_importing_ingest_loads_no_kap_module():
    code = ("import sys, ingest, ingest.loader, ingest.landing, ingest.identity, ingest.schema, "
            "ingest.events, ingest.reasons, ingest.sources.fhir, ingest.sources.dosing, "
            "ingest.sources.notes; "
            "print(sorted(m for m in sys.modules if m == 'kap' or m.startswith('kap.')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_no_ingest_module_names_the_product_or_its_runtimes():
    offenders = {}
    for path in sorted((ROOT / "ingest").rglob("*.py")):
        bad = {m for m in _imports(path) if m.split(".")[0] in PRODUCT_RUNTIMES}
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert offenders == {}


def test_no_kap_module_imports_the_dag_files():
    offenders = {str(p.relative_to(ROOT)): sorted(m for m in _imports(p) if m.split(".")[0] in ("dags", "kap_nightly", "kap_replay"))
                 for p in sorted((ROOT / "kap").rglob("*.py"))}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_dag_files_stay_thin_and_import_only_kap_orchestration():
    for path in sorted((ROOT / "dags").glob("*.py")):
        project = {m for m in _imports(path) if m.split(".")[0] in ("kap", "ingest")}
        assert project and all(m.startswith("kap.orchestration") for m in project), (path.name, project)
        assert len(path.read_text().splitlines()) < 120, f"{path.name} holds logic; move it into kap/"


def _kap_edges(path: Path, modules: set[str]) -> set[str]:
    """The kap modules a file imports: `from kap.x import y` is kap.x.y when that is a module,
    else kap.x (a package's own __init__ is not counted as a dependency of its submodules)."""
    edges: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            edges.update(a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("kap"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                edges.add(sub if sub in modules else node.module)
    return edges & modules


def test_kap_modules_have_no_import_cycles():
    paths = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
             for p in (ROOT / "kap").rglob("*.py")}
    graph = {name: _kap_edges(path, set(paths)) for name, path in paths.items()}

    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        seen: set[str] = set()
        while stack:
            node, trail = stack.pop()
            for dep in graph[node]:
                if dep == start:
                    return trail + [dep]
                if dep not in seen:
                    seen.add(dep)
                    stack.append((dep, trail + [dep]))
        return None

    cycles = {name: c for name in graph if (c := cycle_from(name))}
    assert cycles == {}
