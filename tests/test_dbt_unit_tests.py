"""The dbt unit tests (`unit_tests:` beside the models) run and pass, and there is one per rule."""
from __future__ import annotations

from kap import transform
from kap.settings import Settings
from kap.warehouse import writer

EXPECTED = {
    "current_events_resolve_latest_version_as_of",
    "one_dose_one_row_both_either_and_conflicting_sources",
    "dose_series_phase_gap_flags_and_integration_72h",
    "induction_completion_per_route",
    "baseline_response_remission_and_relapse_per_score",
    "preparation_before_first_dose_dropout_and_phase",
    "outcomes_time_to_response_durability_censoring_relapse",
    "noshow_and_late_cancel_rates",
    "monitoring_completeness_and_bp_rise",
    "phase_transitions_in_time_order",
    "integration_outcomes_bands_durability_boosters_and_small_cells",
    "missing_score_is_unknown_not_a_failure",
    "whole_ehr_history_is_not_kap_care",
    "screened_out_closed_discharged_and_dropped_out_episodes_are_not_active",
    "evening_dose_counts_on_the_clinics_local_day",
    "evening_appointments_count_on_the_clinics_local_day",
    "clinic_time_zone_from_fhir_then_setting_then_default",
    "care_continuity_indices_single_therapist_even_split_switch_and_too_few_sessions",
    "staff_weekly_sessions_chair_minutes_caseload_and_missed_appointments",
    "care_team_outcomes_bands_assessed_only_and_complementary_suppression",
    "integration_outcomes_complementary_suppression",
    "adverse_event_tags_only_within_72h_after_a_dose",
    "patient_merges_resolve_chains_to_the_last_survivor",
}


def test_every_dbt_unit_test_passes(tmp_path):
    settings = Settings.from_env(tmp_path / "home")
    with writer(settings):      # an empty event log: the schema only
        pass
    # unit tests need their parents' relations for column types: load the seeds, build the models
    transform.run_dbt(settings, ["seed"])
    transform.run_dbt(settings, ["run"])
    results = transform.run_dbt(settings, ["test", "--select", "test_type:unit"])
    outcome = {r.node.name: str(r.status) for r in results.results}
    assert set(outcome) == EXPECTED
    assert set(outcome.values()) == {"pass"}
