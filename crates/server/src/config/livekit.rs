//! The `TRUNKLINE_LIVEKIT_*` variables, checked by the LiveKit adapter's own rules.

use std::time::Duration;

use secrecy::SecretString;

use super::env::{Env, Problems, parse_number};
use super::{
    DEFAULT_LIVEKIT_REQUEST_TIMEOUT_SECS, DEFAULT_LIVEKIT_ROOM_PREFIX, LIVEKIT_ALLOWED_ADDRESSES,
    LIVEKIT_API_KEY, LIVEKIT_API_SECRET, LIVEKIT_AUTH_PASSWORD, LIVEKIT_AUTH_USERNAME,
    LIVEKIT_MEDIA_ENCRYPTION, LIVEKIT_REQUEST_TIMEOUT_SECS, LIVEKIT_ROOM_PREFIX, LIVEKIT_URL,
};

/// Bounds that catch typos (an extra zero) rather than express policy.
const MAX_LIVEKIT_REQUEST_TIMEOUT_SECS: u64 = 120;
const MAX_ROOM_PREFIX_LEN: usize = 64;

pub use trunkline_livekit::LiveKitConfig;

/// The LiveKit variables. The server API, key and secret go together; an inbound option
/// set without them is a problem too (it would silently do nothing). Every value is checked
/// by the adapter's own rules, part by part, so all problems are reported at once.
pub(super) fn parse_livekit(env: &Env, p: &mut Problems) -> Option<LiveKitConfig> {
    use trunkline_livekit::{InboundTrunkOptions, LiveKitConfigError, MediaEncryption};

    let url = env.get(LIVEKIT_URL, p);
    let key = env.get(LIVEKIT_API_KEY, p);
    let secret = env.get(LIVEKIT_API_SECRET, p).map(SecretString::from);
    let allowed_addresses: Vec<String> = env
        .get(LIVEKIT_ALLOWED_ADDRESSES, p)
        .map(|raw| {
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let auth_username = env.get(LIVEKIT_AUTH_USERNAME, p);
    let auth_password = env.get(LIVEKIT_AUTH_PASSWORD, p).map(SecretString::from);
    let media_encryption = env.get(LIVEKIT_MEDIA_ENCRYPTION, p).and_then(|raw| {
        let parsed = MediaEncryption::parse(&raw).ok();
        if parsed.is_none() {
            p.push(
                LIVEKIT_MEDIA_ENCRYPTION,
                "must be disable, allow or require",
            );
        }
        parsed
    });
    let request_timeout = Duration::from_secs(parse_number(
        env,
        LIVEKIT_REQUEST_TIMEOUT_SECS,
        DEFAULT_LIVEKIT_REQUEST_TIMEOUT_SECS,
        1..=MAX_LIVEKIT_REQUEST_TIMEOUT_SECS,
        p,
    ));

    // Each part alone in an otherwise valid configuration: the adapter's `validate` stops
    // at the first problem, and the operator should see every one.
    let probe = |inbound: InboundTrunkOptions, url: Option<&str>| LiveKitConfig {
        request_timeout,
        inbound,
        ..LiveKitConfig::new(
            url.unwrap_or("http://127.0.0.1"),
            "probe-key",
            SecretString::from("probe-secret"),
        )
    };
    let report = |result: Result<(), LiveKitConfigError>, p: &mut Problems| match result {
        Ok(()) => true,
        Err(LiveKitConfigError::Invalid { name, reason }) => {
            p.push(name, reason);
            false
        }
        Err(e @ (LiveKitConfigError::Missing { .. } | LiveKitConfigError::Client(_))) => {
            p.push(LIVEKIT_URL, e.to_string());
            false
        }
    };
    let addresses_ok = report(
        probe(
            InboundTrunkOptions {
                allowed_addresses: allowed_addresses.clone(),
                ..InboundTrunkOptions::default()
            },
            None,
        )
        .validate(),
        p,
    );
    let auth_ok = report(
        probe(
            InboundTrunkOptions {
                auth_username: auth_username.clone(),
                auth_password: auth_password.clone(),
                ..InboundTrunkOptions::default()
            },
            None,
        )
        .validate(),
        p,
    );
    let url_ok = url
        .as_deref()
        .is_none_or(|u| report(probe(InboundTrunkOptions::default(), Some(u)).validate(), p));

    let options_set: Vec<&str> = [
        (LIVEKIT_ALLOWED_ADDRESSES, !allowed_addresses.is_empty()),
        (LIVEKIT_AUTH_USERNAME, auth_username.is_some()),
        (LIVEKIT_AUTH_PASSWORD, auth_password.is_some()),
        (
            LIVEKIT_MEDIA_ENCRYPTION,
            env.is_set(LIVEKIT_MEDIA_ENCRYPTION),
        ),
        (
            LIVEKIT_REQUEST_TIMEOUT_SECS,
            env.is_set(LIVEKIT_REQUEST_TIMEOUT_SECS),
        ),
        (LIVEKIT_ROOM_PREFIX, env.is_set(LIVEKIT_ROOM_PREFIX)),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    let all = [
        (LIVEKIT_URL, url.is_some()),
        (LIVEKIT_API_KEY, key.is_some()),
        (LIVEKIT_API_SECRET, secret.is_some()),
    ];
    let (Some(url), Some(api_key), Some(api_secret)) = (url, key, secret) else {
        let partial = all.iter().any(|(_, set)| *set);
        if partial || !options_set.is_empty() {
            for (name, set) in all {
                if !set {
                    let why = if partial {
                        "is required when any TRUNKLINE_LIVEKIT_* variable is set".to_owned()
                    } else {
                        format!("is required when {} is set", options_set.join(", "))
                    };
                    p.push(name, why);
                }
            }
        }
        return None;
    };
    if !(addresses_ok && auth_ok && url_ok) {
        return None;
    }
    let config = LiveKitConfig {
        url,
        api_key,
        api_secret,
        request_timeout,
        inbound: InboundTrunkOptions {
            allowed_addresses,
            auth_username,
            auth_password,
            media_encryption,
        },
    };
    report(config.validate(), p).then_some(config)
}

/// Room names are LiveKit identifiers that end up in URLs and logs: letters, digits, `-`,
/// `_` and `.` only.
pub(super) fn parse_room_prefix(env: &Env, p: &mut Problems) -> String {
    let Some(raw) = env.get(LIVEKIT_ROOM_PREFIX, p) else {
        return DEFAULT_LIVEKIT_ROOM_PREFIX.to_owned();
    };
    if raw.len() > MAX_ROOM_PREFIX_LEN
        || !raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        p.push(
            LIVEKIT_ROOM_PREFIX,
            format!("must be 1 to {MAX_ROOM_PREFIX_LEN} letters, digits, '-', '_' or '.'"),
        );
        return DEFAULT_LIVEKIT_ROOM_PREFIX.to_owned();
    }
    raw
}
