//! Row types in PostgreSQL's native column types (`uuid`, `timestamptz`, `jsonb`); the rows
//! and their conversions are `trunkline_store_sql::rows!`.

use trunkline_store_sql::encoding::native as enc;

use crate::schema::{
    audit_events, calls, integrations, leases, number_connections, webhook_events,
};

trunkline_store_sql::rows!(diesel::pg::Pg);
