//! Development auth: an Ed25519 key pair kept in the data directory, and tokens minted
//! with it. Never used with `TRUNKLINE_ENV=production`.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, EncodePublicKey as _};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use trunkline_core::CustomerId;

use crate::auth::{Authenticator, SUPPORT_ROLE, VerifyKey};
use crate::config::ClaimNames;

pub const DEV_ISSUER: &str = "trunkline-dev";
pub const DEV_AUDIENCE: &str = "trunkline";
pub const DEV_KID: &str = "trunkline-dev";
pub const DEV_CUSTOMER: &str = "dev-customer";
pub const DEV_KEY_FILE: &str = "dev-auth-ed25519.pem";
pub const DEV_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);
/// A PEM private key is a few hundred bytes; anything much larger is not ours.
const MAX_KEY_FILE_LEN: u64 = 16 * 1024;

/// The development signing key and where it lives.
pub struct DevAuthKey {
    encoding: EncodingKey,
    verify: VerifyKey,
    path: PathBuf,
    created: bool,
}

impl fmt::Debug for DevAuthKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevAuthKey")
            .field("path", &self.path)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

/// A failure to load or create the development key. The message names the file, never
/// its contents.
#[derive(Debug, thiserror::Error)]
#[error("development auth key {}: {problem}", path.display())]
pub struct DevKeyError {
    pub path: PathBuf,
    pub problem: String,
}

/// Which kind of development token to mint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DevRole {
    Customer,
    Support,
}

impl DevAuthKey {
    /// Load `dev-auth-ed25519.pem` from `data_dir`, or create it (mode 0600) when absent.
    ///
    /// # Errors
    /// The file cannot be read, written or parsed, or others may read it.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, DevKeyError> {
        crate::auth::install_jwt_provider();
        let path = data_dir.join(DEV_KEY_FILE);
        let err = |problem: String| DevKeyError {
            path: path.clone(),
            problem,
        };
        create_private_dir(data_dir)
            .map_err(|e| err(format!("cannot create its directory: {e}")))?;
        let (signing, created) = match read_private(&path) {
            Ok(key) => (key, false),
            Err(ReadError::Absent) => (create(&path).map_err(err)?, true),
            Err(ReadError::Other(problem)) => return Err(err(problem)),
        };
        let der = signing
            .to_pkcs8_der()
            .map_err(|e| err(format!("cannot encode the key: {e}")))?;
        let encoding = EncodingKey::from_ed_der(der.as_bytes());
        let public_pem = signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| err(format!("cannot encode the public key: {e}")))?;
        let verify = VerifyKey::from_pem(
            public_pem.as_bytes(),
            Some(DEV_KID.to_owned()),
            &path.display().to_string(),
        )
        .map_err(err)?;
        Ok(Self {
            encoding,
            verify,
            path,
            created,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this start created the key (tokens from earlier runs no longer verify).
    pub fn created(&self) -> bool {
        self.created
    }

    /// An authenticator that accepts this key's tokens (issuer `trunkline-dev`, audience
    /// `trunkline`).
    pub fn authenticator(&self, claims: ClaimNames) -> Authenticator {
        Authenticator::new(vec![self.verify.clone()], DEV_ISSUER, DEV_AUDIENCE, claims)
    }

    /// Mint a token for `customer`, valid for `ttl`.
    ///
    /// # Errors
    /// Signing failed (not expected with a loaded key).
    pub fn mint(
        &self,
        customer: &CustomerId,
        role: DevRole,
        ttl: Duration,
        claims: &ClaimNames,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now = chrono::Utc::now().timestamp();
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let (subject, roles) = match role {
            DevRole::Customer => ("dev-user", vec!["customer"]),
            DevRole::Support => ("dev-support", vec![SUPPORT_ROLE]),
        };
        let mut body = json!({
            "iss": DEV_ISSUER,
            "aud": DEV_AUDIENCE,
            "sub": subject,
            "iat": now,
            "nbf": now,
            "exp": now.saturating_add(ttl),
        });
        body[claims.customer.as_str()] = json!(customer.as_str());
        body[claims.roles.as_str()] = json!(roles);
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(DEV_KID.to_owned());
        jsonwebtoken::encode(&header, &body, &self.encoding)
    }
}

enum ReadError {
    Absent,
    Other(String),
}

fn read_private(path: &Path) -> Result<SigningKey, ReadError> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(ReadError::Absent),
        Err(e) => return Err(ReadError::Other(format!("cannot read it: {e}"))),
    };
    if !meta.is_file() || meta.len() > MAX_KEY_FILE_LEN {
        return Err(ReadError::Other(
            "is not a key file this server wrote; move it away".into(),
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(ReadError::Other(format!(
                "has permissions {mode:04o}; it must be readable by its owner only: run \
                 `chmod 600` on it, or delete it to generate a new key pair"
            )));
        }
    }
    let pem = zeroize::Zeroizing::new(
        fs::read_to_string(path).map_err(|e| ReadError::Other(format!("cannot read it: {e}")))?,
    );
    SigningKey::from_pkcs8_pem(&pem).map_err(|_| {
        ReadError::Other(
            "is not an Ed25519 PKCS#8 private key; delete it to generate a new key pair".into(),
        )
    })
}

/// Create the data directory (and missing parents) readable by its owner only: it holds
/// keys and the database. An existing directory is left as the operator set it.
fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Write a fresh key without ever exposing a half-written file under the final name:
/// write a temporary file, then hard-link it into place, which fails if another process
/// won the race (its key is then used).
fn create(path: &Path) -> Result<SigningKey, String> {
    let seed: [u8; 32] = rand::random();
    let signing = SigningKey::from_bytes(&seed);
    let pem = signing
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| format!("cannot encode the key: {e}"))?;
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let write = || -> io::Result<()> {
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(pem.as_bytes())?;
        f.sync_all()
    };
    let written = write().and_then(|()| fs::hard_link(&tmp, path));
    let _ = fs::remove_file(&tmp);
    match written {
        Ok(()) => Ok(signing),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match read_private(path) {
            Ok(key) => Ok(key),
            Err(ReadError::Absent) => Err("vanished while being created".into()),
            Err(ReadError::Other(p)) => Err(p),
        },
        Err(e) => Err(format!("cannot write it: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_created_once_then_reused_and_tokens_verify() {
        let dir = tempfile::tempdir().unwrap();
        let first = DevAuthKey::load_or_create(dir.path()).unwrap();
        assert!(first.created());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(first.path()).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let claims = ClaimNames::default();
        let customer = CustomerId::parse(DEV_CUSTOMER).unwrap();
        let token = first
            .mint(&customer, DevRole::Customer, DEV_TOKEN_TTL, &claims)
            .unwrap();

        let second = DevAuthKey::load_or_create(dir.path()).unwrap();
        assert!(!second.created());
        let caller = second.authenticator(claims.clone()).verify(&token).unwrap();
        assert_eq!(caller.customer_id, customer);
        assert!(!caller.is_support());

        let support = second
            .mint(&customer, DevRole::Support, DEV_TOKEN_TTL, &claims)
            .unwrap();
        assert!(
            first
                .authenticator(claims)
                .verify(&support)
                .unwrap()
                .is_support()
        );
    }

    #[test]
    fn a_fresh_directory_gets_a_different_key() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let ka = DevAuthKey::load_or_create(a.path()).unwrap();
        let kb = DevAuthKey::load_or_create(b.path()).unwrap();
        let claims = ClaimNames::default();
        let token = ka
            .mint(
                &CustomerId::parse("c").unwrap(),
                DevRole::Customer,
                DEV_TOKEN_TTL,
                &claims,
            )
            .unwrap();
        assert!(kb.authenticator(claims).verify(&token).is_err());
    }

    #[test]
    fn minted_tokens_use_configured_claim_names() {
        let dir = tempfile::tempdir().unwrap();
        let key = DevAuthKey::load_or_create(dir.path()).unwrap();
        let claims = ClaimNames {
            customer: "org".into(),
            roles: "scope".into(),
        };
        let token = key
            .mint(
                &CustomerId::parse("acme").unwrap(),
                DevRole::Support,
                DEV_TOKEN_TTL,
                &claims,
            )
            .unwrap();
        let caller = key.authenticator(claims).verify(&token).unwrap();
        assert_eq!(caller.customer_id.as_str(), "acme");
        assert!(caller.is_support());
    }

    #[cfg(unix)]
    #[test]
    fn refuses_a_key_file_others_can_read_and_garbage() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let key = DevAuthKey::load_or_create(dir.path()).unwrap();
        fs::set_permissions(key.path(), fs::Permissions::from_mode(0o644)).unwrap();
        let err = DevAuthKey::load_or_create(dir.path()).unwrap_err();
        assert!(err.to_string().contains("0644"), "{err}");

        fs::set_permissions(key.path(), fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(key.path(), "not a key").unwrap();
        let err = DevAuthKey::load_or_create(dir.path()).unwrap_err();
        assert!(err.to_string().contains("not an Ed25519"), "{err}");
        assert!(!err.to_string().contains("not a key"), "{err}");
    }
}
