//! What SQLite's error messages mean; the mapping itself is `trunkline_store_sql::error`.

use diesel_async::pooled_connection::deadpool::PoolError;
use trunkline_core::ports::StoreError;
use trunkline_store_sql::error::Dialect;

/// The schema is missing or behind.
fn is_missing_schema(message: &str) -> bool {
    message.starts_with("no such table") || message.starts_with("no such column")
}

/// SQLITE_BUSY / SQLITE_LOCKED that outlasted `busy_timeout`, or the file went away:
/// retrying later may help.
fn is_transient(message: &str) -> bool {
    message.contains("database is locked")
        || message.contains("database table is locked")
        || message.contains("disk I/O error")
        || message.contains("unable to open database file")
}

const SQLITE: Dialect = Dialect {
    is_missing_schema,
    is_transient,
    cannot_connect: "cannot open the SQLite database",
    timed_out: "timed out waiting for a SQLite connection",
};

pub(crate) fn db(err: diesel::result::Error) -> StoreError {
    trunkline_store_sql::error::db(&SQLITE, err)
}

pub(crate) fn pool(err: PoolError) -> StoreError {
    trunkline_store_sql::error::pool(&SQLITE, err)
}

pub(crate) fn timed_out() -> StoreError {
    trunkline_store_sql::error::timed_out(&SQLITE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::result::{DatabaseErrorKind, Error};

    #[test]
    fn missing_tables_mean_not_migrated_and_locks_are_transient() {
        assert!(is_missing_schema("no such table: calls"));
        assert!(is_missing_schema("no such column: claimant"));
        assert!(!is_missing_schema("near \"FROM\": syntax error"));
        let err = db(Error::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("database is locked".to_owned()),
        ));
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    }
}
