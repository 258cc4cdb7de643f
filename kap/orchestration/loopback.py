"""`kap airflow standalone` (`make ui`): Airflow standalone with nothing listening beyond loopback.

Airflow 3.3's log servers (the scheduler's for LocalExecutor, port 8793, and the triggerer's,
8794) bind every interface: `airflow.utils.serve_logs.core.serve_logs` passes `host=""` to
uvicorn, and no setting changes that. They serve task logs to an API server on another machine;
here the API server runs on the same machine and reads the log files under AIRFLOW_HOME itself.
So standalone runs the scheduler and the triggerer with `--skip-serve-logs`: the log servers are
not started at all. The API server binds AIRFLOW__API__HOST (127.0.0.1, environment.py) and the
scheduler's health-check server stays off (and would bind 127.0.0.1).
"""
from __future__ import annotations

#: Airflow components that start a log server on every interface unless told to skip it.
SKIP_LOG_SERVER = ("scheduler", "triggerer")


def command_for(command: list[str]) -> list[str]:
    """The component's command line as standalone should run it here."""
    if command and command[0] in SKIP_LOG_SERVER and "--skip-serve-logs" not in command:
        return [*command, "--skip-serve-logs"]
    return list(command)


def main() -> None:
    """Run Airflow's standalone command, its scheduler and triggerer without log servers."""
    from airflow.cli.commands import standalone_command

    base = standalone_command.SubCommand

    class LoopbackSubCommand(base):
        def __init__(self, parent, name: str, command: list[str], env: dict[str, str]):
            super().__init__(parent, name, command_for(command), env)

    standalone_command.SubCommand = LoopbackSubCommand
    standalone_command.StandaloneCommand().run()


if __name__ == "__main__":
    main()
