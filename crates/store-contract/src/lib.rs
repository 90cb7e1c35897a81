//! # trunkline-store-contract
//!
//! The one contract suite every trunkline store adapter passes: the doc comments of the
//! ports in `trunkline_core::ports` (idempotency, what `None` means, atomicity across
//! instances, monotonic call status, claim semantics) written down as executable cases.
//!
//! Each case in [`cases`] is an async function taking a fresh, migrated store as
//! `Arc<dyn Store>` (one, [`cases::check_ready_reports_pending_migrations`], takes an
//! unmigrated one and the means to migrate it). A store crate runs all of them with one
//! line in `tests/contract.rs`:
//!
//! ```text
//! async fn fresh_store() -> Option<trunkline_store_contract::Harness> { /* … */ }
//! trunkline_store_contract::contract_tests!(fresh_store);
//! ```
//!
//! [`contract_tests!`] generates one `#[tokio::test(flavor = "multi_thread")]` per case, named
//! after the case, so a test runner lists and reports every case separately. The factory is
//! called once per test and returns a [`Harness`] around a store on a fresh, *unmigrated*
//! database (or `None` to skip, e.g. when no test database is configured); the harness
//! migrates it, runs the case, and then runs the factory's teardown even when the case fails.
//! The calling crate needs `tokio` (with the `macros` and `rt-multi-thread` features) as a
//! dependency.
//!
//! [`upgrade`] holds what the stores' upgrade tests share: rows as the last Twilio-only
//! release wrote them, and the assertions that the migrated store reads them back.

pub mod cases;
pub mod fixtures;
mod fleet_cases;
mod harness;
pub mod job_cases;
pub mod outbound_cases;
pub mod upgrade;
mod voice_url_cases;

pub use harness::{BoxFuture, Harness, MigrateFn};

/// Generate one `#[tokio::test(flavor = "multi_thread")]` per contract case.
///
/// `$factory` is anything callable with no argument that returns a future of
/// `Option<Harness>` (an `async fn` path or a closure). See the crate docs.
#[macro_export]
macro_rules! contract_tests {
    ($factory:expr) => {
        $crate::__contract_cases!(
            $factory;
            integration_get_put_replace_delete,
            integrations_are_isolated_between_customers,
            connection_round_trips_every_field,
            telnyx_integration_and_connection_round_trip,
            connection_save_updates_by_id_and_lists_oldest_first,
            connection_save_conflicts_on_a_second_row_for_the_same_number,
            connection_find_live_by_e164,
            lease_acquire_block_renew_release,
            lease_expired_takeover_and_lost_lease_cannot_touch_the_new_holder,
            lease_concurrent_acquisition_has_one_winner,
            lease_peek_sees_every_holder_between_two_reads,
            lease_unchanged_takes_a_never_taken_key_once,
            lease_unchanged_takes_a_free_lease_under_the_token_seen,
            lease_unchanged_refuses_a_lease_held_or_changed_since,
            lease_unchanged_concurrent_callers_have_one_winner,
            webhook_dedupe_sequential_and_last_event,
            webhook_dedupe_concurrent_has_one_winner,
            upsert_call_inserts_and_round_trips,
            upsert_call_merge_rules,
            upsert_call_concurrent_merges_into_one_row,
            record_join_records_claims_and_recognises_duplicates,
            record_join_concurrent_deliveries_have_one_claim_winner,
            record_join_racing_copies_of_one_event_are_duplicates,
            end_call_first_end_time_wins,
            recent_calls_newest_first_per_connection,
            claim_dispatch_concurrent_has_one_winner,
            claim_dispatch_after_complete_is_already_dispatched,
            claim_dispatch_expired_claim_can_be_won_again,
            complete_dispatch_by_a_non_holder_is_refused,
            fail_dispatch_then_reclaim,
            dispatches_due_lists_failed_and_expired_claims_oldest_first,
            end_call_cancels_a_pending_dispatch,
            claim_dispatch_refuses_an_ended_call,
            audit_append_and_list_newest_first_per_customer,
            fleet_lists_customers_and_connections_in_pages,
            fleet_checks_round_trip_and_replace,
            fleet_purchases_and_settings_round_trip,
            sealed_secrets_walk_in_id_order_and_replace_only_what_was_read,
            voice_webhook_secret_follows_the_current_integration,
            voice_binding_round_trip_replace_delete,
            voice_route_finds_every_owner_of_the_account_in_one_read,
        );
        $crate::__contract_cases!(
            $factory;
            outbound_routes_and_numbers_round_trip,
            outbound_call_idempotency_key_has_one_winner,
        );

        $crate::__job_cases!(
            $factory;
            job_round_trips_and_is_the_customers_own,
            job_claim_has_one_winner_and_an_expired_claim_is_taken_over,
            job_results_are_recorded_once_and_a_finished_job_is_never_claimed,
            job_cancel_queued_at_once_running_through_its_holder,
        );

        #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn check_ready_reports_pending_migrations() {
            if let Some(harness) = ($factory)().await {
                harness
                    .run_unmigrated($crate::cases::check_ready_reports_pending_migrations)
                    .await;
            }
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __contract_cases {
    ($factory:expr; $($case:ident),+ $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                if let Some(harness) = ($factory)().await {
                    harness.run($crate::cases::$case).await;
                }
            }
        )+
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __job_cases {
    ($factory:expr; $($case:ident),+ $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                if let Some(harness) = ($factory)().await {
                    harness.run($crate::job_cases::$case).await;
                }
            }
        )+
    };
}
