#![doc = include_str!("../README.md")]

#[cfg(unix)]
mod dev;
mod format;
mod keyring;
mod vault;

pub use keyring::{KeyRing, KeyRingError};
pub use vault::AesGcmVault;

/// The development key file [`KeyRing::load_or_create_dev`] used, and whether it was just
/// created (the server then prints a loud warning).
#[derive(Debug)]
pub struct DevKeyFile {
    pub path: std::path::PathBuf,
    pub created: bool,
}

#[cfg(not(unix))]
mod dev {
    use crate::{DevKeyFile, KeyRing, KeyRingError};

    /// The 0600 guarantee needs Unix permissions; elsewhere configure keys explicitly.
    pub(crate) fn load_or_create(
        data_dir: &std::path::Path,
    ) -> Result<(KeyRing, DevKeyFile), KeyRingError> {
        Err(KeyRingError::DevKeyFileIo {
            path: data_dir.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "the development key file needs Unix file permissions; set TRUNKLINE_VAULT_KEYS",
            ),
        })
    }
}
