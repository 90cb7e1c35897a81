//! `SealedSecretStore` (the walk over every customer's sealed secrets, of every kind, that
//! key rotation makes, and the compare-and-swap that keeps a concurrent save) written once
//! for both backends.

/// Expands `SealedSecretStore` for `$store`.
///
/// The calling module must have in scope `page_of(kind) -> String` (the dialect's statement
/// for one page of a kind's rows as (key, customer_id, integration_id, provider, sealed),
/// keys after `$1` in byte order, at most `$2`), `replace_of(kind) -> &str` (its
/// compare-and-swap: `$1` key, `$2` expected, `$3` new), the backend's `SqlBytes`,
/// `error::db` and `$store::conn(&self)` (see [`ports`](crate::ports)).
#[macro_export]
macro_rules! sealed_secret_store {
    ($store:ty) => {
        const _: () = {
            use diesel::QueryableByName;
            use diesel::sql_types::{BigInt, Nullable, Text};
            use diesel_async::RunQueryDsl;
            use trunkline_core::model::SealedSecret;
            use trunkline_core::ports::{SealedKind, SealedRow, SealedSecretStore, StoreError};

            #[derive(QueryableByName)]
            struct Row {
                #[diesel(sql_type = Text)]
                key: String,
                #[diesel(sql_type = Nullable<Text>)]
                customer_id: Option<String>,
                #[diesel(sql_type = Nullable<Text>)]
                integration_id: Option<String>,
                #[diesel(sql_type = Nullable<Text>)]
                provider: Option<String>,
                #[diesel(sql_type = SqlBytes)]
                sealed: Vec<u8>,
            }

            #[async_trait::async_trait]
            impl SealedSecretStore for $store {
                async fn sealed_after(
                    &self,
                    kind: SealedKind,
                    after: Option<String>,
                    limit: u32,
                ) -> Result<Vec<SealedRow>, StoreError> {
                    let mut conn = self.conn().await?;
                    let rows: Vec<Row> = diesel::sql_query(page_of(kind))
                        .bind::<Text, _>(after.unwrap_or_default())
                        .bind::<BigInt, _>(i64::from(limit))
                        .load(&mut conn)
                        .await
                        .map_err(error::db)?;
                    Ok(rows
                        .into_iter()
                        .map(|r| {
                            SealedRow::from_columns(
                                r.key,
                                r.customer_id.as_deref(),
                                r.integration_id.as_deref(),
                                r.provider.as_deref(),
                                r.sealed,
                            )
                        })
                        .collect())
                }

                async fn replace_sealed(
                    &self,
                    kind: SealedKind,
                    key: &str,
                    expected: &SealedSecret,
                    new: &SealedSecret,
                ) -> Result<bool, StoreError> {
                    let mut conn = self.write_conn().await?;
                    let n = diesel::sql_query(replace_of(kind))
                        .bind::<Text, _>(key)
                        .bind::<SqlBytes, _>(expected.0.as_slice())
                        .bind::<SqlBytes, _>(new.0.as_slice())
                        .execute(&mut conn)
                        .await
                        .map_err(error::db)?;
                    Ok(n == 1)
                }
            }
        };
    };
}
