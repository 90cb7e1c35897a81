//! Row types in SQLite's storage forms (uuids as TEXT, times as INTEGER microseconds, JSON as
//! TEXT: `trunkline_store_sql::encoding::text`); the rows and their conversions are
//! `trunkline_store_sql::rows!`.

use trunkline_store_sql::encoding::text as enc;

use crate::schema::{
    audit_events, calls, integrations, leases, number_connections, webhook_events,
};

trunkline_store_sql::rows!(diesel::sqlite::Sqlite);
