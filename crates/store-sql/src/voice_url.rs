//! `VoiceUrlStore` (webhook secrets, voice-URL bindings, and the voice webhook's
//! one-statement read) written once for both backends.

/// Expands `VoiceUrlStore` for `$store`.
///
/// The calling module must have in scope the dialect's statements `PUT_SECRET`,
/// `DELETE_SECRET`, `HAS_SECRET`, `SAVE_BINDING`, `GET_BINDING`, `DELETE_BINDING` and
/// `VOICE_ROUTE` (their parameters in the order the binds below give them), the backend's
/// SQL types `SqlId`, `SqlTs` and `SqlBytes` (of uuid, time and byte columns), `enc`,
/// `error::db` and `$store::conn(&self)` (see [`ports`](crate::ports)).
#[macro_export]
macro_rules! voice_url_store {
    ($store:ty) => {
        const _: () = {
            use chrono::Utc;
            use diesel::sql_types::{BigInt, Nullable, Text};
            use diesel::{OptionalExtension as _, QueryableByName};
            use diesel_async::RunQueryDsl;
            use trunkline_core::model::SealedSecret;
            use trunkline_core::ports::{
                StoreError, VoiceBinding, VoiceRouteCandidate, VoiceRouteConnection, VoiceUrlStore,
            };
            use trunkline_core::{
                CarrierAccountId, ConnectionId, CustomerId, E164, IntegrationId, ProviderKind,
            };
            use $crate::codec::{self, parse};

            #[derive(QueryableByName)]
            struct Count {
                #[diesel(sql_type = BigInt)]
                n: i64,
            }

            #[derive(QueryableByName)]
            struct BindingRow {
                #[diesel(sql_type = SqlId)]
                connection_id: enc::Id,
                #[diesel(sql_type = Text)]
                voice_url: String,
                #[diesel(sql_type = Text)]
                sip_username: String,
                #[diesel(sql_type = SqlBytes)]
                sealed_sip_password: Vec<u8>,
                #[diesel(sql_type = SqlTs)]
                created_at: enc::Ts,
                #[diesel(sql_type = SqlTs)]
                updated_at: enc::Ts,
            }

            impl BindingRow {
                fn into_domain(self) -> Result<VoiceBinding, StoreError> {
                    Ok(VoiceBinding {
                        connection_id: ConnectionId::from_uuid(enc::id_from(
                            "voice_url_bindings.connection_id",
                            self.connection_id,
                        )?),
                        voice_url: self.voice_url,
                        sip_username: self.sip_username,
                        sealed_sip_password: SealedSecret(self.sealed_sip_password),
                        created_at: enc::ts_from("voice_url_bindings.created_at", self.created_at)?,
                        updated_at: enc::ts_from("voice_url_bindings.updated_at", self.updated_at)?,
                    })
                }
            }

            #[derive(QueryableByName)]
            struct RouteRow {
                #[diesel(sql_type = Text)]
                customer_id: String,
                #[diesel(sql_type = SqlId)]
                integration_id: enc::Id,
                #[diesel(sql_type = SqlBytes)]
                sealed_secret: Vec<u8>,
                #[diesel(sql_type = Nullable<SqlId>)]
                connection_id: Option<enc::Id>,
                #[diesel(sql_type = Nullable<SqlId>)]
                connection_integration_id: Option<enc::Id>,
                #[diesel(sql_type = Nullable<Text>)]
                status: Option<String>,
                #[diesel(sql_type = Nullable<Text>)]
                sip_target: Option<String>,
                #[diesel(sql_type = Nullable<Text>)]
                voice_url: Option<String>,
                #[diesel(sql_type = Nullable<Text>)]
                sip_username: Option<String>,
                #[diesel(sql_type = Nullable<SqlBytes>)]
                sealed_sip_password: Option<Vec<u8>>,
                #[diesel(sql_type = Nullable<SqlTs>)]
                created_at: Option<enc::Ts>,
                #[diesel(sql_type = Nullable<SqlTs>)]
                updated_at: Option<enc::Ts>,
            }

            impl RouteRow {
                fn into_domain(self) -> Result<VoiceRouteCandidate, StoreError> {
                    let connection = match (
                        self.connection_id,
                        self.connection_integration_id,
                        self.status,
                        self.sip_target,
                    ) {
                        (Some(id), Some(integration), Some(status), Some(sip_target)) => {
                            let connection_id =
                                ConnectionId::from_uuid(enc::id_from("number_connections.id", id)?);
                            let binding = match (
                                self.voice_url,
                                self.sip_username,
                                self.sealed_sip_password,
                                self.created_at,
                                self.updated_at,
                            ) {
                                (
                                    Some(voice_url),
                                    Some(sip_username),
                                    Some(sealed),
                                    Some(c),
                                    Some(u),
                                ) => Some(VoiceBinding {
                                    connection_id,
                                    voice_url,
                                    sip_username,
                                    sealed_sip_password: SealedSecret(sealed),
                                    created_at: enc::ts_from("voice_url_bindings.created_at", c)?,
                                    updated_at: enc::ts_from("voice_url_bindings.updated_at", u)?,
                                }),
                                _ => None,
                            };
                            Some(VoiceRouteConnection {
                                connection_id,
                                integration_id: IntegrationId::from_uuid(enc::id_from(
                                    "number_connections.integration_id",
                                    integration,
                                )?),
                                status: codec::parse_connection_status(&status)?,
                                sip_target,
                                binding,
                            })
                        }
                        _ => None,
                    };
                    Ok(VoiceRouteCandidate {
                        customer_id: parse(
                            "integrations.customer_id",
                            &self.customer_id,
                            CustomerId::parse,
                        )?,
                        integration_id: IntegrationId::from_uuid(enc::id_from(
                            "integrations.id",
                            self.integration_id,
                        )?),
                        sealed_webhook_secret: SealedSecret(self.sealed_secret),
                        connection,
                    })
                }
            }

            #[async_trait::async_trait]
            impl VoiceUrlStore for $store {
                async fn put_webhook_secret(
                    &self,
                    customer: &CustomerId,
                    provider: ProviderKind,
                    integration: IntegrationId,
                    sealed: Option<SealedSecret>,
                ) -> Result<(), StoreError> {
                    let mut conn = self.write_conn().await?;
                    match &sealed {
                        Some(s) => diesel::sql_query(PUT_SECRET)
                            .bind::<Text, _>(customer.as_str())
                            .bind::<Text, _>(provider.as_str())
                            .bind::<SqlId, _>(enc::id_to(integration.as_uuid()))
                            .bind::<SqlBytes, _>(s.0.as_slice())
                            .bind::<SqlTs, _>(enc::ts_to(Utc::now()))
                            .execute(&mut conn)
                            .await
                            .map_err(error::db)?,
                        None => diesel::sql_query(DELETE_SECRET)
                            .bind::<Text, _>(customer.as_str())
                            .bind::<Text, _>(provider.as_str())
                            .execute(&mut conn)
                            .await
                            .map_err(error::db)?,
                    };
                    Ok(())
                }

                async fn has_webhook_secret(
                    &self,
                    customer: &CustomerId,
                    provider: ProviderKind,
                ) -> Result<bool, StoreError> {
                    let mut conn = self.conn().await?;
                    let row: Count = diesel::sql_query(HAS_SECRET)
                        .bind::<Text, _>(customer.as_str())
                        .bind::<Text, _>(provider.as_str())
                        .get_result(&mut conn)
                        .await
                        .map_err(error::db)?;
                    Ok(row.n > 0)
                }

                async fn save_voice_binding(&self, b: &VoiceBinding) -> Result<(), StoreError> {
                    let mut conn = self.write_conn().await?;
                    diesel::sql_query(SAVE_BINDING)
                        .bind::<SqlId, _>(enc::id_to(b.connection_id.as_uuid()))
                        .bind::<Text, _>(&b.voice_url)
                        .bind::<Text, _>(&b.sip_username)
                        .bind::<SqlBytes, _>(b.sealed_sip_password.0.as_slice())
                        .bind::<SqlTs, _>(enc::ts_to(b.created_at))
                        .bind::<SqlTs, _>(enc::ts_to(b.updated_at))
                        .execute(&mut conn)
                        .await
                        .map_err(error::db)?;
                    Ok(())
                }

                async fn get_voice_binding(
                    &self,
                    connection: ConnectionId,
                ) -> Result<Option<VoiceBinding>, StoreError> {
                    let mut conn = self.conn().await?;
                    let row: Option<BindingRow> = diesel::sql_query(GET_BINDING)
                        .bind::<SqlId, _>(enc::id_to(connection.as_uuid()))
                        .get_result(&mut conn)
                        .await
                        .optional()
                        .map_err(error::db)?;
                    row.map(BindingRow::into_domain).transpose()
                }

                async fn delete_voice_binding(
                    &self,
                    connection: ConnectionId,
                ) -> Result<(), StoreError> {
                    let mut conn = self.write_conn().await?;
                    diesel::sql_query(DELETE_BINDING)
                        .bind::<SqlId, _>(enc::id_to(connection.as_uuid()))
                        .execute(&mut conn)
                        .await
                        .map_err(error::db)?;
                    Ok(())
                }

                async fn voice_route(
                    &self,
                    provider: ProviderKind,
                    account: &CarrierAccountId,
                    e164: &E164,
                ) -> Result<Vec<VoiceRouteCandidate>, StoreError> {
                    let mut conn = self.conn().await?;
                    let rows: Vec<RouteRow> = diesel::sql_query(VOICE_ROUTE)
                        .bind::<Text, _>(provider.as_str())
                        .bind::<Text, _>(account.as_str())
                        .bind::<Text, _>(e164.as_str())
                        .load(&mut conn)
                        .await
                        .map_err(error::db)?;
                    let rows = rows
                        .into_iter()
                        .map(RouteRow::into_domain)
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(codec::one_candidate_per_integration(rows))
                }
            }
        };
    };
}
