//! `FleetStore` (`connection_checks`, `purchased_numbers`, `integration_settings` and the
//! cross-customer listings the reconciler and the support views read) written once for both
//! backends.

/// Expands `FleetStore` for `$store`. `$max_binds`: how many ids one statement may bind
/// (`get_checks` splits longer lists).
///
/// The calling module must have in scope the backend's `diesel::table!`s
/// `connection_checks`, `purchased_numbers`, `integration_settings` and `number_connections`,
/// `ConnectionRow` (of [`rows!`](crate::rows!)), `LIST_CUSTOMERS` (the dialect's statement
/// listing customer ids after `$1`, at most `$2`, in byte order), `enc`, `error::db` and
/// `$store::conn(&self)` (see [`ports`](crate::ports)).
#[macro_export]
macro_rules! fleet_store {
    ($store:ty, max_binds = $max_binds:expr) => {
        const _: () = {
            use diesel::prelude::*;
            use diesel::sql_types::{BigInt, Text};
            use diesel::upsert::excluded;
            use diesel_async::RunQueryDsl;
            use trunkline_core::model::{
                ConnectionCheck, IntegrationSettings, NumberConnection, PurchasedNumber,
            };
            use trunkline_core::ports::{FleetStore, StoreError};
            use trunkline_core::{CarrierNumberId, ConnectionId, CustomerId, E164, ProviderKind};
            use $crate::codec::{self, parse};

            #[derive(QueryableByName)]
            struct CustomerRow {
                #[diesel(sql_type = Text)]
                customer_id: String,
            }

            type PurchaseTuple = (String, String, String, String, enc::Ts, Option<enc::Ts>);

            fn purchase_from(t: &PurchaseTuple) -> Result<PurchasedNumber, StoreError> {
                Ok(PurchasedNumber {
                    customer_id: parse("purchased_numbers.customer_id", &t.0, CustomerId::parse)?,
                    provider: parse("purchased_numbers.provider", &t.1, ProviderKind::parse)?,
                    number_id: parse("purchased_numbers.number_id", &t.2, CarrierNumberId::parse)?,
                    e164: parse("purchased_numbers.e164", &t.3, E164::parse)?,
                    purchased_at: enc::ts_from("purchased_numbers.purchased_at", t.4)?,
                    released_at: t
                        .5
                        .map(|v| enc::ts_from("purchased_numbers.released_at", v))
                        .transpose()?,
                })
            }

            #[async_trait::async_trait]
            impl FleetStore for $store {
                async fn list_customers(
                    &self,
                    after: Option<CustomerId>,
                    limit: u32,
                ) -> Result<Vec<CustomerId>, StoreError> {
                    let mut conn = self.conn().await?;
                    diesel::sql_query(LIST_CUSTOMERS)
                        .bind::<Text, _>(after.as_ref().map_or("", CustomerId::as_str).to_owned())
                        .bind::<BigInt, _>(codec::limit(limit))
                        .load::<CustomerRow>(&mut conn)
                        .await
                        .map_err(error::db)?
                        .into_iter()
                        .map(|r| parse("customer_id", &r.customer_id, CustomerId::parse))
                        .collect()
                }

                async fn list_all_connections(
                    &self,
                    after: Option<ConnectionId>,
                    limit: u32,
                ) -> Result<Vec<NumberConnection>, StoreError> {
                    let mut conn = self.conn().await?;
                    // No connection has the nil id: every other sorts after it, as uuid and as text.
                    let after = enc::id_to(after.map_or(uuid::Uuid::nil(), |a| a.as_uuid()));
                    number_connections::table
                        .filter(number_connections::id.gt(after))
                        .order(number_connections::id.asc())
                        .limit(codec::limit(limit))
                        .select(ConnectionRow::as_select())
                        .load(&mut conn)
                        .await
                        .map_err(error::db)?
                        .into_iter()
                        .map(ConnectionRow::into_domain)
                        .collect()
                }

                async fn save_check(&self, check: &ConnectionCheck) -> Result<(), StoreError> {
                    let body = enc::json_to("connection_checks.body", check)?;
                    let mut conn = self.write_conn().await?;
                    diesel::insert_into(connection_checks::table)
                        .values((
                            connection_checks::connection_id
                                .eq(enc::id_to(check.connection_id.as_uuid())),
                            connection_checks::checked_at.eq(enc::ts_to(check.checked_at)),
                            connection_checks::body.eq(body),
                        ))
                        .on_conflict(connection_checks::connection_id)
                        .do_update()
                        .set((
                            connection_checks::checked_at
                                .eq(excluded(connection_checks::checked_at)),
                            connection_checks::body.eq(excluded(connection_checks::body)),
                        ))
                        .execute(&mut conn)
                        .await
                        .map_err(error::db)?;
                    Ok(())
                }

                async fn get_checks(
                    &self,
                    ids: &[ConnectionId],
                ) -> Result<Vec<ConnectionCheck>, StoreError> {
                    if ids.is_empty() {
                        return Ok(Vec::new());
                    }
                    let keys: Vec<enc::Id> = ids.iter().map(|i| enc::id_to(i.as_uuid())).collect();
                    let mut conn = self.conn().await?;
                    let mut out = Vec::with_capacity(ids.len());
                    for chunk in keys.chunks($max_binds) {
                        let bodies: Vec<enc::Json> = connection_checks::table
                            .filter(connection_checks::connection_id.eq_any(chunk))
                            .select(connection_checks::body)
                            .load(&mut conn)
                            .await
                            .map_err(error::db)?;
                        for b in bodies {
                            out.push(enc::json_from("connection_checks.body", b)?);
                        }
                    }
                    Ok(out)
                }

                async fn save_purchase(&self, p: &PurchasedNumber) -> Result<(), StoreError> {
                    let mut conn = self.write_conn().await?;
                    diesel::insert_into(purchased_numbers::table)
                        .values((
                            purchased_numbers::customer_id.eq(p.customer_id.as_str()),
                            purchased_numbers::provider.eq(p.provider.as_str()),
                            purchased_numbers::number_id.eq(p.number_id.as_str()),
                            purchased_numbers::e164.eq(p.e164.as_str()),
                            purchased_numbers::purchased_at.eq(enc::ts_to(p.purchased_at)),
                            purchased_numbers::released_at.eq(p.released_at.map(enc::ts_to)),
                        ))
                        .on_conflict((
                            purchased_numbers::customer_id,
                            purchased_numbers::provider,
                            purchased_numbers::number_id,
                        ))
                        .do_update()
                        .set((
                            purchased_numbers::e164.eq(excluded(purchased_numbers::e164)),
                            purchased_numbers::purchased_at
                                .eq(excluded(purchased_numbers::purchased_at)),
                            purchased_numbers::released_at
                                .eq(excluded(purchased_numbers::released_at)),
                        ))
                        .execute(&mut conn)
                        .await
                        .map_err(error::db)?;
                    Ok(())
                }

                async fn get_purchase(
                    &self,
                    customer: &CustomerId,
                    provider: ProviderKind,
                    number: &CarrierNumberId,
                ) -> Result<Option<PurchasedNumber>, StoreError> {
                    let mut conn = self.conn().await?;
                    purchased_numbers::table
                        .filter(purchased_numbers::customer_id.eq(customer.as_str()))
                        .filter(purchased_numbers::provider.eq(provider.as_str()))
                        .filter(purchased_numbers::number_id.eq(number.as_str()))
                        .select((
                            purchased_numbers::customer_id,
                            purchased_numbers::provider,
                            purchased_numbers::number_id,
                            purchased_numbers::e164,
                            purchased_numbers::purchased_at,
                            purchased_numbers::released_at,
                        ))
                        .first::<PurchaseTuple>(&mut conn)
                        .await
                        .optional()
                        .map_err(error::db)?
                        .map(|t| purchase_from(&t))
                        .transpose()
                }

                async fn get_settings(
                    &self,
                    customer: &CustomerId,
                    provider: ProviderKind,
                ) -> Result<Option<IntegrationSettings>, StoreError> {
                    let mut conn = self.conn().await?;
                    integration_settings::table
                        .filter(integration_settings::customer_id.eq(customer.as_str()))
                        .filter(integration_settings::provider.eq(provider.as_str()))
                        .select((
                            integration_settings::auto_repair,
                            integration_settings::updated_at,
                        ))
                        .first::<(bool, enc::Ts)>(&mut conn)
                        .await
                        .optional()
                        .map_err(error::db)?
                        .map(|(auto_repair, at)| {
                            Ok(IntegrationSettings {
                                customer_id: customer.clone(),
                                provider,
                                auto_repair,
                                updated_at: enc::ts_from("integration_settings.updated_at", at)?,
                            })
                        })
                        .transpose()
                }

                async fn put_settings(&self, s: &IntegrationSettings) -> Result<(), StoreError> {
                    let mut conn = self.write_conn().await?;
                    diesel::insert_into(integration_settings::table)
                        .values((
                            integration_settings::customer_id.eq(s.customer_id.as_str()),
                            integration_settings::provider.eq(s.provider.as_str()),
                            integration_settings::auto_repair.eq(s.auto_repair),
                            integration_settings::updated_at.eq(enc::ts_to(s.updated_at)),
                        ))
                        .on_conflict((
                            integration_settings::customer_id,
                            integration_settings::provider,
                        ))
                        .do_update()
                        .set((
                            integration_settings::auto_repair
                                .eq(excluded(integration_settings::auto_repair)),
                            integration_settings::updated_at
                                .eq(excluded(integration_settings::updated_at)),
                        ))
                        .execute(&mut conn)
                        .await
                        .map_err(error::db)?;
                    Ok(())
                }
            }
        };
    };
}
