{#- Nightly data tests read what changed; full checks read everything (README: "Nightly and full checks").

    The generic tests on the staging views carry `where: "__kap_changed__"` (dbt_project.yml). In a
    night, that is a build where stg_raw__touched_patients was built in this build from a watermark
    (macros/incremental.sql), the row tests (not_null, accepted_values, expression_is_true) on a
    staging view read only the rows of the touched patients' records (record_patient_key in the
    set) and the rows that name no patient.
    A staging row changes only when its record arrives again, or when the patient's chart merge
    group changes (the set is closed over merge groups), or when the build fingerprint changes
    (a code, variable or time-zone change): then the set has no watermark and the tests read
    every row. They read every row too with var kap_checks = 'full' (`kap build --full-checks`,
    the DAG's weekly night), in an as-of build, on Spark, on relations without record_patient_key
    (sources, the log's own tables), and for uniqueness, which needs the whole column (a new key
    can repeat an old one). A failing test at severity error stops the models after it, so the
    watermark stays and the next night reads those rows again. -#}

{% macro default__get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') or '' -%}
    {%- set test_name = (model.get('test_metadata') or {}).get('name') -%}
    {%- set scope = none -%}
    {%- if '__kap_changed__' in where and test_name in kap_row_tests() and kap_touched_node_id() in model.depends_on.nodes -%}
        {%- set scope = kap_changed_scope(relation, ref('stg_raw__touched_patients')) -%}
    {%- endif -%}
    {%- set where = where | replace('__kap_changed__', '1 = 1') -%}
    {%- if scope is not none -%}
        {%- do return('(select * from ' ~ relation ~ ' where (record_patient_key in (' ~ scope
                      ~ ') or record_patient_key is null) and ' ~ where ~ ') dbt_subquery') -%}
    {%- elif where -%}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ where ~ ') dbt_subquery') -%}
    {%- endif -%}
    {%- do return(relation) -%}
{%- endmacro %}

{% macro kap_row_tests() -%}{{ return(['not_null', 'accepted_values', 'expression_is_true']) }}{%- endmacro %}

{% macro kap_touched_node_id() -%}{{ return('model.' ~ project_name ~ '.stg_raw__touched_patients') }}{%- endmacro %}

{#- Called by the row tests below while dbt parses them: a row test on a staging view then
    depends on the touched set, so that a build runs it after the set is rebuilt. (A ref() in
    get_where_subquery is not seen at parse time: the `where` config is applied after.) -#}
{% macro kap_changed_dependency(model) -%}
    {#- while parsing, `model` is the test's own relation, named after the test and the model it
        tests (not_null_stg_ehr__vitals_observation_id); the log's own stg_raw__* are left out -#}
    {%- set test_name = (model.identifier if model.identifier is defined else '') or '' -%}
    {%- if not execute and '_stg_' in test_name and '_stg_raw__' not in test_name -%}
        {%- do ref('stg_raw__touched_patients') -%}
    {%- endif -%}
{%- endmacro %}

{#- dbt's own row tests, unchanged but for that dependency (dbt does not render its built-in
    not_null at parse time, so it is declared here) -#}
{% test not_null(model, column_name) %}
{{- kap_changed_dependency(model) -}}
{{ adapter.dispatch('test_not_null', 'dbt')(model, column_name) }}
{% endtest %}

{% test accepted_values(model, column_name, values, quote=True) %}
{{- kap_changed_dependency(model) -}}
{{ adapter.dispatch('test_accepted_values', 'dbt')(model, column_name, values, quote) }}
{% endtest %}

{#- The touched patients (a subquery of the set) when this build's tests may read only the
    changed rows of `relation`, else none: the set is fresh only when it was built for the log as
    it is now (kap_touched_list, macros/incremental.sql); the staging model is looked up in the graph. -#}
{% macro kap_changed_scope(relation, touched) -%}
    {%- if not execute or var('kap_checks', 'nightly') == 'full' or target.type != 'duckdb' or kap_as_of() is not none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set node = graph.nodes.get('model.' ~ project_name ~ '.' ~ relation.identifier) -%}
    {%- if node is none or 'record_patient_key' not in node.raw_code -%}
        {{ return(none) }}
    {%- endif -%}
    {#- a build of selected models may not have built the set, nor ever have (a test selected
        with its model runs anyway): then there is no night to narrow to -#}
    {{ return(kap_touched_list(touched, 'touched_since is not null', inline=false)) }}
{%- endmacro %}
