{#- Grain: one row per cell (cell_key = episode_route:continuity_band) of PHQ-9 outcomes by
    continuity of therapy care and route, with margins ('all'). The clinic's claim that the care
    team shapes how deep and how lasting the benefit is, as a table an analyst can read off.
    Definitions (ours unless DOMAIN.md section 4 says otherwise):
    - population: assessed episodes - patient_outcomes.outcome_status 'assessed' (a PHQ-9 baseline
      and at least one PHQ-9 score after the first dose);
    - continuity_band: care_continuity.continuity_band (UPC >= 0.75 against below, with the
      episodes of fewer than 2 therapy sessions and of none apart); route: care_pathways.episode_route;
    - response / remission (DOMAIN 4): responders and remitters over assessed episodes;
      durability (DOMAIN 4, ours): patient_outcomes.durability_days of the responders, median and
      mean, with how many ended and how many are censored (still responding at the last score);
    - small cells (DOMAIN 6), as integration_outcomes: a cell of 5 or fewer distinct patients shows
      no numbers; durability is not shown when 5 or fewer distinct patients responded;
    - complementary suppression (ours): in every row (one route across bands) and every column (one
      band across routes, margins included) of the table, when exactly one cell is suppressed, the
      shown cell with the fewest patients is suppressed too, so a margin minus the shown cells
      cannot reveal it; applied to rows, columns, rows, columns. -#}
{{ kap_care_team_outcomes(by_clinic=false) }}
