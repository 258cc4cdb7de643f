"""generate -> ingest -> dbt build on ~200 patients: every mart is filled and sane."""
from __future__ import annotations

import duckdb
import pytest

from kap import transform
from kap.settings import Settings

MARTS = ("care_pathways", "pathway_transitions", "dosing_sessions", "therapy_sessions", "assessments",
         "patient_outcomes", "adherence_patient", "adherence_weekly", "dosing_safety", "clinic_daily",
         "integration_outcomes", "care_team", "care_continuity", "staff_weekly", "care_team_outcomes")


@pytest.mark.slow
def test_generated_clinic_builds_sane_marts(tmp_path):
    from kap.generator import generate
    from kap.pipeline import step_ingest

    settings = Settings.from_env(tmp_path / "home")
    generate(tmp_path / "landing", patients=200, days=365, seed=11, fault_rate=0.02)
    step_ingest(tmp_path / "landing", settings)
    transform.build(settings)

    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        def one(sql: str):
            return con.execute(sql).fetchall()[0]

        for mart in MARTS:
            assert one(f"select count(*) from marts.{mart}")[0] > 0, mart
        patients, episodes = one("select count(distinct patient_key), count(*) from marts.care_pathways")
        assert 150 <= patients <= 200 and episodes >= patients
        # one dose, one row: a dosing-log row and an EHR administration never both stand alone
        # for the same patient and route with starts within 12 hours
        assert one("""
            select count(*) from marts.dosing_sessions l join marts.dosing_sessions e
              on l.patient_key = e.patient_key and l.route = e.route
             and e.start_at between l.start_at - interval 12 hour and l.start_at + interval 12 hour
            where l.source_match = 'dosing_log_only' and e.source_match = 'ehr_only'""")[0] == 0
        # small cells: a suppressed cell shows no numbers
        assert one("""select count(*) from marts.integration_outcomes
                      where is_suppressed and (patients is not null or response_rate is not null
                                               or mean_durability_days is not null)""")[0] == 0
        assert one("select count(*) from marts.dosing_sessions where episode_key is null")[0] == 0
        doses_in_pathways, doses = one(
            "select (select sum(doses_total) from marts.care_pathways), count(*) from marts.dosing_sessions")
        assert doses_in_pathways == doses
        # rates and shares are proportions; induction completion happens for some, not all
        assert one("""select count(*) from marts.adherence_patient
                      where integration_72h_share not between 0 and 1 or noshow_rate not between 0 and 1
                         or late_cancel_rate not between 0 and 1""")[0] == 0
        completed = one("select avg(case when is_induction_completed then 1.0 else 0 end) "
                        "from marts.care_pathways where doses_total > 0")[0]
        assert 0 < completed < 1
        # outcomes: responders exist; durability is never negative; censoring only for responders
        assert one("select count(*) from marts.patient_outcomes where is_responder")[0] > 0
        assert one("""select count(*) from marts.patient_outcomes
                      where durability_days < 0 or (is_censored is not null and not is_responder)""")[0] == 0
        assert one("select count(*) from marts.dosing_safety where bp_readings not between 0 and 3")[0] == 0
        # the care team: one continuity row per episode, at most one usual therapist, indices in
        # range and COC only from 2 sessions, some switches but mostly one therapist
        assert one("select (select count(*) from marts.care_continuity), (select count(*) from marts.care_pathways)") \
            == one("select count(*), count(*) from marts.care_pathways")
        assert one("""select count(*) from (select episode_key from marts.care_team where is_usual_therapist
                      group by episode_key having count(*) > 1)""")[0] == 0
        assert one("""select count(*) from marts.care_continuity
                      where upc_index not between 0 and 1 or coc_index not between 0 and 1
                         or (coc_index is not null and therapy_sessions < 2)
                         or (usual_therapist_id is null) <> (therapy_sessions = 0)""")[0] == 0
        low, high = one("""select count(*) filter (where continuity_band = 'upc_under_75'),
                                  count(*) filter (where continuity_band = 'upc_75_plus') from marts.care_continuity""")
        assert 0 < low < high
        assert one("""select count(*) from marts.care_team_outcomes
                      where is_suppressed and (patients is not null or response_rate is not null
                                               or median_durability_days is not null)""")[0] == 0
        assert one("select count(*) from marts.staff_weekly where active_caseload < 0 or chair_minutes < 0")[0] == 0
        # (nearly) every dose has its supervising clinician on the care team, none twice
        supervised = one("select sum(dosing_sessions_supervised) from marts.staff_weekly")[0]
        assert 0.95 * doses <= supervised <= doses
        phases = {r[0] for r in con.execute("select distinct current_phase from marts.care_pathways").fetchall()}
        assert {"induction", "discharged"} <= phases
    finally:
        con.close()
