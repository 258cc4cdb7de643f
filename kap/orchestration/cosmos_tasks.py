"""kap_nightly's dbt as one Airflow task per model, rendered by astronomer-cosmos (measured only).

kap_nightly runs dbt as one task per layer (kap.orchestration.tasks.dbt_task_group). This module
renders the same project as a Cosmos DbtTaskGroup instead, so bench/dbt_task_options.py can
measure the per-model options under the scheduler; it is chosen with KAP_DBT_TASKS=cosmos-model.
astronomer-cosmos is an optional extra (`uv sync --extra cosmos`), not part of the product.

The Cosmos options, from the environment (read at DAG parse time):

| variable | values (default first) | Cosmos setting |
|---|---|---|
| KAP_COSMOS_INVOCATION | dbt_runner, subprocess | ExecutionConfig.invocation_mode |
| KAP_COSMOS_LOAD | dbt_manifest, dbt_ls | RenderConfig.load_method |
| KAP_COSMOS_TESTS | after_each, build, after_all | RenderConfig.test_behavior |
| KAP_COSMOS_EXECUTION | local, watcher | ExecutionConfig.execution_mode |
| KAP_COSMOS_PARTIAL_PARSE | 1, 0 | ProjectConfig.partial_parse |
"""
from __future__ import annotations

import os
from typing import Any

from kap.orchestration.environment import POOL, environment_bin, manifest_path
from kap.settings import DBT_PROJECT_DIR, Settings

OPTIONS: dict[str, tuple[str, ...]] = {
    "KAP_COSMOS_INVOCATION": ("dbt_runner", "subprocess"),
    "KAP_COSMOS_LOAD": ("dbt_manifest", "dbt_ls"),
    "KAP_COSMOS_TESTS": ("after_each", "build", "after_all"),
    "KAP_COSMOS_EXECUTION": ("local", "watcher"),
    "KAP_COSMOS_PARTIAL_PARSE": ("1", "0"),
}


def option(name: str) -> str:
    """The value of one KAP_COSMOS_* variable, its default when unset; a clear error when unknown."""
    allowed = OPTIONS[name]
    value = os.environ.get(name, "").strip().lower() or allowed[0]
    if value not in allowed:
        raise ValueError(f"{name}={value!r}: expected one of {', '.join(allowed)}")
    return value


def _profile() -> tuple[str, str]:
    """Profile and target names, read from dbt_project.yml and profiles.yml."""
    import yaml

    profile = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())["profile"]
    profiles = yaml.safe_load((DBT_PROJECT_DIR / "profiles.yml").read_text())
    return profile, profiles[profile].get("target", "dev")


def cosmos_task_group(group_id: str, execution_timeout) -> Any:
    """A Cosmos DbtTaskGroup of the dbt project on this KAP_HOME's warehouse. Call inside a DAG.

    Every task runs in the one-slot warehouse pool (DuckDB allows one writer) and gets the DAG's
    default retries; unit tests are left out, as in the nightly layer build (they check the SQL,
    not the data). The profile is dbt_project/profiles.yml with KAP_WAREHOUSE set, as kap.transform
    does, and the same --vars as `kap.transform.parse`, so dbt's partial-parse state stays valid.
    """
    from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
    from cosmos.constants import ExecutionMode, InvocationMode, LoadMode, TestBehavior

    conf = Settings.from_env()
    load = LoadMode(option("KAP_COSMOS_LOAD"))
    manifest = manifest_path(conf)
    if load is LoadMode.DBT_MANIFEST and not manifest.exists():
        raise FileNotFoundError(
            f"dbt manifest {manifest} does not exist: every `kap airflow ...` command writes it "
            f"(kap.orchestration.environment.prepare) for KAP_HOME={conf.home}")
    invocation = InvocationMode(option("KAP_COSMOS_INVOCATION"))
    # The dbt executable only for a subprocess; Cosmos refuses one beside dbtRunner (in-process).
    dbt = {"dbt_executable_path": environment_bin() / "dbt"} if invocation is InvocationMode.SUBPROCESS else {}
    profile, target = _profile()
    execution = ExecutionMode(option("KAP_COSMOS_EXECUTION"))
    task_args: dict[str, Any] = {"pool": POOL, "pool_slots": 1, "execution_timeout": execution_timeout}
    setup_args = None
    if execution is ExecutionMode.WATCHER:
        # Only the producer (one `dbt build`) writes the warehouse; the per-model sensors only
        # watch it, and in the one-slot pool they would wait for the producer to finish.
        setup_args, task_args = task_args, {**task_args, "pool": "default_pool"}
    return DbtTaskGroup(
        group_id=group_id,
        project_config=ProjectConfig(
            dbt_project_path=DBT_PROJECT_DIR,
            manifest_path=manifest if load is LoadMode.DBT_MANIFEST else None,
            install_dbt_deps=False,
            env_vars={"KAP_WAREHOUSE": str(conf.warehouse)},
            dbt_vars={"as_of": None},
            partial_parse=option("KAP_COSMOS_PARTIAL_PARSE") == "1",
        ),
        profile_config=ProfileConfig(profile_name=profile, target_name=target,
                                     profiles_yml_filepath=DBT_PROJECT_DIR / "profiles.yml"),
        execution_config=ExecutionConfig(
            execution_mode=execution,
            invocation_mode=invocation,
            setup_operator_args=setup_args,
            **dbt,
        ),
        render_config=RenderConfig(
            load_method=load,
            test_behavior=TestBehavior(option("KAP_COSMOS_TESTS")),
            exclude=["resource_type:unit_test"],
            # A test that reads two models runs as its own task after both are built; inside
            # either model's task it would query a table that may not exist yet.
            should_detach_multiple_parents_tests=True,
            emit_datasets=False,
        ),
        operator_args=task_args,
    )
