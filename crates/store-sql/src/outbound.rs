//! `OutboundStore` (migration `2026-12-05-110000_outbound`: outbound routes, numbers and
//! calls) written once for both backends.

/// Expands the outbound rows and `OutboundStore` for `$store` on diesel backend `$backend`.
///
/// The calling module must have in scope the backend's `diesel::table!`s `outbound_routes`,
/// `outbound_numbers` and `outbound_calls`, `enc` (one of [`encoding`](crate::encoding)'s
/// modules), `error::db`, and `$store::conn(&self)` (see [`ports`](crate::ports)).
#[macro_export]
macro_rules! outbound_store {
    ($store:ty, $backend:path) => {
        const _: () = {
            use chrono::Utc;
            use diesel::prelude::*;
            use diesel::upsert::excluded;
            use diesel_async::RunQueryDsl;
            use trunkline_core::model::SealedSecret;
            use trunkline_core::ports::{
                OutboundCall, OutboundCallInsert, OutboundCallState, OutboundNumber, OutboundRoute,
                OutboundStore, StoreError,
            };
            use trunkline_core::{
                CallId, ConnectionId, CustomerId, E164, ProviderKind, RoomName, RouteId, SipTrunkId,
            };
            use $crate::codec::{parse, parse_opt};

            #[derive(Debug, Queryable, Selectable, Insertable)]
            #[diesel(table_name = outbound_routes, check_for_backend($backend))]
            struct RouteRow {
                customer_id: String,
                provider: String,
                route_id: String,
                termination_host: Option<String>,
                sip_username: String,
                sealed_password: Vec<u8>,
                livekit_trunk_id: Option<String>,
                created_at: enc::Ts,
                updated_at: enc::Ts,
            }

            #[derive(Debug, Queryable, Selectable, Insertable)]
            #[diesel(table_name = outbound_numbers, check_for_backend($backend))]
            struct NumberRow {
                connection_id: enc::Id,
                customer_id: String,
                provider: String,
                route_id: String,
                e164: String,
                created_at: enc::Ts,
            }

            #[derive(Debug, Queryable, Selectable, Insertable)]
            #[diesel(table_name = outbound_calls, check_for_backend($backend))]
            struct CallRow {
                call_id: enc::Id,
                room_name: String,
                customer_id: String,
                connection_id: enc::Id,
                from_e164: String,
                to_e164: String,
                idempotency_key: Option<String>,
                request_digest: String,
                state: String,
                failure: Option<String>,
                created_at: enc::Ts,
                updated_at: enc::Ts,
            }

            impl RouteRow {
                fn from_domain(r: &OutboundRoute) -> Self {
                    Self {
                        customer_id: r.customer_id.as_str().to_owned(),
                        provider: r.provider.as_str().to_owned(),
                        route_id: r.route_id.as_str().to_owned(),
                        termination_host: r.termination_host.clone(),
                        sip_username: r.sip_username.clone(),
                        sealed_password: r.sealed_password.0.clone(),
                        livekit_trunk_id: r
                            .livekit_trunk_id
                            .as_ref()
                            .map(|t| t.as_str().to_owned()),
                        created_at: enc::ts_to(r.created_at),
                        updated_at: enc::ts_to(r.updated_at),
                    }
                }

                fn into_domain(self) -> Result<OutboundRoute, StoreError> {
                    Ok(OutboundRoute {
                        customer_id: parse(
                            "outbound_routes.customer_id",
                            &self.customer_id,
                            CustomerId::parse,
                        )?,
                        provider: parse(
                            "outbound_routes.provider",
                            &self.provider,
                            ProviderKind::parse,
                        )?,
                        route_id: parse(
                            "outbound_routes.route_id",
                            &self.route_id,
                            RouteId::parse,
                        )?,
                        termination_host: self.termination_host,
                        sip_username: self.sip_username,
                        sealed_password: SealedSecret(self.sealed_password),
                        livekit_trunk_id: parse_opt(
                            "outbound_routes.livekit_trunk_id",
                            self.livekit_trunk_id.as_deref(),
                            SipTrunkId::parse,
                        )?,
                        created_at: enc::ts_from("outbound_routes.created_at", self.created_at)?,
                        updated_at: enc::ts_from("outbound_routes.updated_at", self.updated_at)?,
                    })
                }
            }

            impl NumberRow {
                fn from_domain(n: &OutboundNumber) -> Self {
                    Self {
                        connection_id: enc::id_to(n.connection_id.as_uuid()),
                        customer_id: n.customer_id.as_str().to_owned(),
                        provider: n.provider.as_str().to_owned(),
                        route_id: n.route_id.as_str().to_owned(),
                        e164: n.e164.as_str().to_owned(),
                        created_at: enc::ts_to(n.created_at),
                    }
                }

                fn into_domain(self) -> Result<OutboundNumber, StoreError> {
                    Ok(OutboundNumber {
                        connection_id: ConnectionId::from_uuid(enc::id_from(
                            "outbound_numbers.connection_id",
                            self.connection_id,
                        )?),
                        customer_id: parse(
                            "outbound_numbers.customer_id",
                            &self.customer_id,
                            CustomerId::parse,
                        )?,
                        provider: parse(
                            "outbound_numbers.provider",
                            &self.provider,
                            ProviderKind::parse,
                        )?,
                        route_id: parse(
                            "outbound_numbers.route_id",
                            &self.route_id,
                            RouteId::parse,
                        )?,
                        e164: parse("outbound_numbers.e164", &self.e164, E164::parse)?,
                        created_at: enc::ts_from("outbound_numbers.created_at", self.created_at)?,
                    })
                }
            }

            impl CallRow {
                fn from_domain(c: &OutboundCall) -> Self {
                    Self {
                        call_id: enc::id_to(c.call_id.as_uuid()),
                        room_name: c.room_name.as_str().to_owned(),
                        customer_id: c.customer_id.as_str().to_owned(),
                        connection_id: enc::id_to(c.connection_id.as_uuid()),
                        from_e164: c.from.as_str().to_owned(),
                        to_e164: c.to.as_str().to_owned(),
                        idempotency_key: c.idempotency_key.clone(),
                        request_digest: c.request_digest.clone(),
                        state: c.state.as_str().to_owned(),
                        failure: c.failure.clone(),
                        created_at: enc::ts_to(c.created_at),
                        updated_at: enc::ts_to(c.updated_at),
                    }
                }

                fn into_domain(self) -> Result<OutboundCall, StoreError> {
                    Ok(OutboundCall {
                        call_id: CallId::from_uuid(enc::id_from(
                            "outbound_calls.call_id",
                            self.call_id,
                        )?),
                        room_name: parse(
                            "outbound_calls.room_name",
                            &self.room_name,
                            RoomName::parse,
                        )?,
                        customer_id: parse(
                            "outbound_calls.customer_id",
                            &self.customer_id,
                            CustomerId::parse,
                        )?,
                        connection_id: ConnectionId::from_uuid(enc::id_from(
                            "outbound_calls.connection_id",
                            self.connection_id,
                        )?),
                        from: parse("outbound_calls.from_e164", &self.from_e164, E164::parse)?,
                        to: parse("outbound_calls.to_e164", &self.to_e164, E164::parse)?,
                        idempotency_key: self.idempotency_key,
                        request_digest: self.request_digest,
                        state: OutboundCallState::parse(&self.state)?,
                        failure: self.failure,
                        created_at: enc::ts_from("outbound_calls.created_at", self.created_at)?,
                        updated_at: enc::ts_from("outbound_calls.updated_at", self.updated_at)?,
                    })
                }
            }

            #[async_trait::async_trait]
            impl OutboundStore for $store {
                async fn get_outbound_route(
                    &self,
                    customer: &CustomerId,
                    provider: ProviderKind,
                    route: &RouteId,
                ) -> Result<Option<OutboundRoute>, StoreError> {
                    let mut conn = self.conn().await?;
                    outbound_routes::table
                        .filter(outbound_routes::customer_id.eq(customer.as_str()))
                        .filter(outbound_routes::provider.eq(provider.as_str()))
                        .filter(outbound_routes::route_id.eq(route.as_str()))
                        .select(RouteRow::as_select())
                        .first(&mut conn)
                        .await
                        .optional()
                        .map_err(error::db)?
                        .map(RouteRow::into_domain)
                        .transpose()
                }

                async fn put_outbound_route(
                    &self,
                    route: &OutboundRoute,
                ) -> Result<(), StoreError> {
                    let row = RouteRow::from_domain(route);
                    let mut conn = self.write_conn().await?;
                    diesel::insert_into(outbound_routes::table)
                        .values(&row)
                        .on_conflict((
                            outbound_routes::customer_id,
                            outbound_routes::provider,
                            outbound_routes::route_id,
                        ))
                        .do_update()
                        .set((
                            outbound_routes::termination_host
                                .eq(excluded(outbound_routes::termination_host)),
                            outbound_routes::sip_username
                                .eq(excluded(outbound_routes::sip_username)),
                            outbound_routes::sealed_password
                                .eq(excluded(outbound_routes::sealed_password)),
                            outbound_routes::livekit_trunk_id
                                .eq(excluded(outbound_routes::livekit_trunk_id)),
                            outbound_routes::updated_at.eq(excluded(outbound_routes::updated_at)),
                        ))
                        .execute(&mut conn)
                        .await
                        .map_err(error::db)?;
                    Ok(())
                }

                async fn delete_outbound_route(
                    &self,
                    customer: &CustomerId,
                    provider: ProviderKind,
                    route: &RouteId,
                ) -> Result<(), StoreError> {
                    let mut conn = self.write_conn().await?;
                    diesel::delete(
                        outbound_routes::table
                            .filter(outbound_routes::customer_id.eq(customer.as_str()))
                            .filter(outbound_routes::provider.eq(provider.as_str()))
                            .filter(outbound_routes::route_id.eq(route.as_str())),
                    )
                    .execute(&mut conn)
                    .await
                    .map_err(error::db)?;
                    Ok(())
                }

                async fn put_outbound_number(
                    &self,
                    number: &OutboundNumber,
                ) -> Result<(), StoreError> {
                    let row = NumberRow::from_domain(number);
                    let mut conn = self.write_conn().await?;
                    diesel::insert_into(outbound_numbers::table)
                        .values(&row)
                        .on_conflict(outbound_numbers::connection_id)
                        .do_update()
                        .set((
                            outbound_numbers::customer_id
                                .eq(excluded(outbound_numbers::customer_id)),
                            outbound_numbers::provider.eq(excluded(outbound_numbers::provider)),
                            outbound_numbers::route_id.eq(excluded(outbound_numbers::route_id)),
                            outbound_numbers::e164.eq(excluded(outbound_numbers::e164)),
                        ))
                        .execute(&mut conn)
                        .await
                        .map_err(error::db)?;
                    Ok(())
                }

                async fn delete_outbound_number(
                    &self,
                    connection: ConnectionId,
                ) -> Result<bool, StoreError> {
                    let mut conn = self.write_conn().await?;
                    let n = diesel::delete(outbound_numbers::table.filter(
                        outbound_numbers::connection_id.eq(enc::id_to(connection.as_uuid())),
                    ))
                    .execute(&mut conn)
                    .await
                    .map_err(error::db)?;
                    Ok(n > 0)
                }

                async fn get_outbound_number(
                    &self,
                    connection: ConnectionId,
                ) -> Result<Option<OutboundNumber>, StoreError> {
                    let mut conn = self.conn().await?;
                    outbound_numbers::table
                        .filter(
                            outbound_numbers::connection_id.eq(enc::id_to(connection.as_uuid())),
                        )
                        .select(NumberRow::as_select())
                        .first(&mut conn)
                        .await
                        .optional()
                        .map_err(error::db)?
                        .map(NumberRow::into_domain)
                        .transpose()
                }

                async fn outbound_numbers_on_route(
                    &self,
                    customer: &CustomerId,
                    provider: ProviderKind,
                    route: &RouteId,
                ) -> Result<Vec<OutboundNumber>, StoreError> {
                    let mut conn = self.conn().await?;
                    outbound_numbers::table
                        .filter(outbound_numbers::customer_id.eq(customer.as_str()))
                        .filter(outbound_numbers::provider.eq(provider.as_str()))
                        .filter(outbound_numbers::route_id.eq(route.as_str()))
                        .order((outbound_numbers::created_at, outbound_numbers::e164))
                        .select(NumberRow::as_select())
                        .load(&mut conn)
                        .await
                        .map_err(error::db)?
                        .into_iter()
                        .map(NumberRow::into_domain)
                        .collect()
                }

                async fn insert_outbound_call(
                    &self,
                    call: &OutboundCall,
                ) -> Result<OutboundCallInsert, StoreError> {
                    let row = CallRow::from_domain(call);
                    let mut conn = self.write_conn().await?;
                    // The unique (customer, key) constraint decides between concurrent inserts; the loser
                    // inserts nothing and reads the winner's row, committed by then (PostgreSQL waits
                    // for the winner's commit; SQLite runs one writer at a time).
                    let inserted = diesel::insert_into(outbound_calls::table)
                        .values(&row)
                        .on_conflict_do_nothing()
                        .execute(&mut conn)
                        .await
                        .map_err(error::db)?;
                    if inserted == 1 {
                        return Ok(OutboundCallInsert::Inserted);
                    }
                    let Some(key) = &call.idempotency_key else {
                        return Err(StoreError::Conflict(
                            "outbound_calls: the call exists".to_owned(),
                        ));
                    };
                    let first = outbound_calls::table
                        .filter(outbound_calls::customer_id.eq(call.customer_id.as_str()))
                        .filter(outbound_calls::idempotency_key.eq(key))
                        .select(CallRow::as_select())
                        .first(&mut conn)
                        .await
                        .optional()
                        .map_err(error::db)?;
                    match first {
                        Some(row) => Ok(OutboundCallInsert::Existing(Box::new(row.into_domain()?))),
                        // Withdrawn between the two statements: the caller may try again.
                        None => Err(StoreError::Conflict(
                            "outbound_calls: the key's call was withdrawn meanwhile; retry"
                                .to_owned(),
                        )),
                    }
                }

                async fn update_outbound_call(
                    &self,
                    call: CallId,
                    state: OutboundCallState,
                    failure: Option<String>,
                ) -> Result<(), StoreError> {
                    let mut conn = self.write_conn().await?;
                    diesel::update(
                        outbound_calls::table
                            .filter(outbound_calls::call_id.eq(enc::id_to(call.as_uuid()))),
                    )
                    .set((
                        outbound_calls::state.eq(state.as_str()),
                        outbound_calls::failure.eq(failure),
                        outbound_calls::updated_at.eq(enc::ts_to(Utc::now())),
                    ))
                    .execute(&mut conn)
                    .await
                    .map_err(error::db)?;
                    Ok(())
                }

                async fn get_outbound_call(
                    &self,
                    call: CallId,
                ) -> Result<Option<OutboundCall>, StoreError> {
                    let mut conn = self.conn().await?;
                    outbound_calls::table
                        .filter(outbound_calls::call_id.eq(enc::id_to(call.as_uuid())))
                        .select(CallRow::as_select())
                        .first(&mut conn)
                        .await
                        .optional()
                        .map_err(error::db)?
                        .map(CallRow::into_domain)
                        .transpose()
                }

                async fn delete_outbound_call(&self, call: CallId) -> Result<(), StoreError> {
                    let mut conn = self.write_conn().await?;
                    diesel::delete(
                        outbound_calls::table
                            .filter(outbound_calls::call_id.eq(enc::id_to(call.as_uuid()))),
                    )
                    .execute(&mut conn)
                    .await
                    .map_err(error::db)?;
                    Ok(())
                }
            }
        };
    };
}
