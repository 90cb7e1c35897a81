//! The `trunkline` command line: `serve` (default), `migrate`, `dev-token`, `dev`.

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use trunkline_core::CustomerId;
use trunkline_vault::KeyRing;

use crate::config::{self, Config, Env};
use crate::dev::{DEV_CUSTOMER, DEV_TOKEN_TTL, DevAuthKey, DevRole};
pub use crate::process::Failure;
use crate::process::{absolute, runtime, say, tokio_runtime};
use crate::serve::{DevNotes, build_vault, open_store, serve, where_data_lives};
use crate::telemetry;

/// Connects phone numbers a customer owns at a carrier to a LiveKit SIP ingress.
///
/// Configuration comes from TRUNKLINE_* environment variables (see the README).
#[derive(Debug, Parser)]
#[command(name = "trunkline", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default).
    Serve,
    /// Apply pending database migrations and print the versions applied.
    Migrate,
    /// Print a development token signed with the development key pair (not in production).
    DevToken {
        /// The customer the token is for.
        #[arg(long, default_value = DEV_CUSTOMER)]
        customer: String,
        /// `support` reads every customer's data and changes nothing.
        #[arg(long, value_enum, default_value = "customer")]
        role: DevRole,
    },
    /// The credential vault: which keys seal the stored secrets, and key rotation.
    Vault {
        #[command(subcommand)]
        command: crate::vault_cli::VaultCommand,
    },
    /// Try trunkline with no configuration: SQLite under ./data/dev, in-process Twilio,
    /// Telnyx and LiveKit emulators with demo accounts, and the console (not in production).
    Dev(crate::devmode::DevArgs),
}

/// Parse the command line, run the command, and turn the outcome into an exit code.
/// Failures are one line on stderr.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli, &Env::from_process()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            let _ = writeln!(std::io::stderr().lock(), "trunkline: {}", f.message);
            ExitCode::from(f.exit_code)
        }
    }
}

/// Run one command against a given environment.
///
/// # Errors
/// A [`Failure`] carrying the exit code and the one-line message.
pub fn run(cli: Cli, env: &Env) -> Result<(), Failure> {
    let config = Config::from_env(env)?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            config.check_production(env)?;
            telemetry::init_logging(config.log_format, &config.log_filter);
            runtime()?.block_on(serve(config))
        }
        Command::Migrate => {
            telemetry::init_logging(config.log_format, &config.log_filter);
            tokio_runtime()?.block_on(migrate(&config))
        }
        Command::DevToken { customer, role } => dev_token(&config, &customer, role),
        Command::Vault { command } => {
            telemetry::init_logging(config.log_format, &config.log_filter);
            tokio_runtime()?.block_on(vault(&config, command))
        }
        Command::Dev(args) => crate::devmode::run(&args, env),
    }
}

async fn migrate(config: &Config) -> Result<(), Failure> {
    let store = open_store(config).await?;
    let applied = store
        .migrate()
        .await
        .map_err(|e| Failure::runtime(format!("migration failed: {e}")))?;
    say(&format!("database: {}", where_data_lives(&store, config)));
    if applied.is_empty() {
        say("no pending migrations: the schema is up to date");
    } else {
        for version in &applied {
            say(&format!("applied {version}"));
        }
    }
    Ok(())
}

async fn vault(config: &Config, command: crate::vault_cli::VaultCommand) -> Result<(), Failure> {
    use crate::vault_cli::{self, VaultCommand};
    let mut notes = DevNotes {
        lines: Vec::new(),
        tokens: None,
    };
    let vault = build_vault(config, &absolute(&config.data_dir), &mut notes)?;
    for line in &notes.lines {
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }
    let active = match &config.vault {
        Some(keys) => keys.active_kid.clone(),
        None => KeyRing::load_or_create_dev(&absolute(&config.data_dir))
            .map(|(ring, _)| ring.active_key_id().to_owned())
            .map_err(Failure::runtime)?,
    };
    let store = open_store(config).await?.sealed_secrets();
    match command {
        VaultCommand::Status { batch } => {
            let lines = vault_cli::status(&*store, &*vault, &active, batch)
                .await
                .map_err(Failure::runtime)?;
            for line in lines {
                say(&line);
            }
            Ok(())
        }
        VaultCommand::Rotate { batch } => {
            say(&format!("re-sealing with the active key {active}"));
            let (line, complete) = vault_cli::rotate(&*store, &*vault, batch, |p| {
                let _ = writeln!(std::io::stderr().lock(), "progress: {p}");
            })
            .await
            .map_err(Failure::runtime)?;
            say(&line);
            if complete {
                Ok(())
            } else {
                Err(Failure::runtime(
                    "some secrets could not be re-sealed (listed above): they are left as they were",
                ))
            }
        }
    }
}

fn dev_token(config: &Config, customer: &str, role: DevRole) -> Result<(), Failure> {
    if config.environment.is_production() {
        return Err(Failure::config(format!(
            "dev-token refuses to run with {}=production: mint tokens with your identity provider",
            config::ENV
        )));
    }
    if config.auth.is_some() {
        return Err(Failure::config(format!(
            "dev-token is for the development auth fallback, but {} is set: this server \
             does not accept development tokens",
            config::AUTH_PUBLIC_KEYS
        )));
    }
    let customer =
        CustomerId::parse(customer).map_err(|e| Failure::config(format!("--customer: {e}")))?;
    let key = DevAuthKey::load_or_create(&config.data_dir).map_err(Failure::runtime)?;
    if key.created() {
        let _ = writeln!(
            std::io::stderr().lock(),
            "created the development auth key pair {}; a server started before now must be \
             restarted to accept this token",
            absolute(key.path()).display()
        );
    }
    let token = key
        .mint(&customer, role, DEV_TOKEN_TTL, &config.claims)
        .map_err(|e| Failure::runtime(format!("cannot sign the token: {e}")))?;
    say(&token);
    Ok(())
}
