//! Bearer-token authentication.
//!
//! Tokens are JWTs verified against configured public keys. The algorithm a key accepts is
//! fixed by the key's type when the key is loaded (RSA → RS256, P-256 → ES256, Ed25519 →
//! EdDSA), never taken from the token: a token that names another algorithm (`none`,
//! `HS256` with the public key as the HMAC secret, ...) matches no key and is refused.

use std::fmt;
use std::future::{Ready, ready};
use std::path::Path;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use spki::der::Decode;
use spki::{ObjectIdentifier, SubjectPublicKeyInfoRef};
use trunkline_core::CustomerId;
use trunkline_core::model::Actor;

use crate::config::{ClaimNames, KeySource};
use crate::error::ApiError;

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 30;

/// The role that may read every customer's data and change nothing.
pub const SUPPORT_ROLE: &str = "support";

const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// Pin jsonwebtoken to its RustCrypto backend. Without this, a dependency that also enables
/// its aws-lc backend would leave it unable to pick one, and every verification would panic.
pub fn install_jwt_provider() {
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
}

/// A public key that verifies tokens, with the one algorithm it accepts.
#[derive(Clone)]
pub struct VerifyKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
    /// Where the key came from, for start-up messages.
    label: String,
}

impl fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl VerifyKey {
    /// Load a PEM public key (SPKI `PUBLIC KEY`, or PKCS#1 `RSA PUBLIC KEY`).
    ///
    /// # Errors
    /// A message naming what is wrong with the key (never its bytes).
    pub fn from_pem(pem: &[u8], kid: Option<String>, label: &str) -> Result<Self, String> {
        let (pem_label, der) = spki::der::pem::decode_vec(pem)
            .map_err(|e| format!("{label}: not a PEM public key ({e})"))?;
        let algorithm = match pem_label {
            "RSA PUBLIC KEY" => Algorithm::RS256,
            "PUBLIC KEY" => {
                let spki = SubjectPublicKeyInfoRef::from_der(&der)
                    .map_err(|e| format!("{label}: not a valid public key ({e})"))?;
                let (oid, params) = spki
                    .algorithm
                    .oids()
                    .map_err(|e| format!("{label}: not a valid public key ({e})"))?;
                match (oid, params) {
                    (OID_RSA, _) => Algorithm::RS256,
                    (OID_EC, Some(OID_P256)) => Algorithm::ES256,
                    (OID_EC, _) => {
                        return Err(format!(
                            "{label}: only P-256 elliptic-curve keys are supported (ES256)"
                        ));
                    }
                    (OID_ED25519, _) => Algorithm::EdDSA,
                    _ => {
                        return Err(format!(
                            "{label}: unsupported key type; use RSA, EC P-256 or Ed25519"
                        ));
                    }
                }
            }
            other if other.contains("PRIVATE KEY") => {
                return Err(format!(
                    "{label}: is a private key; configure the public key only"
                ));
            }
            other => {
                return Err(format!("{label}: PEM block {other:?} is not a public key"));
            }
        };
        let key = match algorithm {
            Algorithm::RS256 => DecodingKey::from_rsa_pem(pem),
            Algorithm::ES256 => DecodingKey::from_ec_pem(pem),
            _ => DecodingKey::from_ed_pem(pem),
        }
        .map_err(|e| format!("{label}: cannot load the key ({e})"))?;
        Ok(Self {
            kid,
            algorithm,
            key,
            label: label.to_owned(),
        })
    }

    /// Load every configured key. A file's kid is its name without extension
    /// (`keys/2025-01.pem` → `2025-01`); inline keys have none.
    ///
    /// # Errors
    /// A message naming the failing entry (a path, or the inline key's position).
    pub fn load_all(sources: &[KeySource]) -> Result<Vec<Self>, String> {
        sources
            .iter()
            .enumerate()
            .map(|(i, source)| match source {
                KeySource::File(path) => {
                    let label = path.display().to_string();
                    let pem =
                        std::fs::read(path).map_err(|e| format!("cannot read {label}: {e}"))?;
                    Self::from_pem(&pem, file_kid(path), &label)
                }
                KeySource::Inline(pem) => {
                    Self::from_pem(pem.as_bytes(), None, &format!("inline key #{}", i + 1))
                }
            })
            .collect()
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    pub fn label(&self) -> &str {
        &self.label
    }
}

fn file_kid(path: &Path) -> Option<String> {
    path.file_stem()
        .and_then(|s| s.to_str())
        .map(ToOwned::to_owned)
}

/// Why a token was refused. The message is safe to return to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AuthError(pub String);

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        ApiError::unauthenticated(e.0)
    }
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's `sub`.
    pub subject: String,
    /// The caller's own customer.
    pub customer_id: CustomerId,
    pub roles: Vec<String>,
}

impl Caller {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Support reads every customer's data and changes nothing.
    pub fn is_support(&self) -> bool {
        self.has_role(SUPPORT_ROLE)
    }

    /// Who acts, for the audit trail: the token's subject and its role.
    pub fn actor(&self) -> Actor {
        let role = if self.is_support() {
            SUPPORT_ROLE.to_owned()
        } else if self.roles.is_empty() {
            "customer".to_owned()
        } else {
            self.roles.join(" ")
        };
        Actor {
            subject: self.subject.clone(),
            role,
        }
    }
}

/// Verifies bearer tokens.
#[derive(Debug)]
pub struct Authenticator {
    keys: Vec<VerifyKey>,
    issuer: String,
    audience: String,
    claims: ClaimNames,
}

impl Authenticator {
    pub fn new(
        keys: Vec<VerifyKey>,
        issuer: impl Into<String>,
        audience: impl Into<String>,
        claims: ClaimNames,
    ) -> Self {
        install_jwt_provider();
        Self {
            keys,
            issuer: issuer.into(),
            audience: audience.into(),
            claims,
        }
    }

    pub fn keys(&self) -> &[VerifyKey] {
        &self.keys
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    pub fn claim_names(&self) -> &ClaimNames {
        &self.claims
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut v = Validation::new(algorithm);
        v.leeway = LEEWAY_SECS;
        v.validate_exp = true;
        v.validate_nbf = true;
        v.validate_aud = true;
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v
    }

    /// Verify a token and read the caller from it.
    ///
    /// # Errors
    /// [`AuthError`] saying, safely, why the token is refused.
    pub fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let refuse = |m: &str| AuthError(m.to_owned());
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| refuse("the token is malformed or names an unsupported algorithm"))?;
        // A kid picks its key; a kid we do not know falls back to trying each key, as keys
        // loaded from inline PEM have no kid.
        let by_kid: Vec<&VerifyKey> = match &header.kid {
            Some(kid) => self
                .keys
                .iter()
                .filter(|k| k.kid.as_deref() == Some(kid.as_str()))
                .collect(),
            None => Vec::new(),
        };
        let candidates = if by_kid.is_empty() {
            self.keys.iter().collect()
        } else {
            by_kid
        };
        let candidates: Vec<&VerifyKey> = candidates
            .into_iter()
            .filter(|k| k.algorithm == header.alg)
            .collect();
        if candidates.is_empty() {
            return Err(AuthError(format!(
                "the token's algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let mut last = refuse("the token signature does not verify");
        for key in candidates {
            match jsonwebtoken::decode::<Map<String, Value>>(
                token,
                &key.key,
                &self.validation(key.algorithm),
            ) {
                Ok(data) => return self.caller_from(&data.claims),
                // The next key may be the one that signed it.
                Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => {
                    last = refuse("the token signature does not verify");
                }
                Err(e) => return Err(explain(e.kind())),
            }
        }
        Err(last)
    }

    fn caller_from(&self, claims: &Map<String, Value>) -> Result<Caller, AuthError> {
        let subject = match claims.get("sub") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            _ => {
                return Err(AuthError(
                    "the token's sub claim must be a non-empty string".into(),
                ));
            }
        };
        let name = &self.claims.customer;
        let raw_customer = match claims.get(name) {
            Some(Value::String(s)) => s.clone(),
            // An integer id is read as its digits. A fraction is refused: its text is not
            // the issuer's (JSON parsers may round it), so two tokens meant for one customer
            // could name two.
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
            Some(_) => {
                return Err(AuthError(format!(
                    "the token's {name} claim must be a string or an integer"
                )));
            }
            None => return Err(AuthError(format!("the token has no {name} claim"))),
        };
        let customer_id = CustomerId::parse(&raw_customer).map_err(|e| {
            AuthError(format!(
                "the token's {name} claim is not a customer id: {e}"
            ))
        })?;
        let roles_name = &self.claims.roles;
        let roles = match claims.get(roles_name) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => s.split_whitespace().map(ToOwned::to_owned).collect(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(ToOwned::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    AuthError(format!(
                        "the token's {roles_name} claim must be an array of strings"
                    ))
                })?,
            Some(_) => {
                return Err(AuthError(format!(
                    "the token's {roles_name} claim must be an array of strings or a \
                     space-separated string"
                )));
            }
        };
        Ok(Caller {
            subject,
            customer_id,
            roles,
        })
    }
}

fn explain(kind: &ErrorKind) -> AuthError {
    let m = match kind {
        ErrorKind::ExpiredSignature => "the token has expired".to_owned(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".to_owned(),
        ErrorKind::InvalidIssuer => "the token's issuer is not accepted".to_owned(),
        ErrorKind::InvalidAudience => "the token's audience is not accepted".to_owned(),
        ErrorKind::MissingRequiredClaim(c) => format!("the token has no {c} claim"),
        ErrorKind::InvalidClaimFormat(c) => format!("the token's {c} claim has the wrong type"),
        ErrorKind::InvalidSignature => "the token signature does not verify".to_owned(),
        ErrorKind::InvalidAlgorithm => "the token's algorithm is not accepted".to_owned(),
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => "the token is malformed".to_owned(),
        _ => "the token could not be verified".to_owned(),
    };
    AuthError(m)
}

/// The bearer token of a request.
fn bearer(req: &HttpRequest) -> Result<&str, AuthError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| AuthError("missing bearer token (Authorization: Bearer <token>)".into()))?;
    let value = value
        .to_str()
        .map_err(|_| AuthError("the Authorization header is malformed".into()))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| AuthError("the Authorization header must be Bearer <token>".into()))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError(
            "the Authorization header must use the Bearer scheme".into(),
        ));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError("the bearer token is empty".into()));
    }
    Ok(token)
}

fn authenticate(req: &HttpRequest) -> Result<Caller, ApiError> {
    let auth = req
        .app_data::<web::Data<Authenticator>>()
        .ok_or_else(|| ApiError::internal("no Authenticator registered as app data"))?;
    let caller = auth.verify(bearer(req)?)?;
    // Support finds a customer's requests by this field of the request span.
    tracing::Span::current().record("customer_id", caller.customer_id.as_str());
    Ok(caller)
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

#[derive(Deserialize)]
struct ScopeQuery {
    #[serde(rename = "customerId")]
    customer_id: Option<String>,
}

/// The `customerId` query parameter, if given.
fn requested_customer(req: &HttpRequest) -> Result<Option<CustomerId>, ApiError> {
    let q = web::Query::<ScopeQuery>::from_query(req.query_string())
        .map_err(|_| ApiError::validation("the query string is malformed"))?;
    q.into_inner()
        .customer_id
        .map(|raw| CustomerId::parse(&raw).map_err(|e| ApiError::from(e.field("customerId"))))
        .transpose()
}

/// Whose data a read acts on: the caller's own customer, or, for support, the customer
/// named by the `customerId` query parameter.
#[derive(Debug, Clone)]
pub struct ReadScope {
    pub caller: Caller,
    pub customer_id: CustomerId,
}

impl ReadScope {
    pub fn for_caller(caller: Caller, requested: Option<CustomerId>) -> Result<Self, ApiError> {
        let customer_id = match requested {
            Some(c) if caller.is_support() => {
                tracing::Span::current().record("for_customer_id", c.as_str());
                c
            }
            Some(c) if c != caller.customer_id => {
                return Err(ApiError::forbidden(
                    "only the support role may read another customer's data",
                ));
            }
            _ => caller.customer_id.clone(),
        };
        Ok(Self {
            caller,
            customer_id,
        })
    }
}

impl FromRequest for ReadScope {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req).and_then(|c| Self::for_caller(c, requested_customer(req)?)))
    }
}

/// Whose data a change acts on: always the caller's own customer. Support changes nothing.
#[derive(Debug, Clone)]
pub struct WriteScope {
    pub caller: Caller,
    pub customer_id: CustomerId,
}

impl WriteScope {
    pub fn for_caller(caller: Caller, requested: Option<CustomerId>) -> Result<Self, ApiError> {
        if caller.is_support() {
            return Err(ApiError::forbidden("the support role is read-only"));
        }
        if requested.is_some_and(|c| c != caller.customer_id) {
            return Err(ApiError::forbidden(
                "a change can only act on the caller's own customer",
            ));
        }
        let customer_id = caller.customer_id.clone();
        Ok(Self {
            caller,
            customer_id,
        })
    }
}

impl FromRequest for WriteScope {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req).and_then(|c| Self::for_caller(c, requested_customer(req)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;
    use trunkline_core::ErrorCode;

    const ISS: &str = "https://issuer.test";
    const AUD: &str = "trunkline-test";

    fn testdata(name: &str) -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn key(name: &str, kid: Option<&str>) -> VerifyKey {
        VerifyKey::from_pem(&testdata(name), kid.map(ToOwned::to_owned), name).unwrap()
    }

    fn auth_with(keys: Vec<VerifyKey>) -> Authenticator {
        Authenticator::new(keys, ISS, AUD, ClaimNames::default())
    }

    fn auth() -> Authenticator {
        auth_with(vec![key("ed25519-public.pem", None)])
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn claims() -> Value {
        json!({
            "iss": ISS,
            "aud": AUD,
            "sub": "user-1",
            "customer_id": "cust_1",
            "roles": ["support"],
            "iat": now(),
            "exp": now() + 600,
        })
    }

    fn sign(alg: Algorithm, private: &str, kid: Option<&str>, claims: &Value) -> String {
        let pem = testdata(private);
        let key = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
            Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
            _ => EncodingKey::from_ed_pem(&pem),
        }
        .unwrap();
        let mut header = Header::new(alg);
        header.kid = kid.map(ToOwned::to_owned);
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }

    fn ed(claims: &Value) -> String {
        sign(Algorithm::EdDSA, "ed25519-private.pem", None, claims)
    }

    fn with(mut base: Value, key: &str, value: Value) -> Value {
        base[key] = value;
        base
    }

    fn without(mut base: Value, key: &str) -> Value {
        base.as_object_mut().unwrap().remove(key);
        base
    }

    #[track_caller]
    fn refused(auth: &Authenticator, token: &str, why: &str) {
        let err = auth.verify(token).expect_err("token must be refused");
        assert!(err.0.contains(why), "{:?} does not say {why:?}", err.0);
        let api = ApiError::from(err);
        assert_eq!(api.code(), ErrorCode::Unauthenticated);
    }

    #[test]
    fn accepts_a_good_token_of_each_key_type() {
        for (alg, private, public) in [
            (
                Algorithm::EdDSA,
                "ed25519-private.pem",
                "ed25519-public.pem",
            ),
            (Algorithm::RS256, "rsa-private.pem", "rsa-public.pem"),
            (Algorithm::RS256, "rsa-private.pem", "rsa-public-pkcs1.pem"),
            (Algorithm::ES256, "ec256-private.pem", "ec256-public.pem"),
        ] {
            let k = key(public, None);
            assert_eq!(k.algorithm(), alg, "{public}");
            let caller = auth_with(vec![k])
                .verify(&sign(alg, private, None, &claims()))
                .unwrap_or_else(|e| panic!("{public}: {e}"));
            assert_eq!(caller.subject, "user-1");
            assert_eq!(caller.customer_id.as_str(), "cust_1");
            assert_eq!(caller.roles, vec!["support".to_owned()]);
            assert!(caller.is_support());
        }
    }

    #[test]
    fn refuses_expired() {
        let c = with(claims(), "exp", json!(now() - 120));
        refused(&auth(), &ed(&c), "expired");
    }

    #[test]
    fn leeway_tolerates_small_skew() {
        let c = with(claims(), "exp", json!(now() - 5));
        auth().verify(&ed(&c)).unwrap();
    }

    #[test]
    fn refuses_missing_exp() {
        refused(&auth(), &ed(&without(claims(), "exp")), "exp");
    }

    #[test]
    fn refuses_not_yet_valid() {
        let c = with(claims(), "nbf", json!(now() + 600));
        refused(&auth(), &ed(&c), "not valid yet");
    }

    #[test]
    fn refuses_wrong_issuer() {
        let c = with(claims(), "iss", json!("https://evil.test"));
        refused(&auth(), &ed(&c), "issuer");
        refused(&auth(), &ed(&without(claims(), "iss")), "iss");
    }

    #[test]
    fn refuses_wrong_audience() {
        let c = with(claims(), "aud", json!("someone-else"));
        refused(&auth(), &ed(&c), "audience");
        refused(&auth(), &ed(&without(claims(), "aud")), "aud");
    }

    #[test]
    fn refuses_alg_none() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(claims().to_string());
        refused(&auth(), &format!("{header}.{body}."), "malformed");
        refused(&auth(), &format!("{header}.{body}"), "malformed");
    }

    #[test]
    fn refuses_hs256_signed_with_the_public_key() {
        for public in ["ed25519-public.pem", "rsa-public.pem"] {
            let secret = EncodingKey::from_secret(&testdata(public));
            let token =
                jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims(), &secret).unwrap();
            refused(&auth_with(vec![key(public, None)]), &token, "not accepted");
        }
    }

    #[test]
    fn refuses_missing_or_bad_customer_claim() {
        refused(
            &auth(),
            &ed(&without(claims(), "customer_id")),
            "no customer_id claim",
        );
        let c = with(claims(), "customer_id", json!("has space"));
        refused(&auth(), &ed(&c), "not a customer id");
        let c = with(claims(), "customer_id", json!({"nested": 1}));
        refused(&auth(), &ed(&c), "must be a string");
        // A fraction names no customer for sure (its text depends on the parser's rounding).
        let c = with(
            claims(),
            "customer_id",
            json!(-2.112_343_195_602_271_3e-283),
        );
        refused(&auth(), &ed(&c), "must be a string or an integer");
        let c = with(claims(), "customer_id", json!(1.5));
        refused(&auth(), &ed(&c), "must be a string or an integer");
        let c = with(claims(), "customer_id", json!(42));
        let caller = auth().verify(&ed(&c)).unwrap();
        assert_eq!(caller.customer_id.as_str(), "42");
    }

    #[test]
    fn refuses_missing_subject() {
        refused(&auth(), &ed(&without(claims(), "sub")), "sub");
    }

    #[test]
    fn refuses_garbled_tokens() {
        refused(&auth(), "not-a-jwt", "malformed");
        refused(&auth(), "eyJ!!!.eyJ.sig", "malformed");
        let good = ed(&claims());
        let (_, rest) = good.split_once('.').unwrap();
        refused(
            &auth(),
            &format!("{}.{rest}", URL_SAFE_NO_PAD.encode(b"{garbage")),
            "malformed",
        );
        // A valid header with a payload that is not JSON.
        let header = good.split('.').next().unwrap();
        let sig = good.rsplit('.').next().unwrap();
        refused(
            &auth(),
            &format!("{header}.{}.{sig}", URL_SAFE_NO_PAD.encode(b"nope")),
            "",
        );
    }

    #[test]
    fn refuses_a_token_signed_by_another_key() {
        let token = sign(
            Algorithm::EdDSA,
            "other-ed25519-private.pem",
            None,
            &claims(),
        );
        refused(&auth(), &token, "signature does not verify");
        // Also when the token claims the kid of a configured key.
        let a = auth_with(vec![key("ed25519-public.pem", Some("k1"))]);
        let token = sign(
            Algorithm::EdDSA,
            "other-ed25519-private.pem",
            Some("k1"),
            &claims(),
        );
        refused(&a, &token, "signature does not verify");
    }

    #[test]
    fn tampered_payload_is_refused() {
        let good = ed(&claims());
        let parts: Vec<&str> = good.split('.').collect();
        let forged = with(claims(), "customer_id", json!("cust_2"));
        let body = URL_SAFE_NO_PAD.encode(forged.to_string());
        refused(
            &auth(),
            &format!("{}.{body}.{}", parts[0], parts[2]),
            "signature",
        );
    }

    #[test]
    fn kid_selects_the_key_and_unknown_kid_tries_each() {
        let a = auth_with(vec![
            key("other-ed25519-public.pem", Some("old")),
            key("ed25519-public.pem", Some("new")),
        ]);
        a.verify(&sign(
            Algorithm::EdDSA,
            "ed25519-private.pem",
            Some("new"),
            &claims(),
        ))
        .unwrap();
        a.verify(&sign(
            Algorithm::EdDSA,
            "ed25519-private.pem",
            None,
            &claims(),
        ))
        .unwrap();
        a.verify(&sign(
            Algorithm::EdDSA,
            "ed25519-private.pem",
            Some("unknown"),
            &claims(),
        ))
        .unwrap();
        // A kid naming a key of another algorithm does not open the door to that algorithm.
        let mixed = auth_with(vec![
            key("rsa-public.pem", Some("r")),
            key("ed25519-public.pem", Some("e")),
        ]);
        mixed
            .verify(&sign(
                Algorithm::RS256,
                "rsa-private.pem",
                Some("r"),
                &claims(),
            ))
            .unwrap();
        refused(
            &mixed,
            &sign(
                Algorithm::EdDSA,
                "other-ed25519-private.pem",
                Some("e"),
                &claims(),
            ),
            "signature",
        );
    }

    #[test]
    fn algorithm_comes_from_the_key_not_the_token() {
        // An ES256 token against an RSA-only configuration names an algorithm no key has.
        let a = auth_with(vec![key("rsa-public.pem", None)]);
        refused(
            &a,
            &sign(Algorithm::ES256, "ec256-private.pem", None, &claims()),
            "not accepted",
        );
    }

    #[test]
    fn roles_claim_forms() {
        let a = auth();
        let c = with(claims(), "roles", json!("support admin"));
        assert_eq!(a.verify(&ed(&c)).unwrap().roles, vec!["support", "admin"]);
        let c = without(claims(), "roles");
        let caller = a.verify(&ed(&c)).unwrap();
        assert!(caller.roles.is_empty());
        assert!(!caller.is_support());
        let c = with(claims(), "roles", json!([1, 2]));
        refused(&a, &ed(&c), "array of strings");
    }

    #[test]
    fn claim_names_are_configurable() {
        let a = Authenticator::new(
            vec![key("ed25519-public.pem", None)],
            ISS,
            AUD,
            ClaimNames {
                customer: "org".into(),
                roles: "scope".into(),
            },
        );
        let c = json!({"iss": ISS, "aud": AUD, "sub": "s", "org": "acme", "scope": "support",
            "exp": now() + 60});
        let caller = a.verify(&ed(&c)).unwrap();
        assert_eq!(caller.customer_id.as_str(), "acme");
        assert!(caller.is_support());
        refused(&a, &ed(&claims()), "no org claim");
    }

    #[test]
    fn key_loading_refuses_what_it_cannot_use() {
        let err = VerifyKey::from_pem(&testdata("ec384-public.pem"), None, "p384").unwrap_err();
        assert!(err.contains("P-256"), "{err}");
        let err = VerifyKey::from_pem(&testdata("ed25519-private.pem"), None, "priv").unwrap_err();
        assert!(err.contains("private key"), "{err}");
        let err = VerifyKey::from_pem(b"hello", None, "junk").unwrap_err();
        assert!(err.contains("junk"), "{err}");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
        let keys = VerifyKey::load_all(&[
            KeySource::File(dir.join("rsa-public.pem")),
            KeySource::Inline(String::from_utf8(testdata("ed25519-public.pem")).unwrap()),
        ])
        .unwrap();
        assert_eq!(keys[0].kid(), Some("rsa-public"));
        assert_eq!(keys[1].kid(), None);
        let err = VerifyKey::load_all(&[KeySource::File(dir.join("missing.pem"))]).unwrap_err();
        assert!(err.contains("missing.pem"), "{err}");
    }

    fn caller(customer: &str, roles: &[&str]) -> Caller {
        Caller {
            subject: "s".into(),
            customer_id: CustomerId::parse(customer).unwrap(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    fn cid(s: &str) -> CustomerId {
        CustomerId::parse(s).unwrap()
    }

    #[test]
    fn read_scope() {
        let s = ReadScope::for_caller(caller("a", &[]), None).unwrap();
        assert_eq!(s.customer_id, cid("a"));
        let s = ReadScope::for_caller(caller("a", &[]), Some(cid("a"))).unwrap();
        assert_eq!(s.customer_id, cid("a"));
        let e = ReadScope::for_caller(caller("a", &[]), Some(cid("b"))).unwrap_err();
        assert_eq!(e.code(), ErrorCode::Forbidden);
        let s = ReadScope::for_caller(caller("a", &["support"]), Some(cid("b"))).unwrap();
        assert_eq!(s.customer_id, cid("b"));
        let s = ReadScope::for_caller(caller("a", &["support"]), None).unwrap();
        assert_eq!(s.customer_id, cid("a"));
    }

    #[test]
    fn write_scope() {
        let s = WriteScope::for_caller(caller("a", &["customer"]), None).unwrap();
        assert_eq!(s.customer_id, cid("a"));
        let e = WriteScope::for_caller(caller("a", &["support"]), None).unwrap_err();
        assert_eq!(e.code(), ErrorCode::Forbidden);
        let e = WriteScope::for_caller(caller("a", &[]), Some(cid("b"))).unwrap_err();
        assert_eq!(e.code(), ErrorCode::Forbidden);
    }
}
