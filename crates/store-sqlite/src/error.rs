//! Translating diesel, SQLite and pool failures into `StoreError`, once.
//!
//! Messages come from SQLite's error text, never from row values.

use diesel::result::{DatabaseErrorInformation, DatabaseErrorKind, Error};
use diesel_async::pooled_connection::PoolError as ManagerError;
use diesel_async::pooled_connection::deadpool::PoolError;
use trunkline_core::ports::StoreError;

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

fn describe(info: &dyn DatabaseErrorInformation) -> String {
    match info.constraint_name() {
        Some(constraint) => format!("{} ({constraint})", info.message()),
        None => info.message().to_owned(),
    }
}

pub(crate) fn db(err: Error) -> StoreError {
    match err {
        Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            StoreError::Conflict(describe(info.as_ref()))
        }
        Error::DatabaseError(
            DatabaseErrorKind::ClosedConnection
            | DatabaseErrorKind::UnableToSendCommand
            | DatabaseErrorKind::SerializationFailure,
            info,
        ) => StoreError::Unavailable(info.message().to_owned()),
        Error::DatabaseError(_, info) if is_missing_schema(info.message()) => {
            StoreError::NotMigrated(info.message().to_owned())
        }
        Error::DatabaseError(_, info) if is_transient(info.message()) => {
            StoreError::Unavailable(info.message().to_owned())
        }
        Error::DatabaseError(_, info) => StoreError::Other(describe(info.as_ref())),
        Error::BrokenTransactionManager => {
            StoreError::Unavailable("connection left in a broken transaction".to_owned())
        }
        Error::DeserializationError(e) => StoreError::Corrupt(e.to_string()),
        other => StoreError::Other(other.to_string()),
    }
}

pub(crate) fn pool(err: PoolError) -> StoreError {
    match err {
        PoolError::Timeout(_) => {
            StoreError::Unavailable("timed out waiting for a database connection".to_owned())
        }
        PoolError::Backend(ManagerError::ConnectionError(e)) => {
            StoreError::Unavailable(format!("cannot open the SQLite database: {e}"))
        }
        PoolError::Backend(ManagerError::QueryError(e)) => match db(e) {
            StoreError::Other(m) => StoreError::Unavailable(m),
            mapped => mapped,
        },
        PoolError::Closed => StoreError::Unavailable("connection pool is closed".to_owned()),
        other => StoreError::Unavailable(other.to_string()),
    }
}

pub(crate) fn timed_out() -> StoreError {
    StoreError::Unavailable("timed out waiting for a SQLite connection".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn unique_violations_are_conflicts() {
        let err = db(Error::DatabaseError(
            DatabaseErrorKind::UniqueViolation,
            Box::new("duplicate key value violates unique constraint".to_owned()),
        ));
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
        let err = db(Error::DatabaseError(
            DatabaseErrorKind::ClosedConnection,
            Box::new("connection closed".to_owned()),
        ));
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    }
}
