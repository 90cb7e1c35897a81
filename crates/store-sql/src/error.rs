//! Translating diesel and pool failures into `StoreError`, once for both backends; what a
//! backend's messages mean (a missing table, a lock that outlasted its wait) is its
//! [`Dialect`].
//!
//! Messages come from the database's error fields (never a connection URL, so never a
//! password) and never from row values.

use diesel::result::{DatabaseErrorInformation, DatabaseErrorKind, Error};
use diesel_async::pooled_connection::PoolError as ManagerError;
use diesel_async::pooled_connection::deadpool::PoolError;
use trunkline_core::ports::StoreError;

/// What one backend's error messages mean.
#[derive(Debug)]
pub struct Dialect {
    /// The schema is missing or behind: `NotMigrated`.
    pub is_missing_schema: fn(&str) -> bool,
    /// Retrying later may help: `Unavailable`.
    pub is_transient: fn(&str) -> bool,
    /// The prefix of a failure to open a connection, e.g. "cannot connect to PostgreSQL".
    pub cannot_connect: &'static str,
    /// What a wait for a connection that ran out of time says.
    pub timed_out: &'static str,
}

fn describe(info: &dyn DatabaseErrorInformation) -> String {
    match info.constraint_name() {
        Some(constraint) => format!("{} ({constraint})", info.message()),
        None => info.message().to_owned(),
    }
}

pub fn db(dialect: &Dialect, err: Error) -> StoreError {
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
        Error::DatabaseError(_, info) if (dialect.is_transient)(info.message()) => {
            StoreError::Unavailable(info.message().to_owned())
        }
        Error::DatabaseError(_, info) if (dialect.is_missing_schema)(info.message()) => {
            StoreError::NotMigrated(info.message().to_owned())
        }
        Error::DatabaseError(_, info) => StoreError::Other(describe(info.as_ref())),
        Error::BrokenTransactionManager => {
            StoreError::Unavailable("connection left in a broken transaction".to_owned())
        }
        Error::DeserializationError(e) => StoreError::Corrupt(e.to_string()),
        other => StoreError::Other(other.to_string()),
    }
}

pub fn pool(dialect: &Dialect, err: PoolError) -> StoreError {
    match err {
        PoolError::Timeout(_) => {
            StoreError::Unavailable("timed out waiting for a database connection".to_owned())
        }
        PoolError::Backend(ManagerError::ConnectionError(e)) => {
            StoreError::Unavailable(format!("{}: {e}", dialect.cannot_connect))
        }
        PoolError::Backend(ManagerError::QueryError(e)) => match db(dialect, e) {
            StoreError::Other(m) => StoreError::Unavailable(m),
            mapped => mapped,
        },
        PoolError::Closed => StoreError::Unavailable("connection pool is closed".to_owned()),
        other => StoreError::Unavailable(other.to_string()),
    }
}

pub fn timed_out(dialect: &Dialect) -> StoreError {
    StoreError::Unavailable(dialect.timed_out.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST: Dialect = Dialect {
        is_missing_schema: |m| m.starts_with("no such table"),
        is_transient: |m| m == "locked",
        cannot_connect: "cannot connect",
        timed_out: "too slow",
    };

    #[test]
    fn unique_violations_are_conflicts() {
        let err = db(
            &TEST,
            Error::DatabaseError(
                DatabaseErrorKind::UniqueViolation,
                Box::new("duplicate key value violates unique constraint".to_owned()),
            ),
        );
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
        let err = db(
            &TEST,
            Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection,
                Box::new("connection closed".to_owned()),
            ),
        );
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    }

    #[test]
    fn the_dialect_decides_what_a_message_means() {
        let unknown =
            |m: &str| Error::DatabaseError(DatabaseErrorKind::Unknown, Box::new(m.to_owned()));
        assert!(matches!(
            db(&TEST, unknown("locked")),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            db(&TEST, unknown("no such table: calls")),
            StoreError::NotMigrated(_)
        ));
        assert!(matches!(
            db(&TEST, unknown("syntax error")),
            StoreError::Other(_)
        ));
    }
}
