//! The voice webhook of voice-URL mode: the secret the carrier signs it with, and the answer
//! to one call (dial the connection's LiveKit SIP target, or reject).

use secrecy::SecretString;

use super::Onboarding;
use crate::error::{Error, ErrorCode};
use crate::ids::{CarrierAccountId, ConnectionId, CustomerId, ProviderKind};
use crate::model::{CarrierCredentials, SealContext};
use crate::phone::E164;
use crate::ports::{SipDigestAuth, VoiceRouteCandidate};
use crate::sip::SipTarget;

/// What the voice webhook answers a call with.
#[derive(Debug, Clone)]
pub enum VoiceAnswer {
    /// Dial `sip_uri` with these digest credentials.
    Dial {
        connection_id: ConnectionId,
        sip_uri: String,
        auth: SipDigestAuth,
    },
    /// trunkline does not route this number (not connected, disconnected, or in trunk mode).
    Reject,
}

/// Why the voice webhook refused a request, for the log and the metric (a closed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoiceRefusal {
    /// No active credentials with a webhook secret for the request's account.
    UnknownAccount,
    /// The signature matches none of the account's secrets.
    BadSignature,
}

impl VoiceRefusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownAccount => "unknown_account",
            Self::BadSignature => "bad_signature",
        }
    }
}

impl Onboarding {
    /// Save (`Some`) or remove (`None`) the secret the carrier signs the customer's webhooks
    /// with, sealed with the integration's context. Called with saving the credentials.
    pub async fn save_webhook_secret(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
        secret: Option<&SecretString>,
    ) -> Result<(), Error> {
        let integration = self.integration(customer, provider).await?;
        let sealed = match secret {
            Some(s) => Some(
                self.ports
                    .vault
                    .seal(
                        s,
                        &SealContext {
                            customer_id: customer.clone(),
                            integration_id: integration.id,
                            provider,
                        },
                    )
                    .await?,
            ),
            None => None,
        };
        self.ports
            .voice
            .put_webhook_secret(customer, provider, integration.id, sealed)
            .await?;
        Ok(())
    }

    /// Check a webhook secret given with `creds` at the carrier (before anything is saved).
    ///
    /// # Errors
    /// `AUTH_INVALID` naming the field when the carrier does not accept it;
    /// `PROVIDER_UNAVAILABLE` and the like.
    pub async fn verify_webhook_secret(
        &self,
        provider: ProviderKind,
        creds: &CarrierCredentials,
        secret: &SecretString,
    ) -> Result<(), Error> {
        Ok(self
            .carrier(provider)?
            .verify_webhook_secret(creds, secret)
            .await?)
    }

    /// Parse the webhook secret of a credentials body with the carrier's own rules.
    ///
    /// # Errors
    /// `NOT_CONFIGURED` for a carrier this instance does not offer; `VALIDATION_FAILED`.
    pub fn parse_webhook_secret(
        &self,
        provider: ProviderKind,
        input: &crate::ports::CredentialInput,
    ) -> Result<Option<SecretString>, Error> {
        Ok(self.carrier(provider)?.parse_webhook_secret(input)?)
    }

    /// The voice webhook: find who owns the called number under the request's account, with
    /// ONE read of the store, and check the request's signature with that account's secret
    /// (`signed_by` is the carrier's check, e.g. Twilio's HMAC). Only then is anything about
    /// the number answered. Nothing is written.
    ///
    /// # Errors
    /// `FORBIDDEN` with the [`VoiceRefusal`] for an unknown account or a signature none of
    /// its secrets made; `SERVICE_UNAVAILABLE` when the store does not answer.
    pub async fn answer_voice_call(
        &self,
        provider: ProviderKind,
        account: &CarrierAccountId,
        to: &E164,
        signed_by: &(dyn Fn(&SecretString) -> bool + Sync),
    ) -> Result<VoiceAnswer, (Error, Option<VoiceRefusal>)> {
        let candidates = self
            .ports
            .voice
            .voice_route(provider, account, to)
            .await
            .map_err(|e| (Error::from(e), None))?;
        if candidates.is_empty() {
            return Err((
                Error::new(
                    ErrorCode::Forbidden,
                    "no credentials with an auth token are stored for this AccountSid; save \
                     the account's credentials with authToken",
                ),
                Some(VoiceRefusal::UnknownAccount),
            ));
        }
        // Several customers may have saved the same account: among those whose secret
        // signed the request, the one with a live voice-URL connection of the number answers
        // (connect lets only one customer hold a number; customers with the same token all
        // validate). Every secret is tried, so the time taken does not tell which matched.
        // A secret that does not open (sealed under another master key) is passed over, so
        // one customer's broken record does not refuse the others' calls; it is the answer
        // only when no secret signed the request.
        let mut signer: Option<&VoiceRouteCandidate> = None;
        let mut unopened = None;
        for c in &candidates {
            let ctx = SealContext {
                customer_id: c.customer_id.clone(),
                integration_id: c.integration_id,
                provider,
            };
            let secret = match self.ports.vault.open(&c.sealed_webhook_secret, &ctx).await {
                Ok(secret) => secret,
                Err(e) => {
                    tracing::warn!(
                        integration = %c.integration_id,
                        error = %e,
                        "voice webhook: a stored webhook secret does not open; passed over"
                    );
                    unopened.get_or_insert(e);
                    continue;
                }
            };
            let routes = |c: &VoiceRouteCandidate| {
                c.connection
                    .as_ref()
                    .is_some_and(|conn| conn.binding.is_some())
            };
            if signed_by(&secret) && signer.is_none_or(|s| !routes(s) && routes(c)) {
                signer = Some(c);
            }
        }
        let Some(signer) = signer else {
            if let Some(e) = unopened {
                return Err((Error::from(e), None));
            }
            return Err((
                Error::new(
                    ErrorCode::Forbidden,
                    "X-Twilio-Signature does not match: the request was not signed with the \
                     auth token stored for this AccountSid, for this URL and these parameters",
                ),
                Some(VoiceRefusal::BadSignature),
            ));
        };
        let Some(conn) = &signer.connection else {
            return Ok(VoiceAnswer::Reject);
        };
        let Some(binding) = &conn.binding else {
            return Ok(VoiceAnswer::Reject);
        };
        let ctx = SealContext {
            customer_id: signer.customer_id.clone(),
            integration_id: conn.integration_id,
            provider,
        };
        let password = self
            .ports
            .vault
            .open(&binding.sealed_sip_password, &ctx)
            .await
            .map_err(|e| (Error::from(e), None))?;
        let target = SipTarget::parse(&conn.sip_target).map_err(|e| {
            (
                Error::internal(format!("stored SIP target does not parse: {}", e.reason)),
                None,
            )
        })?;
        Ok(VoiceAnswer::Dial {
            connection_id: conn.connection_id,
            sip_uri: dial_uri(to, &target),
            auth: SipDigestAuth {
                username: binding.sip_username.clone(),
                password,
            },
        })
    }
}

/// `sip:{number}@{host[:port]};transport=tcp`: the LiveKit SIP ingress of the connection,
/// reached over TCP as LiveKit recommends for carriers.
fn dial_uri(to: &E164, target: &SipTarget) -> String {
    match target.port() {
        Some(port) => format!("sip:{to}@{}:{port};transport=tcp", target.host()),
        None => format!("sip:{to}@{};transport=tcp", target.host()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dial_uri_names_the_number_and_the_ingress_over_tcp() {
        let to = E164::parse("+14155550100").unwrap();
        let t = SipTarget::parse("sip:lk.example.com").unwrap();
        assert_eq!(
            dial_uri(&to, &t),
            "sip:+14155550100@lk.example.com;transport=tcp"
        );
        let t = SipTarget::parse("sip:lk.example.com:5080;transport=tcp").unwrap();
        assert_eq!(
            dial_uri(&to, &t),
            "sip:+14155550100@lk.example.com:5080;transport=tcp"
        );
    }
}
