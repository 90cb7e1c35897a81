//! Twilio credentials: the form, its parser, and how a request authenticates.
//!
//! Two alternatives, each with the Account SID (every 2010 path names the account): a
//! Standard API key (`SK…` + secret, recommended) or the account's auth token. In the
//! core's [`CarrierCredentials`] that is `account_id = AC…`, `key_id = SK…` or `None`, and
//! the one secret.

use secrecy::{ExposeSecret, SecretString};
use trunkline_core::model::CarrierCredentials;
use trunkline_core::ports::{
    CredentialAlternative, CredentialField, CredentialForm, CredentialInput, ProviderError,
};
use trunkline_core::{ErrorCode, ValidationError};

use crate::sid::{AccountSid, ApiKeySid};

/// Longest secret accepted. Twilio's are 32 characters; this only stops abuse.
pub const MAX_SECRET_LEN: usize = 256;

const ACCOUNT_SID: &str = "accountSid";
const API_KEY_SID: &str = "apiKeySid";
const API_KEY_SECRET: &str = "apiKeySecret";
const AUTH_TOKEN: &str = "authToken";

fn account_field() -> CredentialField {
    CredentialField {
        name: ACCOUNT_SID,
        label: "Account SID",
        secret: false,
        pattern: Some("^AC[0-9a-fA-F]{32}$"),
        example: Some("AC0123456789abcdef0123456789abcdef"),
    }
}

fn api_key_fields() -> [CredentialField; 2] {
    [
        CredentialField {
            name: API_KEY_SID,
            label: "API key SID",
            secret: false,
            pattern: Some("^SK[0-9a-fA-F]{32}$"),
            example: Some("SK0123456789abcdef0123456789abcdef"),
        },
        CredentialField {
            name: API_KEY_SECRET,
            label: "API key secret",
            secret: true,
            pattern: None,
            example: None,
        },
    ]
}

fn auth_token_field() -> CredentialField {
    CredentialField {
        name: AUTH_TOKEN,
        label: "Auth token",
        secret: true,
        pattern: None,
        example: None,
    }
}

/// The credentials form: `apiKey` (recommended) or `authToken`; or both, `apiKeyAndAuthToken`:
/// the API key acts on the account, and the auth token is only kept to check the signatures
/// of Twilio's voice webhooks (voice-URL mode), since Twilio signs them with the auth token.
pub(crate) fn form() -> CredentialForm {
    let [key_sid, key_secret] = api_key_fields();
    CredentialForm {
        alternatives: vec![
            CredentialAlternative {
                name: "apiKey",
                fields: vec![account_field(), key_sid.clone(), key_secret.clone()],
            },
            CredentialAlternative {
                name: "authToken",
                fields: vec![account_field(), auth_token_field()],
            },
            CredentialAlternative {
                name: "apiKeyAndAuthToken",
                fields: vec![account_field(), key_sid, key_secret, auth_token_field()],
            },
        ],
    }
}

/// The auth token of the input, for checking webhook signatures: given alone (then it is
/// also the credentials' secret) or beside an API key.
pub(crate) fn webhook_secret(
    input: &CredentialInput,
) -> Result<Option<SecretString>, ValidationError> {
    input
        .secrets
        .get(AUTH_TOKEN)
        .map(|t| secret(t, AUTH_TOKEN))
        .transpose()
}

fn secret(value: &SecretString, field: &'static str) -> Result<SecretString, ValidationError> {
    let s = value.expose_secret();
    if s.trim().is_empty() {
        return Err(ValidationError::new("must not be empty").field(field));
    }
    if s.len() > MAX_SECRET_LEN {
        return Err(
            ValidationError::new(format!("must be at most {MAX_SECRET_LEN} characters"))
                .field(field),
        );
    }
    if s.chars().any(char::is_control) {
        return Err(ValidationError::new("must not contain control characters").field(field));
    }
    Ok(value.clone())
}

/// Parse the form's input; every error names its field and none echoes a value.
pub(crate) fn parse(input: &CredentialInput) -> Result<CarrierCredentials, ValidationError> {
    // The edge splits fields by the form; anything else is not a Twilio field.
    let known_plain = [ACCOUNT_SID, API_KEY_SID];
    let known_secret = [API_KEY_SECRET, AUTH_TOKEN];
    if input
        .fields
        .keys()
        .any(|k| !known_plain.contains(&k.as_str()))
        || input
            .secrets
            .keys()
            .any(|k| !known_secret.contains(&k.as_str()))
    {
        return Err(ValidationError::new(
            "unknown field: the Twilio credentials are accountSid with apiKeySid and \
             apiKeySecret (and optionally authToken), or accountSid with authToken",
        ));
    }
    let account = input
        .fields
        .get(ACCOUNT_SID)
        .ok_or_else(|| ValidationError::new("is required").field(ACCOUNT_SID))?;
    let account = AccountSid::parse(account).map_err(|e| e.field(ACCOUNT_SID))?;
    let given_key = input.fields.get(API_KEY_SID);
    let key_secret = input.secrets.get(API_KEY_SECRET);
    let token = input.secrets.get(AUTH_TOKEN);
    let (key_id, secret) = match (given_key, key_secret, token) {
        (Some(sid), Some(key_secret), None) => (
            Some(ApiKeySid::parse(sid).map_err(|e| e.field(API_KEY_SID))?),
            secret(key_secret, API_KEY_SECRET)?,
        ),
        (None, None, Some(token)) => (None, secret(token, AUTH_TOKEN)?),
        // The key acts; the token is only kept for webhook signatures (`webhook_secret`).
        (Some(sid), Some(key_secret), Some(token)) => {
            secret(token, AUTH_TOKEN)?;
            (
                Some(ApiKeySid::parse(sid).map_err(|e| e.field(API_KEY_SID))?),
                secret(key_secret, API_KEY_SECRET)?,
            )
        }
        (None, None, None) => {
            return Err(ValidationError::new(
                "is required, with apiKeySecret (or give authToken instead)",
            )
            .field(API_KEY_SID));
        }
        (Some(_), None, None) => {
            return Err(ValidationError::new("is required with apiKeySid").field(API_KEY_SECRET));
        }
        (None, Some(_), None) => {
            return Err(ValidationError::new("is required with apiKeySecret").field(API_KEY_SID));
        }
        (_, _, Some(_)) => {
            return Err(ValidationError::new(
                "give apiKeySid and apiKeySecret, authToken, or all three; not half of the \
                 API key with authToken",
            )
            .field(AUTH_TOKEN));
        }
    };
    Ok(CarrierCredentials {
        account_id: Some(account.into()),
        key_id: key_id.map(Into::into),
        secret,
    })
}

/// How one port call authenticates, read back from the core's credentials: HTTP Basic with
/// the key SID (API key) or the Account SID (auth token) as the user, the secret as password.
pub(crate) struct Auth<'a> {
    pub account: AccountSid,
    pub key: Option<ApiKeySid>,
    pub secret: &'a SecretString,
}

impl std::fmt::Debug for Auth<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("account", &self.account)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl<'a> Auth<'a> {
    /// # Errors
    /// `AUTH_INVALID` when the credentials are not Twilio's (no Account SID, or ids of
    /// another format): they can only have come from a damaged or foreign row, and saving
    /// the credentials again is the fix.
    pub fn of(creds: &'a CarrierCredentials) -> Result<Self, ProviderError> {
        let not_twilio = || {
            tracing::warn!("stored credentials are not Twilio credentials");
            ProviderError::new(
                ErrorCode::AuthInvalid,
                "the stored credentials are not Twilio credentials (an Account SID with an API \
                 key or auth token); save them again",
            )
        };
        let account = creds
            .account_id
            .as_ref()
            .and_then(|a| AccountSid::try_from(a).ok())
            .ok_or_else(not_twilio)?;
        let key = match &creds.key_id {
            Some(k) => Some(ApiKeySid::try_from(k).map_err(|_| not_twilio())?),
            None => None,
        };
        Ok(Self {
            account,
            key,
            secret: &creds.secret,
        })
    }

    /// The HTTP Basic user name.
    pub fn user(&self) -> &str {
        self.key
            .as_ref()
            .map_or_else(|| self.account.as_str(), ApiKeySid::as_str)
    }

    pub fn is_auth_token(&self) -> bool {
        self.key.is_none()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use trunkline_core::ids::{CarrierAccountId, CredentialKeyId};

    const AC: &str = "AC0123456789abcdef0123456789abcdef";
    const SK: &str = "SK0123456789abcdef0123456789abcdef";

    fn input(fields: &[(&str, &str)], secrets: &[(&str, &str)]) -> CredentialInput {
        CredentialInput {
            fields: fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            secrets: secrets
                .iter()
                .map(|(k, v)| ((*k).to_owned(), SecretString::from((*v).to_owned())))
                .collect(),
        }
    }

    fn api_key(secret: &str) -> CarrierCredentials {
        parse(&input(
            &[(ACCOUNT_SID, AC), (API_KEY_SID, SK)],
            &[(API_KEY_SECRET, secret)],
        ))
        .unwrap()
    }

    #[track_caller]
    fn refused(fields: &[(&str, &str)], secrets: &[(&str, &str)], field: &str) {
        let e = parse(&input(fields, secrets)).unwrap_err();
        assert_eq!(e.code, ErrorCode::ValidationFailed);
        let text = e.to_string();
        assert!(text.starts_with(field), "{text} does not name {field}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn exactly_one_alternative_and_fields_are_named() {
        let key = api_key("hunter2");
        assert_eq!(
            key.account_id.as_ref().map(CarrierAccountId::as_str),
            Some(AC)
        );
        assert_eq!(key.key_id.as_ref().map(CredentialKeyId::as_str), Some(SK));
        assert_eq!(key.secret.expose_secret(), "hunter2");
        let token = parse(&input(&[(ACCOUNT_SID, AC)], &[(AUTH_TOKEN, "hunter2")])).unwrap();
        assert_eq!(
            token.account_id.as_ref().map(CarrierAccountId::as_str),
            Some(AC)
        );
        assert!(token.key_id.is_none());
        assert!(!format!("{key:?}{token:?}").contains("hunter2"));

        refused(
            &[(ACCOUNT_SID, "AC1")],
            &[(AUTH_TOKEN, "hunter2")],
            "accountSid",
        );
        refused(&[], &[(AUTH_TOKEN, "hunter2")], "accountSid");
        refused(
            &[(ACCOUNT_SID, AC), (API_KEY_SID, "SKx")],
            &[(API_KEY_SECRET, "hunter2")],
            "apiKeySid",
        );
        refused(&[(ACCOUNT_SID, AC), (API_KEY_SID, SK)], &[], "apiKeySecret");
        refused(
            &[(ACCOUNT_SID, AC)],
            &[(API_KEY_SECRET, "hunter2")],
            "apiKeySid",
        );
        refused(&[(ACCOUNT_SID, AC)], &[], "apiKeySid");
        refused(
            &[(ACCOUNT_SID, AC)],
            &[(API_KEY_SECRET, "hunter2"), (AUTH_TOKEN, "hunter2")],
            "authToken",
        );
        refused(
            &[(ACCOUNT_SID, AC), (API_KEY_SID, SK)],
            &[(API_KEY_SECRET, "hunter2"), (AUTH_TOKEN, " ")],
            "authToken",
        );
        // Both: the key acts, the token is only the webhook secret.
        let both = input(
            &[(ACCOUNT_SID, AC), (API_KEY_SID, SK)],
            &[(API_KEY_SECRET, "key-secret"), (AUTH_TOKEN, "the-token")],
        );
        let creds = parse(&both).unwrap();
        assert_eq!(creds.secret.expose_secret(), "key-secret");
        assert!(creds.key_id.is_some());
        let token = webhook_secret(&both).unwrap().unwrap();
        assert_eq!(token.expose_secret(), "the-token");
        assert!(
            webhook_secret(&input(&[(ACCOUNT_SID, AC)], &[]))
                .unwrap()
                .is_none()
        );
        refused(
            &[(ACCOUNT_SID, AC), (API_KEY_SID, SK)],
            &[(API_KEY_SECRET, "  ")],
            "apiKeySecret",
        );
        refused(
            &[(ACCOUNT_SID, AC)],
            &[(AUTH_TOKEN, &"x".repeat(300))],
            "authToken",
        );
        refused(&[(ACCOUNT_SID, AC)], &[(AUTH_TOKEN, "a\nb")], "authToken");
    }

    #[test]
    fn fields_outside_the_form_are_refused() {
        let e = parse(&input(
            &[(ACCOUNT_SID, AC), ("password", "hunter2")],
            &[(AUTH_TOKEN, "t")],
        ))
        .unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        // A secret given as a plain field (or the other way round) is not accepted either.
        assert!(parse(&input(&[(ACCOUNT_SID, AC), (AUTH_TOKEN, "t")], &[])).is_err());
    }

    #[test]
    fn the_form_lists_both_alternatives_and_marks_the_secrets() {
        let f = form();
        let names: Vec<_> = f.alternatives.iter().map(|a| a.name).collect();
        assert_eq!(names, ["apiKey", "authToken", "apiKeyAndAuthToken"]);
        assert!(f.is_secret(API_KEY_SECRET) && f.is_secret(AUTH_TOKEN));
        assert!(!f.is_secret(ACCOUNT_SID) && !f.is_secret(API_KEY_SID));
        // The patterns a UI checks are the parser's own rules.
        for field in f.fields().filter(|x| x.pattern.is_some()) {
            let example = field.example.unwrap();
            let ok = match field.name {
                ACCOUNT_SID => AccountSid::parse(example).is_ok(),
                API_KEY_SID => ApiKeySid::parse(example).is_ok(),
                other => panic!("unexpected pattern on {other}"),
            };
            assert!(ok, "{}", field.name);
        }
    }

    #[test]
    fn requests_authenticate_as_the_key_or_the_account() {
        let key = api_key("s");
        let auth = Auth::of(&key).unwrap();
        assert_eq!((auth.user(), auth.is_auth_token()), (SK, false));
        let token = parse(&input(&[(ACCOUNT_SID, AC)], &[(AUTH_TOKEN, "t")])).unwrap();
        let auth = Auth::of(&token).unwrap();
        assert_eq!((auth.user(), auth.is_auth_token()), (AC, true));

        let foreign = CarrierCredentials {
            account_id: None,
            key_id: None,
            secret: SecretString::from("KEY-telnyx"),
        };
        assert_eq!(Auth::of(&foreign).unwrap_err().code, ErrorCode::AuthInvalid);
        let bad_key = CarrierCredentials {
            key_id: Some(CredentialKeyId::parse("key-1").unwrap()),
            ..token
        };
        assert_eq!(Auth::of(&bad_key).unwrap_err().code, ErrorCode::AuthInvalid);
    }
}
