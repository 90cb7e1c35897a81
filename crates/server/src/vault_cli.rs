//! `trunkline vault status` and `trunkline vault rotate`: key rotation as an operation
//! (docs/security.md, "Rotating the vault key").

use std::fmt::Write as _;
use std::sync::Arc;

use clap::Subcommand;
use trunkline_core::ports::{CredentialVault, SealedSecretStore};
use trunkline_core::usecases::rotation::{self, RotationReport};

use crate::state::OpenedStore;

/// What `trunkline vault` does.
#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// How many stored secrets each key id still seals: a key can leave
    /// TRUNKLINE_VAULT_KEYS once it seals none.
    Status {
        /// Integrations read per database round trip.
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        batch: u32,
    },
    /// Re-seal every stored secret with the active key (TRUNKLINE_VAULT_ACTIVE_KEY).
    /// Resumable and safe while servers run; prints counts.
    Rotate {
        /// Integrations read per database round trip.
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        batch: u32,
    },
}

impl OpenedStore {
    /// The store as the rotation's port.
    pub fn sealed_secrets(self) -> Arc<dyn SealedSecretStore> {
        match self {
            Self::Sqlite(s) => Arc::new(s),
            Self::Postgres(s) => Arc::new(s),
        }
    }
}

/// The lines `vault status` prints.
pub async fn status(
    store: &dyn SealedSecretStore,
    vault: &dyn CredentialVault,
    active: &str,
    batch: u32,
) -> Result<Vec<String>, String> {
    let census = rotation::key_census(store, vault, batch)
        .await
        .map_err(|e| e.to_string())?;
    let total: u64 = census.values().sum();
    let mut lines = vec![format!("active key: {active}"), format!("secrets: {total}")];
    for (kid, n) in &census {
        let mut line = format!("  {kid}: {n}");
        if kid == active {
            line.push_str(" (active)");
        }
        lines.push(line);
    }
    let old: u64 = census
        .iter()
        .filter(|(k, _)| k.as_str() != active)
        .map(|(_, n)| n)
        .sum();
    lines.push(if old == 0 {
        "every secret is sealed with the active key: other keys can be removed".to_owned()
    } else {
        format!("{old} secret(s) sealed with other keys: run `trunkline vault rotate`")
    });
    Ok(lines)
}

/// Run the rotation; the summary line, and whether everything is now under the active key.
pub async fn rotate(
    store: &dyn SealedSecretStore,
    vault: &dyn CredentialVault,
    batch: u32,
    mut progress: impl FnMut(&str),
) -> Result<(String, bool), String> {
    let report = rotation::rotate(store, vault, batch, |r| progress(&summary(r)))
        .await
        .map_err(|e| e.to_string())?;
    let mut line = summary(&report);
    for (which, why) in &report.failed {
        let _ = write!(line, "\n  could not re-seal the {which}: {why}");
    }
    Ok((line, report.failed.is_empty()))
}

fn summary(r: &RotationReport) -> String {
    format!(
        "examined {}, re-sealed {}, already on the active key {}, changed meanwhile (kept) {}, \
         failed {}",
        r.examined,
        r.resealed,
        r.current,
        r.changed_meanwhile,
        r.failed.len()
    )
}
