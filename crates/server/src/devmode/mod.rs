//! `trunkline dev`: one command, no configuration. trunkline on SQLite under `./data/dev`
//! with in-process emulators of Twilio, Telnyx and LiveKit seeded with demo accounts and
//! numbers, the console's one-time sign-in links, and routes under `/dev/` that make the
//! LiveKit emulator play an inbound call (or break what connect made) for the console.
//!
//! Refused with `TRUNKLINE_ENV=production`; a build without the `dev-emulators` feature
//! (`--no-default-features`) has no emulators in it at all and refuses it too.

#[cfg(feature = "dev-emulators")]
mod emulated;

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::{self, Config, Env};
use crate::process::Failure;

/// Where `trunkline dev` keeps its database and development keys unless told otherwise.
pub const DEFAULT_DEV_DATA_DIR: &str = "./data/dev";

/// Options of `trunkline dev`.
#[derive(Debug, Clone, clap::Args)]
pub struct DevArgs {
    /// Where the database and the development keys live. The database is started afresh
    /// on every run: the emulators keep their state in memory only.
    #[arg(long, default_value = DEFAULT_DEV_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Address to listen on (default: TRUNKLINE_LISTEN, else 127.0.0.1:8080).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
}

/// Run `trunkline dev`.
///
/// # Errors
/// Production, a build without emulators, or anything `serve` refuses.
pub fn run(args: &DevArgs, env: &Env) -> Result<(), Failure> {
    // Read before anything else: production must not even start an emulator.
    let config = Config::from_env(env)?;
    if config.environment.is_production() {
        return Err(Failure::config(format!(
            "`trunkline dev` refuses to run with {}=production: it serves emulated carriers \
             and signs development tokens",
            config::ENV
        )));
    }
    start(args, env)
}

#[cfg(feature = "dev-emulators")]
fn start(args: &DevArgs, env: &Env) -> Result<(), Failure> {
    emulated::start(args, env)
}

#[cfg(not(feature = "dev-emulators"))]
fn start(_args: &DevArgs, _env: &Env) -> Result<(), Failure> {
    Err(Failure::config(
        "this trunkline was built without the `dev-emulators` feature, so it has no \
         emulators to run `trunkline dev` with: build it with default features",
    ))
}
