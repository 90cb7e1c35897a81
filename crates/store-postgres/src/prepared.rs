//! Hand-written SQL that is prepared once per connection and reused.
//!
//! diesel marks its own `sql_query`, every `UPDATE` and every `ON CONFLICT DO UPDATE` as
//! unsafe to cache, so diesel-async prepares them again on each execution: a Parse round trip
//! (and a transaction in `pg_stat_database`) before every Bind/Execute. [`Prepared`] is a
//! fixed SQL text with typed binds that does not opt out of the cache: diesel-async keys its
//! per-connection statement cache on the SQL and the bind types, so the second execution on a
//! connection is one round trip.
//!
//! The text uses `$1`, `$2`, … like PostgreSQL; a parameter may appear several times. Every
//! occurrence is sent as its own bind (diesel numbers binds in the order they are pushed),
//! which keeps the text free of anything but plain SQL.

use std::marker::PhantomData;

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::{Error as DieselError, QueryResult};
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, Untyped};

trait PushBind: Send + Sync {
    fn push<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()>;
}

struct Bound<ST, T> {
    value: T,
    sql_type: PhantomData<fn() -> ST>,
}

impl<ST, T> PushBind for Bound<ST, T>
where
    Pg: HasSqlType<ST>,
    T: ToSql<ST, Pg> + Send + Sync,
{
    fn push<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_bind_param::<ST, T>(&self.value)
    }
}

/// A fixed SQL text and its binds (see the module).
#[must_use = "queries run only when executed"]
pub(crate) struct Prepared<'a> {
    sql: &'static str,
    binds: Vec<Box<dyn PushBind + 'a>>,
}

impl<'a> Prepared<'a> {
    pub(crate) fn new(sql: &'static str) -> Self {
        Self {
            sql,
            binds: Vec::new(),
        }
    }

    /// Bind the next parameter (`$1` first).
    pub(crate) fn bind<ST, T>(mut self, value: T) -> Self
    where
        Pg: HasSqlType<ST>,
        T: ToSql<ST, Pg> + Send + Sync + 'a,
        ST: 'a,
    {
        self.binds.push(Box::new(Bound {
            value,
            sql_type: PhantomData,
        }));
        self
    }
}

fn bad_parameter(sql: &str) -> DieselError {
    DieselError::QueryBuilderError(
        format!("a parameter of this statement is not bound: {sql}").into(),
    )
}

impl QueryFragment<Pg> for Prepared<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let mut rest = self.sql;
        while let Some(at) = rest.find('$') {
            out.push_sql(&rest[..at]);
            let tail = &rest[at + 1..];
            let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
            let index: usize = tail[..digits]
                .parse()
                .map_err(|_| bad_parameter(self.sql))?;
            let bind = index
                .checked_sub(1)
                .and_then(|i| self.binds.get(i))
                .ok_or_else(|| bad_parameter(self.sql))?;
            bind.push(&mut out)?;
            rest = &tail[digits..];
        }
        out.push_sql(rest);
        Ok(())
    }
}

impl QueryId for Prepared<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Prepared<'_> {
    type SqlType = Untyped;
}

#[cfg(test)]
mod tests {
    use diesel::sql_types::{Integer, Text};

    use super::*;

    #[test]
    fn every_occurrence_of_a_parameter_is_a_bind_and_the_query_may_be_cached() {
        let q = Prepared::new("SELECT $2::int, $1 WHERE x = $2")
            .bind::<Text, _>("a")
            .bind::<Integer, _>(7);
        let sql = diesel::debug_query::<Pg, _>(&q).to_string();
        assert!(sql.starts_with("SELECT $1::int, $2 WHERE x = $3"), "{sql}");
        assert!(sql.contains(r#"binds: [7, "a", 7]"#), "{sql}");
        assert!(q.is_safe_to_cache_prepared(&Pg).unwrap());
    }

    #[test]
    fn an_unbound_parameter_is_an_error_not_a_panic() {
        let q = Prepared::new("SELECT $3").bind::<Integer, _>(1);
        let mut builder = diesel::pg::PgQueryBuilder::default();
        assert!(q.to_sql(&mut builder, &Pg).is_err());
        let q = Prepared::new("SELECT $0");
        let mut builder = diesel::pg::PgQueryBuilder::default();
        assert!(q.to_sql(&mut builder, &Pg).is_err());
    }
}
