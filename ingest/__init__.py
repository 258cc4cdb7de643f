"""The ingestion library: landing files -> the append-only, bitemporal event log.

`landing` finds the files of a landing folder, `loader` reads each whole file in DuckDB SQL
through its source reader (`sources/`), keys patients (`identity`), and writes `raw.events`,
`raw.quarantine` and `raw.ingest_files` (`schema`) in one transaction per file. `events` and
`reasons` are the catalogues of event types and reason codes. Entry points take a DuckDB
connection and paths; the library knows nothing of KAP_HOME, Airflow, dbt or Great Expectations.
"""
