//! LiveKit's answers, classified into trunkline's error vocabulary once.

use std::time::Duration;

use trunkline_core::ErrorCode;
use trunkline_core::phone::mask_phone;
use trunkline_core::ports::ProviderError;

/// The longest part of a LiveKit error message kept (it goes to customers and logs).
const MAX_MESSAGE: usize = 300;

/// A Twirp error body: `{"code": "...", "msg": "...", "meta": {...}}`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub(crate) struct TwirpErrorBody {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub msg: String,
    /// `CreateSIPParticipant` failures carry the SIP answer: `sip_status_code`, `sip_status`.
    #[serde(default)]
    pub meta: std::collections::HashMap<String, String>,
}

/// Classify a non-200 answer of `method`. `body` is the raw answer: Twirp JSON from the
/// services, plain text from LiveKit's authentication middleware (a bad or expired token),
/// anything at all from a proxy in front.
pub(crate) fn classify(
    method: &str,
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
) -> ProviderError {
    let twirp: Option<TwirpErrorBody> = serde_json::from_slice(body)
        .ok()
        .filter(|b: &TwirpErrorBody| !b.code.is_empty());
    let detail = match &twirp {
        Some(t) => t.msg.clone(),
        None => String::from_utf8_lossy(body).trim().to_owned(),
    };
    let detail = sanitize(&detail);
    if let Some(sip) = twirp.as_ref().and_then(|t| {
        let code = t.meta.get("sip_status_code")?.parse::<u16>().ok()?;
        Some((code, t.meta.get("sip_status").cloned().unwrap_or_default()))
    }) {
        return sip_failure(sip.0, &sanitize(&sip.1));
    }
    let code = twirp.as_ref().map(|t| t.code.as_str());
    let (error_code, summary) = match (code, status) {
        (Some("unauthenticated"), _) | (None, 401) => (
            ErrorCode::AuthInvalid,
            "LiveKit rejected trunkline's API key, secret or token grants",
        ),
        (Some("permission_denied"), _) | (None, 403) => (
            ErrorCode::InsufficientPermissions,
            "the LiveKit API key lacks a permission this needs",
        ),
        (Some("not_found"), _) => (ErrorCode::NotFound, "LiveKit does not have it"),
        (Some("already_exists" | "aborted" | "failed_precondition"), _) => {
            (ErrorCode::Conflict, "LiveKit refused a conflicting change")
        }
        // LiveKit reports its own conflict checks (the same number on two inbound trunks,
        // two dispatch rules for the same trunk) as `invalid_argument`.
        (Some("invalid_argument"), _) if is_conflict_message(&detail) => {
            (ErrorCode::Conflict, "LiveKit refused a conflicting change")
        }
        (Some("invalid_argument" | "out_of_range"), _) => (
            ErrorCode::ValidationFailed,
            "LiveKit refused the request as invalid",
        ),
        (Some("resource_exhausted"), _) | (None, 429) => (
            ErrorCode::RateLimited,
            "LiveKit asked trunkline to slow down",
        ),
        (Some("malformed"), _) => (
            ErrorCode::Internal,
            "LiveKit could not read trunkline's request",
        ),
        (Some("bad_route"), _) | (None, 404 | 405) => (
            ErrorCode::ProviderUnavailable,
            "the configured LiveKit URL does not serve LiveKit's server API",
        ),
        _ => (
            ErrorCode::ProviderUnavailable,
            "LiveKit is unavailable or failed",
        ),
    };
    let message = if detail.is_empty() {
        format!("{summary} ({method}, HTTP {status})")
    } else {
        format!("{summary} ({method}, HTTP {status}): {detail}")
    };
    let mut error = ProviderError::new(error_code, message)
        .with_provider_code(code.map_or_else(|| format!("http_{status}"), str::to_owned));
    if let Some(after) = retry_after {
        error = error.with_retry_after(after);
    }
    error
}

/// A call LiveKit dialled and the far end (or the carrier) answered with a final failure.
/// Carriers answer "caller ID" and "destination" refusals with 403 and a reason phrase, so
/// the phrase tells them apart from a plain rejection.
pub(crate) fn sip_failure(status: u16, phrase: &str) -> ProviderError {
    let lower = phrase.to_ascii_lowercase();
    let (code, what) = match status {
        486 | 600 => (ErrorCode::CallBusy, "the callee is busy"),
        408 | 480 | 487 => (ErrorCode::CallNoAnswer, "nobody answered"),
        _ if lower.contains("caller") || lower.contains("from number") => (
            ErrorCode::CallerIdNotAllowed,
            "the carrier refused the caller ID",
        ),
        _ if lower.contains("destination")
            || lower.contains("geo")
            || lower.contains("country")
            || lower.contains("not permitted") =>
        {
            (
                ErrorCode::DestinationNotPermitted,
                "the carrier does not allow calls to this destination",
            )
        }
        500..=599 => (
            ErrorCode::ProviderUnavailable,
            "the carrier could not complete the call",
        ),
        _ => (ErrorCode::CallRejected, "the call was rejected"),
    };
    let phrase = if phrase.is_empty() {
        String::new()
    } else {
        format!(" {phrase}")
    };
    ProviderError::new(code, format!("{what} (SIP {status}{phrase})"))
        .with_provider_code(format!("sip_{status}"))
}

/// A request that got no answer (connection refused, reset, timed out).
pub(crate) fn transport(method: &str, error: &reqwest::Error) -> ProviderError {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "failed in transit"
    };
    // reqwest's own text can hold the URL; it holds no credentials (those travel in a
    // header), and the URL is configuration, not a secret.
    ProviderError::unavailable(format!(
        "LiveKit {method} {what}: {}",
        sanitize(&error.to_string())
    ))
    .with_provider_code("transport")
}

fn is_conflict_message(msg: &str) -> bool {
    let lower = msg.to_ascii_lowercase();
    lower.contains("conflicting") || lower.contains("already exists")
}

/// Keep a provider message short, on one line, and free of phone numbers (personal data):
/// every run of 7 or more digits (with an optional leading `+`) is masked.
pub(crate) fn sanitize(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len().min(MAX_MESSAGE));
    let chars: Vec<char> = raw
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut i = 0;
    while i < chars.len() {
        let start = i;
        let plus = chars[i] == '+';
        let mut j = if plus { i + 1 } else { i };
        while j < chars.len() && chars[j].is_ascii_digit() {
            j += 1;
        }
        let digits = j - if plus { i + 1 } else { i };
        if digits >= 7 {
            let run: String = chars[start..j].iter().collect();
            out.push_str(&mask_phone(&run));
            i = j;
        } else if digits > 0 {
            out.extend(&chars[start..j]);
            i = j;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    if out.chars().count() > MAX_MESSAGE {
        out = out.chars().take(MAX_MESSAGE).collect::<String>() + "…";
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn twirp(code: &str, msg: &str) -> Vec<u8> {
        serde_json::json!({ "code": code, "msg": msg })
            .to_string()
            .into_bytes()
    }

    #[test]
    fn twirp_codes_map_to_trunkline_codes() {
        let cases = [
            (
                401,
                twirp("unauthenticated", "permissions denied"),
                ErrorCode::AuthInvalid,
            ),
            (
                403,
                twirp("permission_denied", "no"),
                ErrorCode::InsufficientPermissions,
            ),
            (
                404,
                twirp("not_found", "requested sip trunk does not exist"),
                ErrorCode::NotFound,
            ),
            (409, twirp("already_exists", "x"), ErrorCode::Conflict),
            (
                400,
                twirp(
                    "invalid_argument",
                    "Conflicting inbound SIP Trunks: \"<new>\" and \"ST_1\", using the same number(s) [\"+14155550100\"] without AllowedNumbers set",
                ),
                ErrorCode::Conflict,
            ),
            (
                400,
                twirp(
                    "invalid_argument",
                    "Dispatch rule for the same trunk, inbound number, number, and PIN combination already exists in dispatch rule \"SDR_1\" \"x\"",
                ),
                ErrorCode::Conflict,
            ),
            (
                400,
                twirp("invalid_argument", "missing rule"),
                ErrorCode::ValidationFailed,
            ),
            (
                429,
                twirp("resource_exhausted", "slow"),
                ErrorCode::RateLimited,
            ),
            (
                500,
                twirp("internal", "boom"),
                ErrorCode::ProviderUnavailable,
            ),
            (
                503,
                twirp("unavailable", "down"),
                ErrorCode::ProviderUnavailable,
            ),
            (
                404,
                twirp("bad_route", "no such method"),
                ErrorCode::ProviderUnavailable,
            ),
            (400, twirp("malformed", "bad body"), ErrorCode::Internal),
            // The authentication middleware answers in plain text.
            (
                401,
                b"invalid authorization token: token is expired".to_vec(),
                ErrorCode::AuthInvalid,
            ),
            (
                502,
                b"<html>Bad Gateway</html>".to_vec(),
                ErrorCode::ProviderUnavailable,
            ),
            (429, Vec::new(), ErrorCode::RateLimited),
        ];
        for (status, body, want) in cases {
            let e = classify("ListSIPInboundTrunk", status, &body, None);
            assert_eq!(e.code, want, "{status} {}", String::from_utf8_lossy(&body));
            assert!(e.message.contains("ListSIPInboundTrunk"), "{}", e.message);
        }
    }

    #[test]
    fn phone_numbers_in_messages_are_masked() {
        let body = twirp(
            "invalid_argument",
            "Conflicting inbound SIP Trunks: \"<new>\" and \"ST_abc\", using the same number(s) [\"+14155550100\"]",
        );
        let e = classify("CreateSIPInboundTrunk", 400, &body, None);
        assert!(!e.message.contains("4155550100"), "{}", e.message);
        assert!(e.message.contains("+1********00"), "{}", e.message);
        assert!(e.message.contains("ST_abc"), "{}", e.message);
        assert_eq!(e.provider_code.as_deref(), Some("invalid_argument"));
    }

    #[test]
    fn sanitize_keeps_short_digit_runs_and_bounds_length() {
        assert_eq!(
            sanitize("HTTP 503 after 12 tries"),
            "HTTP 503 after 12 tries"
        );
        assert_eq!(sanitize("call 4155550100\nnow"), "call 4*******00 now");
        assert!(sanitize(&"x".repeat(1000)).chars().count() <= MAX_MESSAGE + 1);
    }

    #[test]
    fn retry_after_is_kept() {
        let e = classify("CreateDispatch", 429, b"", Some(Duration::from_secs(3)));
        assert_eq!(e.retry_after, Some(Duration::from_secs(3)));
        assert!(e.is_transient());
    }
}
