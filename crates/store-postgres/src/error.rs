//! What PostgreSQL's error messages mean; the mapping itself is `trunkline_store_sql::error`.

use diesel_async::pooled_connection::deadpool::PoolError;
use trunkline_core::ports::StoreError;
use trunkline_store_sql::error::Dialect;

/// SQLSTATEs `42P01` (undefined table) and `42703` (undefined column) reach us as
/// `Unknown` with these messages: the schema is missing or behind.
fn is_missing_schema(message: &str) -> bool {
    message.contains("does not exist")
        && (message.starts_with("relation ") || message.starts_with("column "))
}

const POSTGRES: Dialect = Dialect {
    is_missing_schema,
    // Closed connections and serialization failures come with their own error kinds.
    is_transient: |_| false,
    cannot_connect: "cannot connect to PostgreSQL",
    timed_out: "PostgreSQL did not answer in time",
};

pub(crate) fn db(err: diesel::result::Error) -> StoreError {
    trunkline_store_sql::error::db(&POSTGRES, err)
}

pub(crate) fn pool(err: PoolError) -> StoreError {
    trunkline_store_sql::error::pool(&POSTGRES, err)
}

pub(crate) fn timed_out() -> StoreError {
    trunkline_store_sql::error::timed_out(&POSTGRES)
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
}
