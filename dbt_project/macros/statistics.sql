{#- Aggregates dbt-core has no cross-database macro for. Dispatched (DESIGN.md section 3): the
    default is ANSI SQL (ordered-set aggregate), which DuckDB, Postgres and Spark >= 3.3 accept;
    an adapter without it (Trino: approx_percentile) supplies its own `<adapter>__kap_median`. -#}
{% macro kap_median(expr) -%}
    {{ return(adapter.dispatch('kap_median', 'kap')(expr)) }}
{%- endmacro %}
{% macro default__kap_median(expr) -%}
    percentile_cont(0.5) within group (order by {{ expr }})
{%- endmacro %}

{#- Small-cell suppression (DOMAIN.md section 6, OHDSI Achilles default): a count of 5 or fewer
    people is not shown. `kap_small_cell_max()` is that 5; `kap_suppress(value, n)` shows value
    only when the population n it is computed on is larger. -#}
{% macro kap_small_cell_max() -%}
    {{ return(var('small_cell_max', 5)) }}
{%- endmacro %}
{% macro kap_suppress(value_expr, n_expr) -%}
    case when {{ n_expr }} > {{ kap_small_cell_max() }} then {{ value_expr }} end
{%- endmacro %}

{#- `value` unless the boolean `hidden_expr` holds (then NULL): for cells suppressed by a rule. -#}
{% macro kap_unless(hidden_expr, value_expr) -%}
    case when not {{ hidden_expr }} then {{ value_expr }} end
{%- endmacro %}

{#- (ours) Complementary suppression of a two-way table with margins. `relation` holds one row per
    cell with columns row_col, col_col (the margin rows/columns labelled `margin`, e.g. 'all'),
    `key_col` (unique), `size_col` (the population the small-cell rule looks at) and `hidden_col`
    (true where the cell is suppressed on its own: <= 5 people); `group_col`, when given, splits
    the relation into separate tables (one per clinic).
    Every row of the table (one row_col value, its cells plus its margin) and every column (one
    col_col value, likewise) is a line whose margin is the sum of its cells: a line with exactly
    one hidden entry gives it away by subtraction. So, round after round, each such line hides
    one more entry: its smallest shown cell (by size, then key; the margin only when no cell is
    left), until no line has exactly one hidden entry (`rounds` rounds: enough for the tables
    here, and the unit tests check that fixed point). Returns a select of key_col and
    is_hidden. -#}
{% macro kap_complementary_suppression(relation, key_col, row_col, col_col, size_col, hidden_col, margin="'all'", rounds=6, group_col=none) -%}
    {{ return(adapter.dispatch('kap_complementary_suppression', 'kap')(relation, key_col, row_col, col_col, size_col,
                                                                      hidden_col, margin, rounds, group_col)) }}
{%- endmacro %}
{% macro duckdb__kap_complementary_suppression(relation, key_col, row_col, col_col, size_col, hidden_col, margin, rounds, group_col) -%}
    with supp_0 as (
        select {{ key_col }} as cell, {{ group_col or "''" }} as g, {{ row_col }} as r, {{ col_col }} as c,
               {{ size_col }} as n, {{ hidden_col }} as is_hidden
        from {{ relation }}
    ),
    {%- for i in range(rounds) %}
    {%- set prev = 'supp_' ~ i %}
    picks_{{ i }} as (
        {%- for line_col, other_col in [('r', 'c'), ('c', 'r')] %}
        select cell from (
            select p.cell,
                   row_number() over (partition by p.g, p.{{ line_col }}
                                      order by case when p.{{ other_col }} = {{ margin }} then 1 else 0 end,
                                               p.n, p.cell) as rn
            from {{ prev }} as p
            inner join (select g, {{ line_col }} as line from {{ prev }} group by g, {{ line_col }}
                        having sum(case when is_hidden then 1 else 0 end) = 1) as l
                on l.g = p.g and l.line = p.{{ line_col }}
            where not p.is_hidden
        ) as ranked where rn = 1
        {% if not loop.last %}union all{% endif %}
        {%- endfor %}
    ),
    supp_{{ i + 1 }} as (
        select s.cell, s.g, s.r, s.c, s.n,
               s.is_hidden or s.cell in (select cell from picks_{{ i }}) as is_hidden
        from {{ prev }} as s
    ){% if not loop.last %},{% endif %}
    {%- endfor %}
    select cell as {{ key_col }}, is_hidden from supp_{{ rounds }}
{%- endmacro %}

{#- Spark: the same rounds, each reading the previous round once. Spark expands a CTE at every
    place it is named, and the form above names the previous round five times per round (5^6
    copies of the table after six rounds: the build never ends). Here one pass of window functions
    per round finds, for every row (g, r) and column (g, c) line, its count of hidden entries and
    its first shown entry in the same order (margin last, then size, then key): the same picks. -#}
{% macro spark__kap_complementary_suppression(relation, key_col, row_col, col_col, size_col, hidden_col, margin, rounds, group_col) -%}
    {%- set ns = namespace(prev="(select " ~ key_col ~ " as cell, " ~ (group_col or "''") ~ " as g, " ~ row_col
                                 ~ " as r, " ~ col_col ~ " as c, " ~ size_col ~ " as n, " ~ hidden_col
                                 ~ " as is_hidden from " ~ relation ~ ")") -%}
    {%- for i in range(rounds) -%}
        {%- set lines -%}
        (select p.*,
            {%- for line_col, other_col in [('r', 'c'), ('c', 'r')] %}
            sum(case when is_hidden then 1 else 0 end) over (partition by g, {{ line_col }}) as hidden_in_{{ line_col }},
            row_number() over (partition by g, {{ line_col }}
                               order by case when is_hidden then 1 else 0 end,
                                        case when {{ other_col }} = {{ margin }} then 1 else 0 end, n, cell) as rank_in_{{ line_col }}
            {%- if not loop.last %},{% endif %}
            {%- endfor %}
         from {{ ns.prev }} as p)
        {%- endset -%}
        {%- set ns.prev = "(select cell, g, r, c, n, is_hidden or (hidden_in_r = 1 and rank_in_r = 1) "
                          ~ "or (hidden_in_c = 1 and rank_in_c = 1) as is_hidden from " ~ lines ~ " as round_" ~ i ~ ")" -%}
    {%- endfor %}
    select cell as {{ key_col }}, is_hidden from {{ ns.prev }} as supp_{{ rounds }}
{%- endmacro %}
