//! What a dispatch claim's statement found, as the port's answer.

use trunkline_core::AgentDispatchId;
use trunkline_core::model::{DispatchClaim, DispatchStatus};
use trunkline_core::ports::StoreError;

use crate::codec;

/// What the claim statement did.
#[derive(Debug)]
pub enum ClaimOutcome {
    /// The claim is ours; the attempt count after incrementing, as stored.
    Won(i32),
    /// Not ours; the row's dispatch status and id at that moment (`None`: no such call).
    Lost(Option<(String, Option<String>)>),
}

impl ClaimOutcome {
    pub fn into_claim(self) -> Result<DispatchClaim, StoreError> {
        match self {
            ClaimOutcome::Won(attempts) => Ok(DispatchClaim::Won {
                attempt: codec::attempts_from_db(attempts)?,
            }),
            ClaimOutcome::Lost(current) => classify_lost_claim(current),
        }
    }
}

/// Why a claim was not won, from the row as the claim saw it.
pub fn classify_lost_claim(
    current: Option<(String, Option<String>)>,
) -> Result<DispatchClaim, StoreError> {
    let Some((status, dispatch_id)) = current else {
        return Ok(DispatchClaim::NoSuchCall);
    };
    if codec::parse_dispatch_status(&status)? != DispatchStatus::Dispatched {
        // Claimed by someone else, or `by_rule` / `gave_up` / `cancelled`: not ours to
        // dispatch.
        return Ok(DispatchClaim::HeldByOther);
    }
    let dispatch_id = codec::parse_opt(
        "calls.dispatch_id",
        dispatch_id.as_deref(),
        AgentDispatchId::parse,
    )?
    .ok_or_else(|| codec::corrupt("calls.dispatch_id", "missing on a dispatched call"))?;
    Ok(DispatchClaim::AlreadyDispatched { dispatch_id })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_claim_is_explained_from_the_current_row() {
        assert_eq!(classify_lost_claim(None), Ok(DispatchClaim::NoSuchCall));
        assert_eq!(
            classify_lost_claim(Some(("claimed".into(), None))),
            Ok(DispatchClaim::HeldByOther)
        );
        assert_eq!(
            classify_lost_claim(Some(("by_rule".into(), None))),
            Ok(DispatchClaim::HeldByOther)
        );
        assert_eq!(
            classify_lost_claim(Some(("gave_up".into(), None))),
            Ok(DispatchClaim::HeldByOther)
        );
        assert_eq!(
            classify_lost_claim(Some(("dispatched".into(), Some("AD_1".into())))),
            Ok(DispatchClaim::AlreadyDispatched {
                dispatch_id: AgentDispatchId::parse("AD_1").unwrap()
            })
        );
        assert!(matches!(
            classify_lost_claim(Some(("dispatched".into(), None))),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn a_won_claim_counts_its_attempt() {
        assert_eq!(
            ClaimOutcome::Won(2).into_claim(),
            Ok(DispatchClaim::Won { attempt: 2 })
        );
        assert!(matches!(
            ClaimOutcome::Won(-1).into_claim(),
            Err(StoreError::Corrupt(_))
        ));
    }
}
