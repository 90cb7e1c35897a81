//! Operations that need a read-after-write transaction, run synchronously on the
//! connection inside one blocking task.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text};

use crate::schema::calls;

/// One conditional UPDATE; SQLite runs one writer at a time, so exactly one concurrent
/// claimant sees a row come back. A claim without an expiry (written by `upsert_call`)
/// counts as expired. `?3` is now, `?4` the ttl.
const CLAIM_DISPATCH: &str = "\
    UPDATE calls SET \
        dispatch_status = 'claimed', \
        claimant = ?2, \
        claim_expires_at = ?3 + ?4, \
        dispatch_attempts = dispatch_attempts + 1, \
        updated_at = MAX(updated_at, ?3) \
    WHERE room_name = ?1 \
      AND (dispatch_status IN ('none', 'failed') \
           OR (dispatch_status = 'claimed' \
               AND (claim_expires_at IS NULL OR claim_expires_at <= ?3))) \
    RETURNING dispatch_attempts";

#[derive(QueryableByName)]
struct Attempts {
    #[diesel(sql_type = Integer)]
    dispatch_attempts: i32,
}

pub(crate) enum ClaimOutcome {
    /// The claim is ours; the attempt count after incrementing.
    Won(i32),
    /// Not ours; the row's dispatch status and id at that moment (`None`: no such call).
    Lost(Option<(String, Option<String>)>),
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
    conn.immediate_transaction(|conn| {
        let won = diesel::sql_query(CLAIM_DISPATCH)
            .bind::<Text, _>(room)
            .bind::<Text, _>(claimant)
            .bind::<BigInt, _>(now)
            .bind::<BigInt, _>(ttl)
            .get_result::<Attempts>(conn)
            .optional()?;
        if let Some(won) = won {
            return Ok(ClaimOutcome::Won(won.dispatch_attempts));
        }
        let current = calls::table
            .filter(calls::room_name.eq(room))
            .select((calls::dispatch_status, calls::dispatch_id))
            .first::<(String, Option<String>)>(conn)
            .optional()?;
        Ok(ClaimOutcome::Lost(current))
    })
}
