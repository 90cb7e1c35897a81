//! Operations that need a read-after-write transaction, run synchronously on the
//! connection inside one blocking task.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text};
use trunkline_core::model::CallRecord;

use trunkline_store_sql::claim::ClaimOutcome;
use trunkline_store_sql::encoding::text as enc;

use crate::rows::{CallRow, WebhookEventRow};
use crate::schema::{SqlId, SqlTs, calls, webhook_events};
use crate::store::UPSERT_CALL;

/// Whether the call has ended: its end recorded, or LiveKit's `room_finished` for its room
/// received (which can come before anything else of the call).
macro_rules! ended_at {
    () => {
        "COALESCE(ended_at, (SELECT at FROM finished))"
    };
}

/// One conditional UPDATE; SQLite runs one writer at a time, so exactly one concurrent
/// claimant sees a row come back. A claim without an expiry (written by `upsert_call`)
/// counts as expired. A call that ended is not claimed: the same statement cancels its
/// dispatch (and ends the call when only `room_finished` said so), and the row comes back
/// `cancelled`. `?3` is now, `?4` the ttl.
const CLAIM_DISPATCH: &str = concat!(
    "WITH finished AS (SELECT MIN(received_at) AS at FROM webhook_events \
         WHERE room_name = ?1 AND kind = 'room_finished') \
     UPDATE calls SET \
         ended_at = ",
    ended_at!(),
    ", status = CASE WHEN status = 'unrouted' OR ",
    ended_at!(),
    " IS NULL THEN status ELSE 'ended' END, \
         dispatch_status = CASE WHEN ",
    ended_at!(),
    " IS NULL THEN 'claimed' ELSE 'cancelled' END, \
         claimant = CASE WHEN ",
    ended_at!(),
    " IS NULL THEN ?2 END, \
         claim_expires_at = CASE WHEN ",
    ended_at!(),
    " IS NULL THEN ?3 + ?4 END, \
         dispatch_attempts = dispatch_attempts + CASE WHEN ",
    ended_at!(),
    " IS NULL THEN 1 ELSE 0 END, \
         updated_at = MAX(updated_at, ?3) \
     WHERE room_name = ?1 \
       AND (dispatch_status IN ('none', 'failed') \
            OR (dispatch_status = 'claimed' \
                AND (claim_expires_at IS NULL OR claim_expires_at <= ?3))) \
     RETURNING dispatch_status, dispatch_attempts"
);

#[derive(QueryableByName)]
struct Attempts {
    #[diesel(sql_type = Text)]
    dispatch_status: String,
    #[diesel(sql_type = Integer)]
    dispatch_attempts: i32,
}

/// `BEGIN IMMEDIATE` takes the write lock up front (waiting for it under `busy_timeout`),
/// so the UPDATE and the follow-up read see one consistent state, and a read transaction
/// never has to be upgraded to a write one (which fails with SQLITE_BUSY instead of waiting).
pub(crate) fn claim_dispatch(
    conn: &mut SqliteConnection,
    room: &str,
    claimant: &str,
    now: i64,
    ttl: i64,
) -> QueryResult<ClaimOutcome> {
    conn.immediate_transaction(|conn| claim_in(conn, room, claimant, now, ttl))
}

/// The claim, inside the caller's write transaction.
fn claim_in(
    conn: &mut SqliteConnection,
    room: &str,
    claimant: &str,
    now: i64,
    ttl: i64,
) -> QueryResult<ClaimOutcome> {
    let claimed = diesel::sql_query(CLAIM_DISPATCH)
        .bind::<Text, _>(room)
        .bind::<Text, _>(claimant)
        .bind::<BigInt, _>(now)
        .bind::<BigInt, _>(ttl)
        .get_result::<Attempts>(conn)
        .optional()?;
    if let Some(row) = claimed {
        return Ok(if row.dispatch_status == "claimed" {
            ClaimOutcome::Won(row.dispatch_attempts)
        } else {
            // Refused: the call ended, and the statement cancelled its dispatch.
            ClaimOutcome::Lost(Some((row.dispatch_status, None)))
        });
    }
    let current = calls::table
        .filter(calls::room_name.eq(room))
        .select((calls::dispatch_status, calls::dispatch_id))
        .first::<(String, Option<String>)>(conn)
        .optional()?;
    Ok(ClaimOutcome::Lost(current))
}

/// Insert or merge the call (see `UPSERT_CALL`); `attempts` is `call.dispatch_attempts` as
/// stored.
pub(crate) fn upsert_call(
    conn: &mut SqliteConnection,
    call: &CallRecord,
    attempts: i32,
) -> QueryResult<CallRow> {
    trunkline_store_sql::bind_call_columns!(diesel::sql_query(UPSERT_CALL), call, attempts)
        .get_result(conn)
}

pub(crate) enum JoinOutcome {
    Duplicate,
    Recorded(Box<CallRow>, Option<ClaimOutcome>),
}

/// Who claims, now, ttl (µs).
pub(crate) type ClaimArgs = (String, i64, i64);

/// `CallStore::record_join` as one write transaction: one WAL sync instead of three.
pub(crate) fn record_join(
    conn: &mut SqliteConnection,
    event: &WebhookEventRow,
    call: &CallRecord,
    attempts: i32,
    claim: Option<&ClaimArgs>,
) -> QueryResult<JoinOutcome> {
    conn.immediate_transaction(|conn| {
        let first = diesel::insert_into(webhook_events::table)
            .values(event)
            .on_conflict_do_nothing()
            .execute(conn)?
            == 1;
        if !first {
            let room = calls::table.filter(calls::room_name.eq(call.room_name.as_str()));
            if diesel::select(diesel::dsl::exists(room)).get_result::<bool>(conn)? {
                return Ok(JoinOutcome::Duplicate);
            }
        }
        let mut row = upsert_call(conn, call, attempts)?;
        let claim = match claim {
            Some((claimant, now, ttl)) => {
                let claim = claim_in(conn, call.room_name.as_str(), claimant, *now, *ttl)?;
                // The call as the claim left it (a refusal cancels its dispatch): read in
                // this transaction, in-process, so the webhook's answer needs no read later.
                row = calls::table
                    .filter(calls::room_name.eq(call.room_name.as_str()))
                    .select(CallRow::as_select())
                    .first(conn)?;
                Some(claim)
            }
            None => None,
        };
        Ok(JoinOutcome::Recorded(Box::new(row), claim))
    })
}
