//! `TRUNKLINE_DATABASE_URL`: which store adapter, and where its data lives.

use std::path::{Path, PathBuf};

use secrecy::SecretString;
use url::Url;

use super::env::Problems;
use super::{DATABASE_URL, DEFAULT_DATABASE_URL};

/// Which database, parsed from `TRUNKLINE_DATABASE_URL`'s scheme.
#[derive(Debug, Clone)]
pub enum DatabaseConfig {
    Sqlite {
        /// The URL as given, for the store adapter.
        url: String,
        /// The database file, as given (relative to the working directory when relative).
        path: PathBuf,
    },
    Postgres {
        /// May carry a password, so it is a secret.
        url: SecretString,
        /// `host:port/database`, safe to print.
        display: String,
    },
}

impl DatabaseConfig {
    /// Where the data lives, without credentials.
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite { path, .. } => format!("SQLite database {}", absolute(path).display()),
            Self::Postgres { display, .. } => format!("PostgreSQL database {display}"),
        }
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

pub(super) fn sqlite_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

pub(super) fn parse_database(raw: Option<String>, p: &mut Problems) -> Option<DatabaseConfig> {
    let raw = raw.unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
    let lower = raw.to_ascii_lowercase();
    if let Some(rest) = strip_scheme(&raw, &lower, &["sqlite://", "sqlite:"]) {
        let path = rest.split('?').next().unwrap_or_default();
        if path.is_empty() {
            p.push(
                DATABASE_URL,
                "names no SQLite file, e.g. sqlite://./data/trunkline.db",
            );
            return None;
        }
        if path == ":memory:" || path.contains("mode=memory") {
            p.push(
                DATABASE_URL,
                "must name a SQLite file: an in-memory database would vanish per connection",
            );
            return None;
        }
        return Some(DatabaseConfig::Sqlite {
            url: raw.clone(),
            path: PathBuf::from(path),
        });
    }
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        // The URL may carry a password: problems never repeat it.
        let Ok(url) = Url::parse(&raw) else {
            p.push(DATABASE_URL, "is not a valid postgres:// URL");
            return None;
        };
        let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
            p.push(DATABASE_URL, "names no PostgreSQL host");
            return None;
        };
        let port = url.port().unwrap_or(5432);
        let display = format!("{host}:{port}{}", url.path());
        return Some(DatabaseConfig::Postgres {
            url: SecretString::from(raw),
            display,
        });
    }
    p.push(
        DATABASE_URL,
        "must start with sqlite:// or postgres:// (postgresql:// works too)",
    );
    None
}

fn strip_scheme<'a>(raw: &'a str, lower: &str, schemes: &[&str]) -> Option<&'a str> {
    schemes
        .iter()
        .find(|s| lower.starts_with(*s))
        .map(|s| &raw[s.len()..])
}
