{#- Grain: one row per cell (cell_key = episode_route:integration_band) of PHQ-9 outcomes by
    integration adherence and route, with margins ('all'). The seeds' central claim - integration
    and the care team extend the benefit of ketamine - as an analysis an analyst can read off.
    Definitions (ours unless DOMAIN.md section 4 says otherwise):
    - population: episodes with at least one dose whose PHQ-9 outcome_status is 'assessed' (a
      baseline and at least one score after the first dose) with a baseline > 0 (patient_outcomes,
      instrument phq9) - "evaluable episodes"; rates use them as the denominator;
    - integration adherence: doses followed by an attended integration session within 72 h, over
      the episode's doses (DOMAIN 4; adherence_patient); band under_50 (< 50 %), 50_to_80
      (50 % to < 80 %), 80_plus (>= 80 %), compared in integers so 0.8 is exact;
    - route: the episode route (route of dose 1, care_pathways);
    - response rate: responders / evaluable (assessed) episodes; durability: patient_outcomes.durability_days
      of the responders, mean and median, with how many ended (a later non-responding score) and how
      many are censored (still responding at the last score: durability is a lower bound there);
    - boosters per month: maintenance doses / months of follow-up (first dose date to discharge,
      closure, dropout or now, the clinic's local days; month = 30.4375 days);
    - small cells (DOMAIN 6): a cell of 5 or fewer distinct patients shows no numbers
      (is_suppressed); durability figures are computed on responders and are not shown when 5 or
      fewer distinct patients responded, or the cell is suppressed (is_durability_suppressed);
    - complementary suppression (ours, macro kap_complementary_suppression): each route's row and
      each band's column, with its 'all' margin, is a line whose margin is the sum of its cells;
      a line with exactly one suppressed entry also suppresses its smallest shown cell (fewest
      patients, then cell_key), round after round, so no suppressed cell is a margin minus shown
      cells. The same for the durability figures (responding patients). -#}
{{ kap_integration_outcomes(by_clinic=false) }}
