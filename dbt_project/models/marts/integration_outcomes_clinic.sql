{#- Grain: one row per clinic and cell (clinic_id, cell_key): integration_outcomes computed for
    each clinic on its own - its episodes only, its own margins, suppression and complementary
    suppression within the clinic (macro kap_integration_outcomes). Not in the network file:
    publish puts each clinic's rows, as its integration_outcomes, into analytics_clinic_<id>.duckdb,
    since filtering the network table by clinic is impossible (its cells mix clinics). -#}
{{ kap_integration_outcomes(by_clinic=true) }}
