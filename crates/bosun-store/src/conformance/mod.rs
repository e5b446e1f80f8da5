//! The behavioural suite every backend must pass (Quickwit's metastore pattern).
//!
//! Each case is a generic async function over a [`Ctx`]; [`store_conformance!`] stamps one
//! `#[tokio::test]` per case onto a backend, so a test is named
//! `conformance::<backend>::<case>`. A backend is done when the whole suite passes on it.

mod batches;
mod changes;
mod commands;
mod extremes;
mod fixtures;
mod instances;
mod integrity;
mod inventory;
mod leases;
mod ledger;
mod maintenance;
mod nodes;
mod policies;
mod pools;
pub(crate) mod soft_state;
mod usage;

use std::sync::Arc;

use bosun_core::FakeClock;

use crate::store::SharedStore;
use crate::testing::TestStore;

pub(crate) use fixtures::*;
pub(crate) use integrity::{Corruption, GHOST_RUN};

/// What every case gets: a fresh, empty store and the fake clock it reads.
pub(crate) struct Ctx {
    pub store: SharedStore,
    pub clock: Arc<FakeClock>,
    _test_store: TestStore,
}

impl Ctx {
    fn test_store(&self) -> &TestStore {
        &self._test_store
    }

    pub async fn open(backend: crate::Backend) -> Option<Ctx> {
        let test_store = TestStore::open(backend).await?;
        Some(Ctx { store: test_store.store.clone(), clock: test_store.clock.clone(), _test_store: test_store })
    }
}

macro_rules! conformance_cases {
    ($backend:expr; $($module:ident :: $case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(ctx) = crate::conformance::Ctx::open($backend).await else { return };
                crate::conformance::$module::$case(&ctx).await;
            }
        )+
    };
}

/// Stamps the whole suite onto a backend.
macro_rules! store_conformance {
    ($backend:expr) => {
        conformance_cases!($backend;
            leases::the_first_candidate_takes_a_new_lease_at_epoch_1,
            leases::a_held_lease_is_taken_only_when_observed_unchanged,
            leases::a_deposed_leader_is_fenced_and_writes_nothing,
            leases::a_released_lease_is_taken_at_once,
            leases::a_restarted_holder_takes_its_lease_back_at_the_next_epoch,
            leases::replicas_announce_themselves_and_old_ones_are_forgotten,
            integrity::integrity_reports_an_orphan_instance,
            integrity::integrity_reports_a_broken_revision_history,
            integrity::integrity_reports_an_illegal_state,
            integrity::integrity_reports_an_inventory_mismatch,
            integrity::integrity_reports_a_gap_in_the_change_sequence,
            integrity::retention_leaves_no_gap_for_the_check,
            nodes::create_then_get_round_trips_every_field,
            nodes::gpu_inventory_is_stored_beside_the_node,
            nodes::create_duplicate_is_already_exists,
            nodes::get_missing_is_not_found,
            nodes::update_bumps_revision_and_persists,
            nodes::remediation_step_round_trips,
            nodes::update_with_stale_revision_is_conflict_and_writes_nothing,
            nodes::update_missing_is_not_found,
            nodes::illegal_status_change_is_invalid_transition,
            nodes::legal_status_path_to_terminated,
            nodes::registered_at_cannot_change,
            nodes::invalid_field_is_rejected,
            nodes::delete_cascades_commands_and_history,
            nodes::delete_with_stale_revision_is_conflict,
            nodes::delete_of_linked_node_needs_explicit_unlink,
            nodes::update_never_touches_last_heartbeat,
            nodes::list_is_ordered_by_id,
            nodes::list_pages_neither_skip_nor_repeat,
            nodes::list_filters_by_status,
            nodes::list_filters_by_pool_provider_and_region,
            nodes::list_filters_by_label_equality,
            nodes::list_combines_filters,
            nodes::list_filters_by_health_and_id_text,
            nodes::list_by_recent_change_pages_newest_first,
            nodes::list_rejects_foreign_or_garbage_cursors,
            nodes::list_rejects_bad_page_sizes,
            nodes::pagination_under_concurrent_inserts,
            nodes::concurrent_compare_and_set_updaters_lose_nothing,
            nodes::concurrent_creates_of_one_id_have_one_winner,
            instances::create_then_get_round_trips,
            instances::duplicate_id_is_already_exists,
            instances::provider_instance_id_is_unique_per_provider,
            instances::lifecycle_is_enforced,
            instances::link_to_missing_node_is_not_found,
            instances::registration_links_instance_atomically,
            instances::list_filters,
            instances::instance_for_node_finds_by_link_id_or_provider_id,
            instances::delete_removes_and_records,
            commands::create_requires_existing_node,
            commands::create_then_get_with_first_event,
            commands::state_changes_and_redeliveries_add_events,
            commands::updates_without_state_change_add_no_event,
            commands::illegal_transition_is_rejected,
            commands::node_and_kind_cannot_change,
            commands::list_in_issue_order_with_state_filter,
            commands::list_by_node_and_kind,
            commands::events_of_missing_command_is_not_found,
            commands::custom_kind_round_trips,
            pools::create_get_update_delete,
            pools::invalid_spec_is_rejected,
            pools::status_round_trips,
            pools::list_is_sorted_by_name,
            policies::put_replace_and_delete,
            policies::expected_revision_is_checked,
            policies::invalid_document_is_rejected,
            batches::failed_batch_leaves_no_rows_and_no_change_records,
            batches::conflict_midway_rolls_back_earlier_writes,
            batches::outcomes_report_revisions_and_sequences,
            batches::same_record_twice_in_one_batch,
            batches::empty_batch_is_a_no_op,
            batches::concurrent_failing_batches_do_not_affect_others,
            changes::records_create_update_delete_with_actor_reason_and_snapshot,
            changes::sequence_is_strictly_increasing,
            changes::history_of_one_resource,
            changes::sequence_ranges_and_limits,
            changes::by_actor,
            changes::snapshots_exclude_soft_state,
            changes::time_comes_from_the_injected_clock,
            changes::concurrent_writers_leave_a_complete_ordered_log,
            changes::commits_of_every_writer_are_signalled,
            maintenance::retention_keeps_latest_state_of_live_resources,
            maintenance::retention_drops_old_history_of_deleted_resources,
            maintenance::retention_keeps_recent_changes,
            maintenance::retention_prunes_expired_samples,
            maintenance::health_history_is_newest_first_and_bounded,
            maintenance::health_report_for_missing_node_is_not_found,
            maintenance::bootstrap_logs_are_bounded_and_newest_first,
            maintenance::integrity_is_clean_after_a_mixed_workload,
            maintenance::counts_reflect_contents,
            maintenance::ping_and_close,
            soft_state::heartbeats_update_last_heartbeat,
            soft_state::heartbeats_never_move_backwards,
            soft_state::heartbeats_of_unknown_nodes_are_skipped,
            soft_state::duplicate_heartbeats_in_a_batch_keep_the_latest,
            soft_state::heartbeats_change_no_revision_and_write_no_change_record,
            soft_state::heartbeats_list_the_newest_per_node_in_pages,
            soft_state::metric_samples_round_trip_oldest_first,
            soft_state::metric_samples_are_bounded_per_node,
            soft_state::metric_samples_outside_the_window_are_not_returned,
            soft_state::metric_samples_of_unknown_nodes_are_skipped,
            soft_state::large_soft_state_batches,
            extremes::the_largest_storable_integers_round_trip_and_larger_ones_are_invalid,
            extremes::the_earliest_and_latest_times_round_trip_and_others_are_invalid,
            ledger::runs_round_trip_and_list_newest_first_with_filters,
            ledger::run_status_follows_the_run_lifecycle,
            ledger::run_events_are_numbered_without_gaps_per_run,
            ledger::artifacts_are_written_once_with_their_digest_and_bounded,
            ledger::approvals_are_decided_once,
            ledger::tools_calls_policies_and_runbooks_round_trip,
            ledger::audit_entries_are_numbered_without_gaps_and_filtered,
            ledger::retention_deletes_old_run_history_and_old_audit_entries_only,
            integrity::integrity_reports_gaps_in_the_audit_log_and_run_events,
            integrity::integrity_reports_llm_usage_of_a_missing_run,
            inventory::a_first_sync_creates_every_kind_and_reads_back,
            inventory::an_unchanged_sync_writes_no_record_but_moves_last_seen,
            inventory::a_changed_record_gets_a_revision_and_a_change_record,
            inventory::a_vanished_record_is_kept_as_gone_and_comes_back,
            inventory::a_failed_source_wipes_nothing_and_is_marked_stale,
            inventory::each_nodes_workloads_sync_on_their_own,
            inventory::what_the_store_cannot_hold_is_refused_and_nothing_is_written,
            inventory::inventory_lists_page_by_source_and_key,
            inventory::retention_prunes_old_sync_records_and_keeps_the_records,
            inventory::drift_reports_live_in_the_change_log_with_growing_revisions,
            inventory::lists_filter_by_labels_in_the_query,
            inventory::services_sync_as_the_records_of_a_config_source,
            usage::a_new_price_closes_the_open_one_and_prices_list_by_key,
            usage::usage_is_priced_from_the_price_in_effect_at_its_time,
            usage::an_unknown_model_is_kept_with_its_cost_unknown,
            usage::a_provider_request_id_is_recorded_once,
            usage::texts_keep_their_truncation_flags_and_runs_must_exist,
            usage::settings_change_by_compare_and_set,
            usage::usage_summaries_group_by_model_provider_run_and_actor,
            usage::every_backend_starts_with_the_same_prices,
        );
    };
}

/// Stamps the cases about the SQL databases themselves (triggers, views) onto an SQL
/// backend; memory has no SQL to refuse or query.
macro_rules! sql_conformance {
    ($backend:expr) => {
        conformance_cases!($backend;
            ledger::the_database_refuses_to_change_the_audit_log_and_run_events,
            ledger::the_ledger_views_return_what_the_data_implies,
            usage::the_usage_views_return_what_the_data_implies,
        );
    };
}

#[cfg(test)]
mod memory {
    store_conformance!(crate::Backend::Memory);
}

#[cfg(test)]
mod sqlite {
    store_conformance!(crate::Backend::Sqlite);
}

#[cfg(test)]
mod postgres {
    store_conformance!(crate::Backend::Postgres);
}

/// `conformance::sql::<backend>::<case>`: kept apart so every backend's main suite stays
/// the same list (`scripts/test` compares them, and these two with each other).
#[cfg(test)]
mod sql {
    mod sqlite {
        sql_conformance!(crate::Backend::Sqlite);
    }

    mod postgres {
        sql_conformance!(crate::Backend::Postgres);
    }
}
