//! What every command of the process shares: the [`Failure`] that stops it (exit code and
//! one-line message), its runtimes, and plain output on stdout.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::config::ConfigError;

/// Why the process stops. Exit code 2 for configuration (and a database that cannot be
/// opened at start-up), 1 for everything else.
#[derive(Debug)]
pub struct Failure {
    pub exit_code: u8,
    pub message: String,
}

impl Failure {
    pub(crate) fn config(message: impl fmt::Display) -> Self {
        Self {
            exit_code: 2,
            message: one_line(&message.to_string()),
        }
    }

    pub(crate) fn runtime(message: impl fmt::Display) -> Self {
        Self {
            exit_code: 1,
            message: one_line(&message.to_string()),
        }
    }
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Self::config(e)
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

pub(crate) fn tokio_runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::runtime(format!("cannot start the async runtime: {e}")))
}

pub(crate) fn runtime() -> Result<actix_web::rt::SystemRunner, Failure> {
    let rt = tokio_runtime()?;
    Ok(actix_web::rt::System::with_tokio_rt(move || rt))
}

/// Write to stdout without panicking when it is closed.
pub(crate) fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

pub(crate) fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
