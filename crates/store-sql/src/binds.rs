//! Bind chains and SQL fragments that both dialects' hand-written statements share.

/// The `calls` columns a statement returning a call lists, in `CallRow`'s order.
#[macro_export]
macro_rules! call_columns {
    () => {
        "id, room_name, customer_id, connection_id, sip_call_id, called, caller, status, \
         dispatch_status, dispatch_id, dispatch_attempts, agent_name, started_at, answered_at, \
         ended_at, updated_at"
    };
}

/// `$query` with a call's columns bound in [`call_columns!`](crate::call_columns!) order
/// (`$attempts`: its `dispatch_attempts` as stored, from `codec::attempts_to_db`). Needs the
/// backend's `SqlId`, `SqlTs` and `enc` in scope; works on `diesel::sql_query` and on any
/// statement with the same `bind`.
#[macro_export]
macro_rules! bind_call_columns {
    ($query:expr, $call:expr, $attempts:expr) => {{
        use diesel::sql_types::{Integer, Nullable, Text};
        use trunkline_core::{AgentDispatchId, CustomerId, E164};
        let call = $call;
        $query
            .bind::<SqlId, _>(enc::id_to(call.id.as_uuid()))
            .bind::<Text, _>(call.room_name.as_str())
            .bind::<Nullable<Text>, _>(call.customer_id.as_ref().map(CustomerId::as_str))
            .bind::<Nullable<SqlId>, _>(call.connection_id.map(|c| enc::id_to(c.as_uuid())))
            .bind::<Nullable<Text>, _>(call.sip_call_id.as_deref())
            .bind::<Nullable<Text>, _>(call.called.as_ref().map(E164::as_str))
            .bind::<Nullable<Text>, _>(call.caller.as_ref().map(E164::as_str))
            .bind::<Text, _>(call.status.as_str())
            .bind::<Text, _>(call.dispatch_status.as_str())
            .bind::<Nullable<Text>, _>(call.dispatch_id.as_ref().map(AgentDispatchId::as_str))
            .bind::<Integer, _>($attempts)
            .bind::<Nullable<Text>, _>(call.agent_name.as_deref())
            .bind::<SqlTs, _>(enc::ts_to(call.started_at))
            .bind::<Nullable<SqlTs>, _>(call.answered_at.map(enc::ts_to))
            .bind::<Nullable<SqlTs>, _>(call.ended_at.map(enc::ts_to))
            .bind::<SqlTs, _>(enc::ts_to(call.updated_at))
    }};
}

/// `$query` with a bulk job's columns bound: id, customer, provider, kind, actor subject and
/// role, request id, `$options` (the options as JSON text) and the creation time. Needs the
/// backend's `SqlId`, `SqlTs` and `enc` in scope.
#[macro_export]
macro_rules! bind_job_columns {
    ($query:expr, $job:expr, $options:expr) => {{
        use diesel::sql_types::{Nullable, Text};
        let job = $job;
        $query
            .bind::<SqlId, _>(enc::id_to(job.id.as_uuid()))
            .bind::<Text, _>(job.customer_id.as_str())
            .bind::<Text, _>(job.provider.as_str())
            .bind::<Text, _>(job.kind.as_str())
            .bind::<Text, _>(&job.actor.subject)
            .bind::<Text, _>(&job.actor.role)
            .bind::<Nullable<Text>, _>(job.request_id.as_deref())
            .bind::<Text, _>($options)
            .bind::<SqlTs, _>(enc::ts_to(job.created_at))
    }};
}
