"""The KAP pipeline product around the `ingest` library: settings, the warehouse's single writer,
the pipeline steps and their Airflow callables, the dbt runner, the quality gate, publish, the run
report, the summary, generated docs and the sample-clinic generator. Console script: `kap`."""
