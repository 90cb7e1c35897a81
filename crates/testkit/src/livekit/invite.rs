//! A SIP INVITE from a carrier, as the TwiML of a voice-URL call makes Twilio send it:
//! LiveKit finds the inbound trunk of the called number and, when the trunk requires SIP
//! digest credentials, accepts the call only with them. An accepted call plays as
//! [`LiveKitEmulator::inbound_call`] does.

use super::{CallScript, LiveKitEmulator, PlayedCall, lock, normalize_number};

/// Why LiveKit refused an INVITE (what a carrier would see as a SIP final response).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InviteRefused {
    /// The request URI is not `sip:<number>@<host>…`.
    BadUri(String),
    /// No inbound trunk accepts the number (404).
    NoTrunk,
    /// The trunk requires digest credentials and these are missing or wrong (401/403).
    Unauthorized,
}

impl LiveKitEmulator {
    /// Deliver an INVITE for `request_uri` (`sip:+14155550100@host;transport=tcp`) from
    /// `caller`, with the digest credentials the carrier was told to use.
    ///
    /// # Errors
    /// Why LiveKit would refuse the call; nothing is played then.
    pub fn sip_invite(
        &self,
        request_uri: &str,
        caller: &str,
        username: Option<&str>,
        password: Option<&str>,
    ) -> Result<PlayedCall, InviteRefused> {
        let number = request_uri
            .strip_prefix("sip:")
            .and_then(|rest| rest.split_once('@'))
            .map(|(user, _)| user.to_owned())
            .filter(|u| !u.is_empty())
            .ok_or_else(|| InviteRefused::BadUri(request_uri.to_owned()))?;
        {
            let store = lock(&self.shared.store);
            let trunk = store
                .trunks
                .iter()
                .find(|t| {
                    t.numbers
                        .iter()
                        .any(|n| normalize_number(n) == normalize_number(&number))
                })
                .ok_or(InviteRefused::NoTrunk)?;
            let required = !trunk.auth_username.is_empty() || !trunk.auth_password.is_empty();
            if required
                && (username != Some(trunk.auth_username.as_str())
                    || password != Some(trunk.auth_password.as_str()))
            {
                return Err(InviteRefused::Unauthorized);
            }
        }
        Ok(self.inbound_call(&CallScript::new(&number, caller)))
    }
}
