//! The development fallback: a key file in the data directory.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use rand::TryRngCore as _;
use rand::rngs::OsRng;
use secrecy::ExposeSecret as _;
use zeroize::Zeroizing;

use crate::DevKeyFile;
use crate::keyring::{KeyRing, KeyRingError, encode_key, random_key};

/// The file's name inside the data directory.
pub(crate) const FILE_NAME: &str = "vault-dev-keys";
const KEYS_VAR: &str = "TRUNKLINE_VAULT_KEYS";
const ACTIVE_VAR: &str = "TRUNKLINE_VAULT_ACTIVE_KEY";
/// A real file holds a few keys; anything much larger is not ours.
const MAX_FILE_LEN: u64 = 64 * 1024;

pub(crate) fn load_or_create(data_dir: &Path) -> Result<(KeyRing, DevKeyFile), KeyRingError> {
    let path = data_dir.join(FILE_NAME);
    match OpenOptions::new().read(true).open(&path) {
        Ok(file) => load(file, path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => create(data_dir, path),
        Err(source) => Err(KeyRingError::DevKeyFileIo { path, source }),
    }
}

fn load(mut file: File, path: PathBuf) -> Result<(KeyRing, DevKeyFile), KeyRingError> {
    // Checked on the open handle, so the file judged is the file read.
    let meta = match file.metadata() {
        Ok(meta) => meta,
        Err(source) => return Err(KeyRingError::DevKeyFileIo { path, source }),
    };
    if !meta.is_file() {
        return Err(invalid(path, "it is not a regular file"));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyRingError::DevKeyFileInsecure { path, mode });
    }
    if meta.len() > MAX_FILE_LEN {
        return Err(invalid(path, "it is larger than 64 KiB"));
    }
    // Sized up front so the buffer holding key material never reallocates (and leaves an
    // unwiped copy behind).
    let mut contents = Zeroizing::new(String::with_capacity(
        usize::try_from(meta.len()).unwrap_or(0) + 1,
    ));
    if let Err(source) = (&mut file).take(MAX_FILE_LEN).read_to_string(&mut contents) {
        return Err(KeyRingError::DevKeyFileIo { path, source });
    }
    let ring = match parse_file(&contents) {
        Ok(ring) => ring,
        Err(problem) => return Err(invalid(path, problem)),
    };
    tracing::warn!(
        path = %path.display(),
        active_key_id = ring.active_key_id(),
        "using the development vault key file; configure TRUNKLINE_VAULT_KEYS and \
         TRUNKLINE_VAULT_ACTIVE_KEY for production"
    );
    Ok((
        ring,
        DevKeyFile {
            path,
            created: false,
        },
    ))
}

fn create(data_dir: &Path, path: PathBuf) -> Result<(KeyRing, DevKeyFile), KeyRingError> {
    let io_err = |path: &Path, source| KeyRingError::DevKeyFileIo {
        path: path.to_owned(),
        source,
    };
    // Only a directory created here gets 0700; an existing one is left as the operator set it.
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .map_err(|e| io_err(data_dir, e))?;

    let kid = dev_key_id()?;
    let key = encode_key(&random_key()?);
    let mut contents = Zeroizing::new(String::with_capacity(512));
    contents.push_str(
        "# trunkline development vault key, generated on first start and re-used after.\n\
         # NOT for production: there, set TRUNKLINE_VAULT_KEYS and TRUNKLINE_VAULT_ACTIVE_KEY.\n\
         # Deleting this file makes every credential sealed with it unreadable.\n",
    );
    for part in [
        ACTIVE_VAR,
        "=",
        &kid,
        "\n",
        KEYS_VAR,
        "=",
        &kid,
        ":",
        key.expose_secret(),
        "\n",
    ] {
        contents.push_str(part);
    }

    // The mode is part of the open call, so the file is never readable by others, not
    // even between creating and writing it. `create_new` never follows or reuses a file
    // that appeared in the meantime.
    let mut file = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            // Another process started at the same moment and won: use its key.
            return match OpenOptions::new().read(true).open(&path) {
                Ok(file) => load(file, path),
                Err(source) => Err(io_err(&path, source)),
            };
        }
        Err(source) => return Err(io_err(&path, source)),
    };
    if let Err(source) = file
        .write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
    {
        // A half-written key file would fail every later start; do not leave one behind.
        drop(file);
        let _ = std::fs::remove_file(&path);
        return Err(io_err(&path, source));
    }

    let ring = parse_file(&contents).map_err(|problem| invalid(path.clone(), problem))?;
    tracing::warn!(
        path = %path.display(),
        active_key_id = ring.active_key_id(),
        "generated a development vault key file; credentials sealed with it are only as safe \
         as this file. Configure TRUNKLINE_VAULT_KEYS and TRUNKLINE_VAULT_ACTIVE_KEY for \
         production"
    );
    Ok((
        ring,
        DevKeyFile {
            path,
            created: true,
        },
    ))
}

/// `dev-` and 8 random hex digits: a recreated file gets a new id, so values sealed with a
/// lost dev key fail as "unknown key" rather than as a puzzling decryption failure.
fn dev_key_id() -> Result<String, KeyRingError> {
    let mut suffix = [0u8; 4];
    OsRng
        .try_fill_bytes(&mut suffix)
        .map_err(|_| KeyRingError::Random)?;
    Ok(format!(
        "dev-{:02x}{:02x}{:02x}{:02x}",
        suffix[0], suffix[1], suffix[2], suffix[3]
    ))
}

/// `NAME=value` lines for the two variables; blank lines and `#` comments are skipped.
/// Problems never quote a line: it may hold a key.
fn parse_file(contents: &str) -> Result<KeyRing, String> {
    let mut keys = None;
    let mut active = None;
    for (index, line) in contents.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let slot = match line.split_once('=') {
            Some((KEYS_VAR, value)) => (&mut keys, value),
            Some((ACTIVE_VAR, value)) => (&mut active, value),
            _ => {
                return Err(format!(
                    "line {} is not `{KEYS_VAR}=…` or `{ACTIVE_VAR}=…`",
                    index + 1
                ));
            }
        };
        if slot.0.replace(slot.1).is_some() {
            return Err(format!("line {} repeats a setting", index + 1));
        }
    }
    let keys = keys.ok_or_else(|| format!("it has no `{KEYS_VAR}=…` line"))?;
    let active = active.ok_or_else(|| format!("it has no `{ACTIVE_VAR}=…` line"))?;
    KeyRing::parse(keys, active).map_err(|e| e.to_string())
}

fn invalid(path: PathBuf, problem: impl Into<String>) -> KeyRingError {
    KeyRingError::DevKeyFileInvalid {
        path,
        problem: problem.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_key_ids_are_valid_and_random() {
        let a = dev_key_id().unwrap();
        assert!(crate::keyring::is_valid_key_id(&a), "{a}");
        assert_eq!(a.len(), "dev-".len() + 8);
        assert_ne!(a, dev_key_id().unwrap());
    }

    #[test]
    fn file_parsing_problems_do_not_quote_lines() {
        let key = "c2VjcmV0LWtleS1tYXRlcmlhbC0wMTIzNDU2Nzg5YWI=";
        let cases = [
            (format!("{key}\n"), "line 1 is not"),
            (
                format!("{ACTIVE_VAR}=k\n{KEYS_VAR}=k:{key}\n{KEYS_VAR}=k:{key}\n"),
                "line 3 repeats",
            ),
            (format!("{ACTIVE_VAR}=k\n"), "no `TRUNKLINE_VAULT_KEYS"),
            (
                format!("{KEYS_VAR}=k:{key}\n"),
                "no `TRUNKLINE_VAULT_ACTIVE_KEY",
            ),
        ];
        for (contents, expected) in cases {
            let problem = parse_file(&contents).unwrap_err();
            assert!(problem.contains(expected), "{problem}");
            assert!(!problem.contains(key), "{problem}");
        }
    }

    #[test]
    fn file_with_comments_and_several_keys_parses() {
        let k1 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let k2 = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
        let ring = parse_file(&format!(
            "# comment\n\n  {ACTIVE_VAR}=k2\n{KEYS_VAR}=k1:{k1},k2:{k2}\n"
        ))
        .unwrap();
        assert_eq!(ring.active_key_id(), "k2");
        assert_eq!(ring.key_ids(), ["k1", "k2"]);
    }
}
