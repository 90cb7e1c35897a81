//! The call intake's ports (`IntegrationStore`, `ConnectionStore`, `LeaseStore`,
//! `CallStore`, `AuditLog`, `StoreHealth`) written once for both backends.
//!
//! Each macro expands into a backend's `store` module and needs in scope there: the
//! `diesel::table!`s of `crate::schema`, the row types of [`rows!`](crate::rows!), `enc`
//! (one of [`encoding`](crate::encoding)'s modules), `error::db` (the backend's mapping of
//! diesel errors), `$store::conn(&self)`, which hands out a pooled connection that
//! diesel-async's `RunQueryDsl` runs on, and `$store::write_conn(&self)`, the same for a
//! method that writes (SQLite's writers take a write turn, one at a time; PostgreSQL's are
//! any pooled connection). A port whose statements differ per dialect takes
//! the backend's own methods in braces and adds the ones that read the same.

/// `IntegrationStore`, `ConnectionStore` and `AuditLog`: diesel's query builder only, the
/// same for both backends.
#[macro_export]
macro_rules! catalog_ports {
    ($store:ty) => {
        const _: () = {
            use diesel::prelude::*;
            use diesel::upsert::excluded;
            use diesel_async::RunQueryDsl;
            use trunkline_core::model::{AuditEvent, Integration, NumberConnection};
            use trunkline_core::ports::{AuditLog, ConnectionStore, IntegrationStore, StoreError};
            use trunkline_core::{CarrierNumberId, ConnectionId, CustomerId, E164, ProviderKind};
            use $crate::codec;

            #[async_trait::async_trait]
            impl IntegrationStore for $store {
                async fn get_integration(
                    &self,
                    customer: &CustomerId,
                    provider: ProviderKind,
                ) -> Result<Option<Integration>, StoreError> {
                    let mut conn = self.conn().await?;
                    integrations::table
                        .filter(integrations::customer_id.eq(customer.as_str()))
                        .filter(integrations::provider.eq(provider.as_str()))
                        .select(IntegrationRow::as_select())
                        .first(&mut conn)
                        .await
                        .optional()
                        .map_err(error::db)?
                        .map(IntegrationRow::into_domain)
                        .transpose()
                }

                async fn put_integration(
                    &self,
                    integration: &Integration,
                ) -> Result<(), StoreError> {
                    let row = IntegrationRow::from_domain(integration);
                    let mut conn = self.write_conn().await?;
                    diesel::insert_into(integrations::table)
                        .values(&row)
                        .on_conflict((integrations::customer_id, integrations::provider))
                        .do_update()
                        .set((
                            integrations::id.eq(excluded(integrations::id)),
                            integrations::account_id.eq(excluded(integrations::account_id)),
                            integrations::key_id.eq(excluded(integrations::key_id)),
                            integrations::sealed_secret.eq(excluded(integrations::sealed_secret)),
                            integrations::status.eq(excluded(integrations::status)),
                            integrations::created_at.eq(excluded(integrations::created_at)),
                            integrations::updated_at.eq(excluded(integrations::updated_at)),
                        ))
                        .execute(&mut conn)
                        .await
                        .map_err(error::db)?;
                    Ok(())
                }

                async fn delete_integration(
                    &self,
                    customer: &CustomerId,
                    provider: ProviderKind,
                ) -> Result<bool, StoreError> {
                    let mut conn = self.write_conn().await?;
                    let deleted = diesel::delete(
                        integrations::table
                            .filter(integrations::customer_id.eq(customer.as_str()))
                            .filter(integrations::provider.eq(provider.as_str())),
                    )
                    .execute(&mut conn)
                    .await
                    .map_err(error::db)?;
                    Ok(deleted > 0)
                }
            }

            #[async_trait::async_trait]
            impl ConnectionStore for $store {
                async fn get_connection(
                    &self,
                    customer: &CustomerId,
                    provider: ProviderKind,
                    number: &CarrierNumberId,
                ) -> Result<Option<NumberConnection>, StoreError> {
                    let mut conn = self.conn().await?;
                    number_connections::table
                        .filter(number_connections::customer_id.eq(customer.as_str()))
                        .filter(number_connections::provider.eq(provider.as_str()))
                        .filter(number_connections::number_id.eq(number.as_str()))
                        .select(ConnectionRow::as_select())
                        .first(&mut conn)
                        .await
                        .optional()
                        .map_err(error::db)?
                        .map(ConnectionRow::into_domain)
                        .transpose()
                }

                async fn get_connection_by_id(
                    &self,
                    id: ConnectionId,
                ) -> Result<Option<NumberConnection>, StoreError> {
                    let mut conn = self.conn().await?;
                    number_connections::table
                        .find(enc::id_to(id.as_uuid()))
                        .select(ConnectionRow::as_select())
                        .first(&mut conn)
                        .await
                        .optional()
                        .map_err(error::db)?
                        .map(ConnectionRow::into_domain)
                        .transpose()
                }

                async fn find_live_connection_by_e164(
                    &self,
                    e164: &E164,
                ) -> Result<Option<NumberConnection>, StoreError> {
                    let mut conn = self.conn().await?;
                    number_connections::table
                        .filter(number_connections::e164.eq(e164.as_str()))
                        .filter(number_connections::status.ne("disconnected"))
                        .order((
                            number_connections::updated_at.desc(),
                            number_connections::id.desc(),
                        ))
                        .select(ConnectionRow::as_select())
                        .first(&mut conn)
                        .await
                        .optional()
                        .map_err(error::db)?
                        .map(ConnectionRow::into_domain)
                        .transpose()
                }

                async fn list_connections(
                    &self,
                    customer: &CustomerId,
                    provider: ProviderKind,
                ) -> Result<Vec<NumberConnection>, StoreError> {
                    let mut conn = self.conn().await?;
                    number_connections::table
                        .filter(number_connections::customer_id.eq(customer.as_str()))
                        .filter(number_connections::provider.eq(provider.as_str()))
                        .order((
                            number_connections::created_at.asc(),
                            number_connections::id.asc(),
                        ))
                        .select(ConnectionRow::as_select())
                        .load(&mut conn)
                        .await
                        .map_err(error::db)?
                        .into_iter()
                        .map(ConnectionRow::into_domain)
                        .collect()
                }

                async fn save_connection(
                    &self,
                    connection: &NumberConnection,
                ) -> Result<(), StoreError> {
                    let row = ConnectionRow::from_domain(connection)?;
                    let mut conn = self.write_conn().await?;
                    // The upsert only absorbs a conflict on `id`; another row holding the same
                    // (customer, provider, number) violates the unique constraint, mapped to
                    // `Conflict`.
                    diesel::insert_into(number_connections::table)
                        .values(&row)
                        .on_conflict(number_connections::id)
                        .do_update()
                        .set(&row)
                        .execute(&mut conn)
                        .await
                        .map_err(error::db)?;
                    Ok(())
                }
            }

            #[async_trait::async_trait]
            impl AuditLog for $store {
                async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
                    let row = AuditRow::from_domain(event)?;
                    let mut conn = self.write_conn().await?;
                    diesel::insert_into(audit_events::table)
                        .values(&row)
                        .execute(&mut conn)
                        .await
                        .map_err(error::db)?;
                    Ok(())
                }

                async fn list_audit(
                    &self,
                    customer: &CustomerId,
                    limit: u32,
                ) -> Result<Vec<AuditEvent>, StoreError> {
                    let mut conn = self.conn().await?;
                    audit_events::table
                        .filter(audit_events::customer_id.eq(customer.as_str()))
                        .order((audit_events::at.desc(), audit_events::id.desc()))
                        .limit(codec::limit(limit))
                        .select(AuditRow::as_select())
                        .load(&mut conn)
                        .await
                        .map_err(error::db)?
                        .into_iter()
                        .map(AuditRow::into_domain)
                        .collect()
                }
            }
        };
    };
}

/// `StoreHealth`: `SELECT 1` answers, and every embedded migration (`migrate::
/// embedded_versions()`) is in diesel's `__diesel_schema_migrations`.
#[macro_export]
macro_rules! store_health {
    ($store:ty) => {
        const _: () = {
            use diesel::prelude::*;
            use diesel::sql_types::Integer;
            use diesel_async::RunQueryDsl;
            use trunkline_core::ports::{StoreError, StoreHealth};

            #[async_trait::async_trait]
            impl StoreHealth for $store {
                async fn check_ready(&self) -> Result<(), StoreError> {
                    let mut conn = self.conn().await?;
                    diesel::select(1_i32.into_sql::<Integer>())
                        .get_result::<i32>(&mut conn)
                        .await
                        .map_err(|e| match error::db(e) {
                            StoreError::Other(m) => StoreError::Unavailable(m),
                            other => other,
                        })?;
                    let applied: Vec<String> = __diesel_schema_migrations::table
                        .select(__diesel_schema_migrations::version)
                        .load(&mut conn)
                        .await
                        .map_err(|e| match error::db(e) {
                            StoreError::NotMigrated(_) => {
                                StoreError::NotMigrated("no migration has been applied".to_owned())
                            }
                            other => other,
                        })?;
                    let pending: Vec<String> = migrate::embedded_versions()?
                        .into_iter()
                        .filter(|v| !applied.contains(v))
                        .collect();
                    if pending.is_empty() {
                        Ok(())
                    } else {
                        Err(StoreError::NotMigrated(format!(
                            "pending migrations: {}",
                            pending.join(", ")
                        )))
                    }
                }
            }
        };
    };
}

/// `LeaseStore`. `clock = [...]`: the binds after the common ones in `ACQUIRE_LEASE`,
/// `ACQUIRE_NEW_LEASE` and `ACQUIRE_UNCHANGED_LEASE` (key, holder, token, ttl in µs; the last
/// binds the token seen after the clock's) and `RENEW_LEASE` (key, token, ttl): SQLite binds
/// this process's clock, PostgreSQL reads the database's and binds nothing. `now`: the time a release
/// expires a lease at and a peek compares its expiry with. Needs those statements and the
/// backend's `SqlId` in scope, besides what every macro here needs.
#[macro_export]
macro_rules! lease_store {
    ($store:ty, clock = [$($clock:tt)*], now = $now:expr) => {
        const _: () = {
            use diesel::prelude::*;
            use diesel::sql_types::{BigInt, Text};
            use diesel_async::RunQueryDsl;
            use trunkline_core::model::{Lease, LeaseKey, LeaseState};
            use trunkline_core::ports::{LeaseStore, StoreError};
            use $crate::codec;

            impl $store {
                /// Run one of the statements that take a lease: the common binds, the clock's,
                /// then the token seen, if the statement compares one.
                async fn acquire_lease_by(
                    &self,
                    statement: &'static str,
                    key: &LeaseKey,
                    holder: &str,
                    ttl: std::time::Duration,
                    seen_token: Option<uuid::Uuid>,
                ) -> Result<Option<Lease>, StoreError> {
                    let mut conn = self.write_conn().await?;
                    let query = diesel::sql_query(statement)
                        .bind::<Text, _>(key.storage_key())
                        .bind::<Text, _>(holder)
                        .bind::<SqlId, _>(enc::id_to(uuid::Uuid::new_v4()))
                        .bind::<BigInt, _>(codec::ttl_micros(ttl))
                        $($clock)*;
                    let row: Option<LeaseRow> = match seen_token {
                        None => query.get_result(&mut conn).await,
                        Some(token) => {
                            query
                                .bind::<SqlId, _>(enc::id_to(token))
                                .get_result(&mut conn)
                                .await
                        }
                    }
                    .optional()
                    .map_err(error::db)?;
                    row.map(|r| r.into_domain(key)).transpose()
                }
            }

            #[async_trait::async_trait]
            impl LeaseStore for $store {
                async fn try_acquire_lease(
                    &self,
                    key: &LeaseKey,
                    holder: &str,
                    ttl: std::time::Duration,
                ) -> Result<Option<Lease>, StoreError> {
                    self.acquire_lease_by(ACQUIRE_LEASE, key, holder, ttl, None)
                        .await
                }

                async fn try_acquire_lease_unchanged(
                    &self,
                    key: &LeaseKey,
                    holder: &str,
                    ttl: std::time::Duration,
                    seen: Option<LeaseState>,
                ) -> Result<Option<Lease>, StoreError> {
                    match seen {
                        None => {
                            self.acquire_lease_by(ACQUIRE_NEW_LEASE, key, holder, ttl, None)
                                .await
                        }
                        // Its holder may have been at work after the peek.
                        Some(seen) if seen.held => Ok(None),
                        Some(seen) => {
                            let statement = ACQUIRE_UNCHANGED_LEASE;
                            self.acquire_lease_by(statement, key, holder, ttl, Some(seen.token))
                                .await
                        }
                    }
                }

                async fn renew_lease(
                    &self,
                    lease: &Lease,
                    ttl: std::time::Duration,
                ) -> Result<Option<Lease>, StoreError> {
                    let mut conn = self.write_conn().await?;
                    let row: Option<LeaseRow> = diesel::sql_query(RENEW_LEASE)
                        .bind::<Text, _>(lease.key.storage_key())
                        .bind::<SqlId, _>(enc::id_to(lease.token))
                        .bind::<BigInt, _>(codec::ttl_micros(ttl))
                        $($clock)*
                        .get_result(&mut conn)
                        .await
                        .optional()
                        .map_err(error::db)?;
                    row.map(|r| r.into_domain(&lease.key)).transpose()
                }

                async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
                    let mut conn = self.write_conn().await?;
                    // Kept, expired and under a new token: `peek_lease` tells a release from
                    // no holder.
                    diesel::update(
                        leases::table
                            .filter(leases::key.eq(lease.key.storage_key()))
                            .filter(leases::token.eq(enc::id_to(lease.token))),
                    )
                    .set((
                        leases::token.eq(enc::id_to(uuid::Uuid::new_v4())),
                        leases::expires_at.eq($now),
                    ))
                    .execute(&mut conn)
                    .await
                    .map_err(error::db)?;
                    Ok(())
                }

                async fn peek_lease(
                    &self,
                    key: &LeaseKey,
                ) -> Result<Option<LeaseState>, StoreError> {
                    let now = $now;
                    let mut conn = self.conn().await?;
                    let row: Option<(enc::Id, bool)> = leases::table
                        .filter(leases::key.eq(key.storage_key()))
                        .select((leases::token, leases::expires_at.gt(now)))
                        .first(&mut conn)
                        .await
                        .optional()
                        .map_err(error::db)?;
                    row.map(|(token, held)| {
                        Ok(LeaseState {
                            token: enc::id_from("leases.token", token)?,
                            held,
                        })
                    })
                    .transpose()
                }
            }
        };
    };
}

/// `CallStore`: the backend's `record_webhook_event`, `upsert_call`, `claim_dispatch` and
/// `record_join` (each dialect's own statements and transactions) in braces, the rest here.
///
/// `statement`: how a hand-written statement is built (`diesel::sql_query`, or PostgreSQL's
/// statement prepared once per connection). `clock = [...]`: the binds after the common
/// ones in `END_CALL` (room, end time), `COMPLETE_DISPATCH` (room, claimant, dispatch id)
/// and `FAIL_DISPATCH` (room, claimant, status); `now`: the time `dispatches_due` compares
/// claims' expiry with (see [`lease_store!`](crate::lease_store!)). Needs those statements
/// and the backend's `SqlTs` in scope, besides what every macro here needs.
#[macro_export]
macro_rules! call_store {
    (
        $store:ty,
        statement = $statement:path,
        clock = [$($clock:tt)*],
        now = $now:expr,
        { $($own:tt)* }
    ) => {
        const _: () = {
            // Traits only, and full paths for the rest: the backend's methods resolve their
            // names in the backend's module (which has `diesel_async::RunQueryDsl` in scope).
            use diesel::{
                BoolExpressionMethods as _, ExpressionMethods as _, OptionalExtension as _,
                QueryDsl as _, SelectableHelper as _,
            };

            #[async_trait::async_trait]
            impl trunkline_core::ports::CallStore for $store {
                $($own)*

                async fn last_webhook_event(
                    &self,
                    room: &trunkline_core::RoomName,
                ) -> Result<
                    Option<trunkline_core::ports::WebhookEventRecord>,
                    trunkline_core::ports::StoreError,
                > {
                    let mut conn = self.conn().await?;
                    webhook_events::table
                        .filter(webhook_events::room_name.eq(room.as_str()))
                        .order((
                            webhook_events::received_at.desc(),
                            webhook_events::id.desc(),
                        ))
                        .select(WebhookEventRow::as_select())
                        .first(&mut conn)
                        .await
                        .optional()
                        .map_err(error::db)?
                        .map(WebhookEventRow::into_domain)
                        .transpose()
                }

                async fn end_call(
                    &self,
                    room: &trunkline_core::RoomName,
                    at: chrono::DateTime<chrono::Utc>,
                ) -> Result<Option<trunkline_core::model::CallRecord>, trunkline_core::ports::StoreError>
                {
                    let mut conn = self.write_conn().await?;
                    let row: Option<CallRow> = $statement(END_CALL)
                        .bind::<diesel::sql_types::Text, _>(room.as_str())
                        .bind::<SqlTs, _>(enc::ts_to(at))
                        $($clock)*
                        .get_result(&mut conn)
                        .await
                        .optional()
                        .map_err(error::db)?;
                    row.map(CallRow::into_domain).transpose()
                }

                async fn get_call(
                    &self,
                    id: trunkline_core::CallId,
                ) -> Result<Option<trunkline_core::model::CallRecord>, trunkline_core::ports::StoreError>
                {
                    let mut conn = self.conn().await?;
                    calls::table
                        .find(enc::id_to(id.as_uuid()))
                        .select(CallRow::as_select())
                        .first(&mut conn)
                        .await
                        .optional()
                        .map_err(error::db)?
                        .map(CallRow::into_domain)
                        .transpose()
                }

                async fn get_call_by_room(
                    &self,
                    room: &trunkline_core::RoomName,
                ) -> Result<Option<trunkline_core::model::CallRecord>, trunkline_core::ports::StoreError>
                {
                    let mut conn = self.conn().await?;
                    calls::table
                        .filter(calls::room_name.eq(room.as_str()))
                        .select(CallRow::as_select())
                        .first(&mut conn)
                        .await
                        .optional()
                        .map_err(error::db)?
                        .map(CallRow::into_domain)
                        .transpose()
                }

                async fn recent_calls(
                    &self,
                    connection: trunkline_core::ConnectionId,
                    limit: u32,
                ) -> Result<Vec<trunkline_core::model::CallRecord>, trunkline_core::ports::StoreError>
                {
                    let mut conn = self.conn().await?;
                    calls::table
                        .filter(calls::connection_id.eq(enc::id_to(connection.as_uuid())))
                        .order((calls::started_at.desc(), calls::id.desc()))
                        .limit($crate::codec::limit(limit))
                        .select(CallRow::as_select())
                        .load(&mut conn)
                        .await
                        .map_err(error::db)?
                        .into_iter()
                        .map(CallRow::into_domain)
                        .collect()
                }

                async fn complete_dispatch(
                    &self,
                    room: &trunkline_core::RoomName,
                    claimant: &str,
                    dispatch_id: &trunkline_core::AgentDispatchId,
                ) -> Result<bool, trunkline_core::ports::StoreError> {
                    use diesel::sql_types::Text;
                    let mut conn = self.write_conn().await?;
                    let updated = $statement(COMPLETE_DISPATCH)
                        .bind::<Text, _>(room.as_str())
                        .bind::<Text, _>(claimant)
                        .bind::<Text, _>(dispatch_id.as_str())
                        $($clock)*
                        .execute(&mut conn)
                        .await
                        .map_err(error::db)?;
                    Ok(updated == 1)
                }

                async fn fail_dispatch(
                    &self,
                    room: &trunkline_core::RoomName,
                    claimant: &str,
                    gave_up: bool,
                ) -> Result<bool, trunkline_core::ports::StoreError> {
                    use diesel::sql_types::Text;
                    use trunkline_core::model::DispatchStatus;
                    let status = if gave_up {
                        DispatchStatus::GaveUp
                    } else {
                        DispatchStatus::Failed
                    };
                    let mut conn = self.write_conn().await?;
                    let updated = $statement(FAIL_DISPATCH)
                        .bind::<Text, _>(room.as_str())
                        .bind::<Text, _>(claimant)
                        .bind::<Text, _>(status.as_str())
                        $($clock)*
                        .execute(&mut conn)
                        .await
                        .map_err(error::db)?;
                    Ok(updated == 1)
                }

                async fn dispatches_due(
                    &self,
                    limit: u32,
                ) -> Result<Vec<trunkline_core::model::CallRecord>, trunkline_core::ports::StoreError>
                {
                    use trunkline_core::model::DispatchStatus;
                    let now = $now;
                    let mut conn = self.conn().await?;
                    calls::table
                        .filter(calls::ended_at.is_null())
                        .filter(
                            calls::dispatch_status
                                .eq(DispatchStatus::Failed.as_str())
                                .or(calls::dispatch_status
                                    .eq(DispatchStatus::Claimed.as_str())
                                    .and(
                                        calls::claim_expires_at
                                            .is_null()
                                            .or(calls::claim_expires_at.le(now)),
                                    )),
                        )
                        .order((calls::started_at.asc(), calls::id.asc()))
                        .limit($crate::codec::limit(limit))
                        .select(CallRow::as_select())
                        .load(&mut conn)
                        .await
                        .map_err(error::db)?
                        .into_iter()
                        .map(CallRow::into_domain)
                        .collect()
                }
            }
        };
    };
}
