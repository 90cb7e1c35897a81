//! Translating diesel, tokio-postgres and pool failures into `StoreError`, once.
//!
//! Messages come from the server's error fields (never the connection URL, so never the
//! password) and never from row values.

use diesel::result::{DatabaseErrorInformation, DatabaseErrorKind, Error};
use diesel_async::pooled_connection::PoolError as ManagerError;
use diesel_async::pooled_connection::deadpool::PoolError;
use trunkline_core::ports::StoreError;

/// SQLSTATEs `42P01` (undefined table) and `42703` (undefined column) reach us as
/// `Unknown` with these messages: the schema is missing or behind.
fn is_missing_schema(message: &str) -> bool {
    message.contains("does not exist")
        && (message.starts_with("relation ") || message.starts_with("column "))
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
            StoreError::Unavailable(format!("cannot connect to PostgreSQL: {e}"))
        }
        PoolError::Backend(ManagerError::QueryError(e)) => match db(e) {
            StoreError::Other(m) => StoreError::Unavailable(m),
            mapped => mapped,
        },
        PoolError::Closed => StoreError::Unavailable("connection pool is closed".to_owned()),
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// An error and its causes, `outer: inner: innermost`.
pub(crate) fn with_causes(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = c.source();
    }
    message
}

pub(crate) fn timed_out() -> StoreError {
    StoreError::Unavailable("PostgreSQL did not answer in time".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_relations_and_columns_mean_not_migrated() {
        assert!(is_missing_schema(r#"relation "calls" does not exist"#));
        assert!(is_missing_schema(r#"column "claimant" does not exist"#));
        assert!(!is_missing_schema(r#"role "x" does not exist"#));
        assert!(!is_missing_schema("syntax error at or near \"FROM\""));
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
