{#- The DuckDB resources dbt's connection runs with (memory_limit, threads), as the profile set
    them from KAP_DUCKDB_MEMORY_LIMIT and KAP_DUCKDB_THREADS:
    `dbt run-operation kap_log_resources` prints them. -#}
{% macro kap_log_resources() %}
  {% set row = run_query("select current_setting('memory_limit'), current_setting('threads')").rows[0] %}
  {{ log("duckdb resources: memory_limit=" ~ row[0] ~ " threads=" ~ row[1], info=True) }}
{% endmacro %}
