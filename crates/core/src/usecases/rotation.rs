//! Key rotation as an operation: re-seal every stored secret with the active key, and count
//! which key seals what.
//!
//! Every kind of stored secret is walked ([`SealedKind::ALL`]: carrier credentials, webhook
//! secrets, outbound and voice-URL SIP passwords), each sealed with its integration's context.
//! Resumable: each kind is walked in key order, and a secret already sealed with the active
//! key is left alone, so a run that stopped (or a second run) only does what is left.
//! Safe on a live system: each secret is replaced only if it is still the value that was
//! read (compare-and-swap in the store); a secret saved meanwhile by a running instance is
//! newer, already sealed with the active key (every instance must run with the same
//! `TRUNKLINE_VAULT_ACTIVE_KEY`), and is kept.

use std::collections::BTreeMap;

use crate::error::Error;
use crate::ports::{CredentialVault, SealedKind, SealedSecretStore};

/// What one rotation run did, over every kind of stored secret.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotationReport {
    /// Secrets looked at.
    pub examined: u64,
    /// Re-sealed with the active key.
    pub resealed: u64,
    /// Already sealed with the active key.
    pub current: u64,
    /// Changed by someone else between the read and the write: left as they are.
    pub changed_meanwhile: u64,
    /// Could not be opened (unknown key, tampered bytes, owner gone): left as they are; which
    /// secret (kind and key) and why.
    pub failed: Vec<(String, String)>,
}

/// Walk every stored secret of every kind, a page of `batch` at a time.
async fn walk<F>(store: &dyn SealedSecretStore, batch: u32, mut each: F) -> Result<(), Error>
where
    F: AsyncFnMut(SealedKind, &crate::ports::SealedRow) -> Result<(), Error>,
{
    for kind in SealedKind::ALL {
        let mut after = None;
        loop {
            let page = store.sealed_after(kind, after, batch.max(1)).await?;
            let Some(last) = page.last() else {
                break;
            };
            after = Some(last.key.clone());
            for row in &page {
                each(kind, row).await?;
            }
        }
    }
    Ok(())
}

/// How many stored secrets each key id seals (`"?"` for bytes that name no key).
pub async fn key_census(
    store: &dyn SealedSecretStore,
    vault: &dyn CredentialVault,
    batch: u32,
) -> Result<BTreeMap<String, u64>, Error> {
    let mut counts = BTreeMap::new();
    walk(store, batch, async |_, row| {
        let kid = vault.key_id(&row.sealed).unwrap_or_else(|| "?".to_owned());
        *counts.entry(kid).or_default() += 1;
        Ok(())
    })
    .await?;
    Ok(counts)
}

/// Re-seal, page by page, every secret sealed with a key other than the active one.
/// `progress` is told after every `batch` secrets re-sealed (for an operator watching a long
/// run).
pub async fn rotate(
    store: &dyn SealedSecretStore,
    vault: &dyn CredentialVault,
    batch: u32,
    mut progress: impl FnMut(&RotationReport),
) -> Result<RotationReport, Error> {
    let mut report = RotationReport::default();
    walk(store, batch, async |kind, row| {
        report.examined += 1;
        if !vault.needs_reseal(&row.sealed) {
            report.current += 1;
            return Ok(());
        }
        let which = format!("{} {}", kind.as_str(), row.key.replace('\u{1f}', "/"));
        let Some(ctx) = &row.context else {
            report
                .failed
                .push((which, "its integration or connection is gone".to_owned()));
            return Ok(());
        };
        let new = match vault.reseal(&row.sealed, ctx).await {
            Ok(n) => n,
            Err(e) => {
                report.failed.push((which, e.to_string()));
                return Ok(());
            }
        };
        if store
            .replace_sealed(kind, &row.key, &row.sealed, &new)
            .await?
        {
            report.resealed += 1;
            if report.resealed % u64::from(batch.max(1)) == 0 {
                progress(&report);
            }
        } else {
            report.changed_meanwhile += 1;
        }
        Ok(())
    })
    .await?;
    Ok(report)
}
