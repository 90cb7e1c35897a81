//! The keys of the credential vault and of bearer-token verification, and the claims a
//! token carries the customer and the roles in.

use std::path::PathBuf;

use secrecy::SecretString;

use super::env::{Env, Problems};
use super::{
    AUTH_AUDIENCE, AUTH_ISSUER, AUTH_PUBLIC_KEYS, DEFAULT_CUSTOMER_CLAIM, DEFAULT_ROLES_CLAIM,
    VAULT_ACTIVE_KEY, VAULT_KEYS,
};

/// `TRUNKLINE_VAULT_KEYS` and `TRUNKLINE_VAULT_ACTIVE_KEY`; the key ring parses the keys.
#[derive(Debug, Clone)]
pub struct VaultKeysConfig {
    pub keys: SecretString,
    pub active_kid: String,
}

/// Where a JWT verification key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    File(PathBuf),
    /// A PEM given inline in the variable.
    Inline(String),
}

/// Configured JWT verification (all three variables set).
#[derive(Debug, Clone)]
pub struct AuthKeysConfig {
    pub public_keys: Vec<KeySource>,
    pub issuer: String,
    pub audience: String,
}

/// Which claims carry the customer and the roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNames {
    pub customer: String,
    pub roles: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        Self {
            customer: DEFAULT_CUSTOMER_CLAIM.to_owned(),
            roles: DEFAULT_ROLES_CLAIM.to_owned(),
        }
    }
}

pub(super) fn parse_vault(env: &Env, p: &mut Problems) -> Option<VaultKeysConfig> {
    let keys = env.get(VAULT_KEYS, p);
    let active = env.get(VAULT_ACTIVE_KEY, p);
    match (keys, active) {
        (Some(keys), Some(active_kid)) => Some(VaultKeysConfig {
            keys: SecretString::from(keys),
            active_kid,
        }),
        (None, None) => None,
        (Some(_), None) => {
            p.push(
                VAULT_ACTIVE_KEY,
                "is required when TRUNKLINE_VAULT_KEYS is set",
            );
            None
        }
        (None, Some(_)) => {
            p.push(
                VAULT_KEYS,
                "is required when TRUNKLINE_VAULT_ACTIVE_KEY is set",
            );
            None
        }
    }
}

pub(super) fn parse_auth(env: &Env, p: &mut Problems) -> Option<AuthKeysConfig> {
    let keys = env.get(AUTH_PUBLIC_KEYS, p);
    let issuer = env.get(AUTH_ISSUER, p);
    let audience = env.get(AUTH_AUDIENCE, p);
    let (Some(keys), Some(issuer), Some(audience)) = (&keys, &issuer, &audience) else {
        let given: Vec<&str> = [
            (AUTH_PUBLIC_KEYS, keys.is_some()),
            (AUTH_ISSUER, issuer.is_some()),
            (AUTH_AUDIENCE, audience.is_some()),
        ]
        .into_iter()
        .filter_map(|(n, set)| set.then_some(n))
        .collect();
        if !given.is_empty() {
            for (name, set) in [
                (AUTH_PUBLIC_KEYS, keys.is_some()),
                (AUTH_ISSUER, issuer.is_some()),
                (AUTH_AUDIENCE, audience.is_some()),
            ] {
                if !set {
                    p.push(
                        name,
                        format!("is required when {} is set", given.join(", ")),
                    );
                }
            }
        }
        return None;
    };
    let public_keys = parse_key_sources(keys, p)?;
    Some(AuthKeysConfig {
        public_keys,
        issuer: issuer.clone(),
        audience: audience.clone(),
    })
}

/// Comma-separated PEM file paths and/or inline PEMs. An inline PEM may come with literal
/// `\n` escapes, as some secret stores render newlines.
fn parse_key_sources(raw: &str, p: &mut Problems) -> Option<Vec<KeySource>> {
    let mut sources = Vec::new();
    for entry in raw.split(',') {
        let entry = entry.trim();
        if entry.is_empty() {
            p.push(AUTH_PUBLIC_KEYS, "has an empty entry between commas");
            return None;
        }
        if entry.starts_with("-----BEGIN") {
            sources.push(KeySource::Inline(entry.replace("\\n", "\n")));
        } else {
            sources.push(KeySource::File(PathBuf::from(entry)));
        }
    }
    Some(sources)
}

pub(super) fn parse_claim_name(
    env: &Env,
    name: &'static str,
    default: &str,
    p: &mut Problems,
) -> String {
    let Some(raw) = env.get(name, p) else {
        return default.to_owned();
    };
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) || raw.len() > 128 {
        p.push(
            name,
            "must be a claim name: at most 128 characters, no whitespace",
        );
        return default.to_owned();
    }
    raw
}
