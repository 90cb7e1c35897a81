//! Telnyx credentials: one API key (API v2), sent as `Authorization: Bearer`.
//!
//! In the core's [`CarrierCredentials`] that is `account_id = None`, `key_id = None` and the
//! key as the secret: Telnyx keys name no account and have no public half.

use secrecy::{ExposeSecret, SecretString};
use trunkline_core::model::CarrierCredentials;
use trunkline_core::ports::{
    CredentialAlternative, CredentialField, CredentialForm, CredentialInput, ProviderError,
};
use trunkline_core::{ErrorCode, ValidationError};

/// The one field of the form, in the credentials body and in the form.
pub const API_KEY_FIELD: &str = "apiKey";

/// Longest key accepted. Telnyx's are about 60 characters; this only stops abuse.
pub const MAX_API_KEY_LEN: usize = 256;

/// Longest unknown field name quoted back in an error.
const MAX_QUOTED_NAME: usize = 32;

pub(crate) fn form() -> CredentialForm {
    CredentialForm {
        alternatives: vec![CredentialAlternative {
            name: "apiKey",
            fields: vec![CredentialField {
                name: API_KEY_FIELD,
                label: "API key (API v2)",
                secret: true,
                pattern: None,
                example: None,
            }],
        }],
    }
}

/// A field name from outside, safe to quote: printable characters only, cut short.
fn quoted(name: &str) -> String {
    let mut out: String = name
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_QUOTED_NAME)
        .collect();
    if name.chars().count() > MAX_QUOTED_NAME {
        out.push('…');
    }
    out
}

/// Exactly one secret field, `apiKey`. Every error names the field; none echoes the key.
pub(crate) fn parse(input: &CredentialInput) -> Result<CarrierCredentials, ValidationError> {
    // The form has no plain field: anything there (even `apiKey`) is not this form's.
    let unknown = input
        .fields
        .keys()
        .next()
        .or_else(|| input.secrets.keys().find(|k| k.as_str() != API_KEY_FIELD));
    if let Some(name) = unknown {
        return Err(ValidationError::new(format!(
            "unknown field \"{}\": the Telnyx credentials are apiKey only",
            quoted(name)
        )));
    }
    let key = input
        .secrets
        .get(API_KEY_FIELD)
        .ok_or_else(|| ValidationError::new("is required").field(API_KEY_FIELD))?;
    let raw = key.expose_secret();
    let why = if raw.trim().is_empty() {
        Some("must not be empty".to_owned())
    } else if raw.len() > MAX_API_KEY_LEN {
        Some(format!("must be at most {MAX_API_KEY_LEN} characters"))
    } else if raw.chars().any(char::is_control) {
        Some("must not contain control characters".to_owned())
    } else {
        None
    };
    if let Some(why) = why {
        return Err(ValidationError::new(why).field(API_KEY_FIELD));
    }
    Ok(CarrierCredentials {
        account_id: None,
        key_id: None,
        secret: key.clone(),
    })
}

/// The bearer key of stored credentials. Credentials with an account or key id are another
/// carrier's (a damaged or foreign row): `AUTH_INVALID`, and saving them again is the fix.
pub(crate) fn bearer(creds: &CarrierCredentials) -> Result<&SecretString, ProviderError> {
    if creds.account_id.is_some() || creds.key_id.is_some() {
        tracing::warn!("stored credentials are not Telnyx credentials");
        return Err(ProviderError::new(
            ErrorCode::AuthInvalid,
            "the stored credentials are not Telnyx credentials (an API key); save them again",
        ));
    }
    Ok(&creds.secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(fields: &[(&str, &str)], secrets: &[(&str, &str)]) -> CredentialInput {
        CredentialInput {
            fields: fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            secrets: secrets
                .iter()
                .map(|(k, v)| ((*k).to_owned(), SecretString::from((*v).to_owned())))
                .collect(),
        }
    }

    #[track_caller]
    fn refused(fields: &[(&str, &str)], secrets: &[(&str, &str)], says: &str) {
        let e = parse(&input(fields, secrets)).unwrap_err();
        assert_eq!(e.code, ErrorCode::ValidationFailed);
        let text = e.to_string();
        assert!(text.contains(says), "{text} does not say {says}");
        assert!(!text.contains("KEYhunter2"), "{text}");
    }

    #[test]
    fn exactly_the_api_key() {
        let c = parse(&input(&[], &[(API_KEY_FIELD, "KEYhunter2")])).unwrap();
        assert!(c.account_id.is_none() && c.key_id.is_none());
        assert_eq!(c.secret.expose_secret(), "KEYhunter2");
        assert_eq!(bearer(&c).unwrap().expose_secret(), "KEYhunter2");

        refused(&[], &[], "apiKey: is required");
        refused(&[], &[(API_KEY_FIELD, "  ")], "apiKey: must not be empty");
        refused(
            &[],
            &[(API_KEY_FIELD, &"K".repeat(MAX_API_KEY_LEN + 1))],
            "apiKey: must be at most 256",
        );
        refused(
            &[],
            &[(API_KEY_FIELD, "KEYhunter2\n")],
            "apiKey: must not contain",
        );
        // The key given as a plain field is not the form's secret field.
        refused(
            &[(API_KEY_FIELD, "KEYhunter2")],
            &[],
            "unknown field \"apiKey\"",
        );
        refused(
            &[("accountSid", "KEYhunter2")],
            &[(API_KEY_FIELD, "KEYhunter2")],
            "unknown field \"accountSid\"",
        );
        let long = format!("{}\u{7}", "x".repeat(100));
        let e = parse(&input(&[], &[(API_KEY_FIELD, "k"), (long.as_str(), "v")])).unwrap_err();
        let text = e.to_string();
        assert!(text.contains(&format!("\"{}…\"", "x".repeat(32))), "{text}");
        assert!(!text.contains('\u{7}'), "{text}");
    }

    #[test]
    fn the_form_is_one_secret_field() {
        let f = form();
        assert_eq!(f.alternatives.len(), 1);
        assert_eq!(f.alternatives[0].name, "apiKey");
        let names: Vec<_> = f.fields().map(|x| (x.name, x.label)).collect();
        assert_eq!(names, [(API_KEY_FIELD, "API key (API v2)")]);
        assert!(f.is_secret(API_KEY_FIELD));
    }

    #[test]
    fn another_carriers_credentials_are_not_a_bearer_key() {
        let twilio = CarrierCredentials {
            account_id: Some(
                trunkline_core::ids::CarrierAccountId::parse("AC0123456789abcdef0123456789abcdef")
                    .unwrap(),
            ),
            key_id: None,
            secret: SecretString::from("token"),
        };
        let e = bearer(&twilio).unwrap_err();
        assert_eq!(e.code, ErrorCode::AuthInvalid);
        assert!(!e.message.contains("token"));
    }
}
