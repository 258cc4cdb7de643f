{#- Grain: one row per clinic and cell (clinic_id, cell_key): care_team_outcomes computed for each
    clinic on its own - its assessed episodes only, its own margins, small-cell and complementary
    suppression within the clinic (macro kap_care_team_outcomes). Not in the network file: publish
    puts each clinic's rows, as its care_team_outcomes, into analytics_clinic_<id>.duckdb, since
    filtering the network table by clinic is impossible (its cells mix clinics). -#}
{{ kap_care_team_outcomes(by_clinic=true) }}
