//! LiveKit's server API is Twirp: `POST <base>/twirp/livekit.<Service>/<Method>` with a
//! protobuf body and a short-lived HS256 token whose grants name what the call may do.

use std::time::Duration;

use livekit_api::access_token::{AccessToken, SIPGrants, VideoGrants};
use prost::Message;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use secrecy::{ExposeSecret, SecretString};
use trunkline_core::ports::ProviderError;
use url::Url;

use crate::error::{classify, transport};

/// Sent with every request, so LiveKit's logs say who called.
pub const USER_AGENT_VALUE: &str = concat!("trunkline-livekit/", env!("CARGO_PKG_VERSION"));

/// Tokens live only as long as one request could; a leaked one is soon useless.
const TOKEN_TTL: Duration = Duration::from_secs(600);

/// Error bodies longer than this are cut before parsing; LiveKit's are a few hundred bytes.
const MAX_ERROR_BODY: usize = 16 * 1024;

/// The grants a call needs, as LiveKit checks them.
#[derive(Debug, Clone)]
pub(crate) enum Grant {
    /// `sip.admin`: trunks and dispatch rules.
    SipAdmin,
    /// `video.roomAdmin` for exactly this room: agent dispatch.
    RoomAdmin(String),
    /// `sip.call`: dial a SIP participant (`CreateSIPParticipant`).
    SipCall,
}

pub(crate) struct Twirp {
    http: reqwest::Client,
    base: Url,
    api_key: String,
    api_secret: SecretString,
}

impl Twirp {
    pub fn new(
        http: reqwest::Client,
        base: Url,
        api_key: String,
        api_secret: SecretString,
    ) -> Self {
        Self {
            http,
            base,
            api_key,
            api_secret,
        }
    }

    fn token(&self, grant: &Grant) -> Result<String, ProviderError> {
        let token = AccessToken::with_api_key(&self.api_key, self.api_secret.expose_secret())
            .with_ttl(TOKEN_TTL);
        let token = match grant {
            Grant::SipAdmin => token.with_sip_grants(SIPGrants {
                admin: true,
                ..SIPGrants::default()
            }),
            Grant::SipCall => token.with_sip_grants(SIPGrants {
                call: true,
                ..SIPGrants::default()
            }),
            Grant::RoomAdmin(room) => token.with_grants(VideoGrants {
                room_admin: true,
                room: room.clone(),
                ..VideoGrants::default()
            }),
        };
        token.to_jwt().map_err(|e| {
            // Only an empty key or secret makes signing fail; configuration rules that out.
            ProviderError::new(
                trunkline_core::ErrorCode::NotConfigured,
                format!("cannot sign a LiveKit token: {e}"),
            )
        })
    }

    fn url(&self, service: &str, method: &str) -> Url {
        let mut url = self.base.clone();
        let prefix = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{prefix}/twirp/livekit.{service}/{method}"));
        url
    }

    /// One call. Never retried here: whether a call may be repeated is the caller's decision
    /// (a create whose answer was lost must be looked for, not sent again).
    pub async fn call<Req: Message, Resp: Message + Default>(
        &self,
        service: &str,
        method: &str,
        request: &Req,
        grant: &Grant,
    ) -> Result<Resp, ProviderError> {
        let token = self.token(grant)?;
        let response = self
            .http
            .post(self.url(service, method))
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header(CONTENT_TYPE, "application/protobuf")
            .header(USER_AGENT, USER_AGENT_VALUE)
            .body(request.encode_to_vec())
            .send()
            .await
            .map_err(|e| transport(method, &e))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response.bytes().await.map_err(|e| transport(method, &e))?;
        if status == 200 {
            return Resp::decode(body).map_err(|e| {
                ProviderError::unavailable(format!(
                    "LiveKit {method} answered something that is not its protobuf reply: {e}"
                ))
                .with_provider_code("decode")
            });
        }
        let body = &body[..body.len().min(MAX_ERROR_BODY)];
        let error = classify(method, status, body, retry_after);
        tracing::debug!(method, status, code = ?error.code, "LiveKit call failed");
        Err(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_a_path_prefix() {
        let t = |base: &str| {
            Twirp::new(
                reqwest::Client::new(),
                Url::parse(base).unwrap(),
                "k".into(),
                SecretString::from("s"),
            )
            .url("SIP", "ListSIPInboundTrunk")
            .to_string()
        };
        assert_eq!(
            t("http://127.0.0.1:7880"),
            "http://127.0.0.1:7880/twirp/livekit.SIP/ListSIPInboundTrunk"
        );
        assert_eq!(
            t("https://proxy.example/livekit/"),
            "https://proxy.example/livekit/twirp/livekit.SIP/ListSIPInboundTrunk"
        );
    }
}
