//! A request whose `Idempotency-Key` was reserved already: the first call's answer, or its
//! takeover once the first request's dial lease ran out.

use std::time::Duration;

use chrono::Utc;
use sha2::{Digest, Sha256};

use super::{
    OutboundCalls, PlaceCall, PlacedCall, PlacedStatus, Replay, dial_lease_key, lease_holder,
    withdrawn,
};
use crate::error::{Error, ErrorCode};
use crate::ids::ProviderKind;
use crate::phone::E164;
use crate::ports::{OutboundCall, OutboundCallState};

impl OutboundCalls {
    /// The answer of the first request with this key: waited for while the first is still
    /// dialling, its error again when it failed. When the first request's dial lease has run
    /// out with the call still `dialing` (its instance died), this request takes the lease
    /// and the call over.
    pub(super) async fn replay(
        &self,
        first: OutboundCall,
        provider: ProviderKind,
    ) -> Result<Replay, Error> {
        let started = tokio::time::Instant::now();
        let mut current = first;
        let mut delay = Duration::from_millis(50);
        let grace = chrono::Duration::from_std(self.lease_ttl).unwrap_or(chrono::Duration::MAX);
        while current.state == OutboundCallState::Dialing && started.elapsed() < self.replay_wait {
            // The first request takes its lease right after its reservation: once a lease's
            // time has passed since, a free lease means that request is gone.
            if Utc::now() - current.created_at > grace {
                let key = dial_lease_key(&current.customer_id, provider, current.call_id);
                if let Some(lease) = self
                    .ports
                    .leases
                    .try_acquire_lease(&key, &lease_holder(), self.lease_ttl)
                    .await?
                {
                    // Read again under the lease: the first may have finished just before it
                    // let the lease go.
                    match self
                        .ports
                        .outbound
                        .get_outbound_call(current.call_id)
                        .await?
                    {
                        Some(c) if c.state == OutboundCallState::Dialing => {
                            return Ok(Replay::TakeOver(Box::new(c), lease));
                        }
                        Some(c) => {
                            self.release(&lease).await;
                            current = c;
                            break;
                        }
                        None => {
                            self.release(&lease).await;
                            return Err(withdrawn());
                        }
                    }
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(500));
            match self
                .ports
                .outbound
                .get_outbound_call(current.call_id)
                .await?
            {
                Some(c) => current = c,
                // The first request was refused by the rate limit and withdrew its call.
                None => return Err(withdrawn()),
            }
        }
        match current.state {
            OutboundCallState::Failed => Err(replayed_failure(current.failure.as_deref())),
            state => {
                let answered = self
                    .ports
                    .call_store
                    .get_call(current.call_id)
                    .await?
                    .is_some_and(|c| c.answered_at.is_some());
                Ok(Replay::Answer(PlacedCall {
                    call_id: current.call_id,
                    room_name: current.room_name,
                    status: if state == OutboundCallState::Placed && answered {
                        PlacedStatus::Answered
                    } else {
                        PlacedStatus::Dialing
                    },
                    replayed: true,
                }))
            }
        }
    }
}

/// The stored failure of the first request, as an error again.
pub(super) fn replayed_failure(failure: Option<&str>) -> Error {
    let (code, message) = failure.and_then(|f| f.split_once(": ")).unwrap_or((
        "PROVIDER_UNAVAILABLE",
        "the first request with this key failed",
    ));
    let code = ErrorCode::ALL
        .into_iter()
        .find(|c| c.as_str() == code)
        .unwrap_or(ErrorCode::ProviderUnavailable);
    let mut e = Error::new(code, message);
    if code == ErrorCode::RateLimited {
        e.retry_after = Some(Duration::from_secs(1));
    }
    e
}

/// What the idempotency key stands for: the request's fields (and the agent it resolved to).
pub(super) fn digest(req: &PlaceCall, agent: &str) -> String {
    let canonical = serde_json::json!({
        "from": req.from.as_ref().map(E164::as_str),
        "to": req.to.as_ref().map(E164::as_str),
        "agent": agent,
        "metadata": req.metadata,
        "attributes": req.attributes,
        "wait": req.wait_until_answered,
        "ringing": req.ringing_timeout.map(|d| d.as_secs()),
    });
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replayed_failures_keep_their_code() {
        let e = replayed_failure(Some("CALL_BUSY: the callee is busy (SIP 486 Busy Here)"));
        assert_eq!(e.code, ErrorCode::CallBusy);
        assert!(e.message.contains("486"));
        let e = replayed_failure(Some("RATE_LIMITED: slow down"));
        assert_eq!(e.retry_after, Some(Duration::from_secs(1)));
        assert_eq!(replayed_failure(None).code, ErrorCode::ProviderUnavailable);
    }

    #[test]
    fn digests_tell_requests_apart() {
        let a = PlaceCall {
            from: E164::parse("+14155550100").ok(),
            to: E164::parse("+14155550199").ok(),
            ..PlaceCall::default()
        };
        let b = PlaceCall {
            to: E164::parse("+14155550198").ok(),
            ..a.clone()
        };
        assert_eq!(digest(&a, "agent"), digest(&a.clone(), "agent"));
        assert_ne!(digest(&a, "agent"), digest(&b, "agent"));
        assert_ne!(digest(&a, "agent"), digest(&a, "other"));
    }
}
