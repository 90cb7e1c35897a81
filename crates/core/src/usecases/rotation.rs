//! Key rotation as an operation: re-seal every stored secret with the active key, and count
//! which key seals what.
//!
//! Resumable: the walk goes in integration id order, and a secret already sealed with the
//! active key is left alone, so a run that stopped (or a second run) only does what is left.
//! Safe on a live system: each secret is replaced only if it is still the value that was
//! read (compare-and-swap in the store); a secret saved meanwhile by a running instance is
//! newer, already sealed with the active key (every instance must run with the same
//! `TRUNKLINE_VAULT_ACTIVE_KEY`), and is kept.

use std::collections::BTreeMap;

use crate::error::Error;
use crate::ids::IntegrationId;
use crate::model::SealContext;
use crate::ports::{CredentialVault, SealedSecretStore};

/// What one rotation run did.
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
    /// Could not be opened (unknown key, tampered bytes): left as they are, ids listed.
    pub failed: Vec<(IntegrationId, String)>,
}

/// How many stored secrets each key id seals (`"?"` for bytes that name no key).
pub async fn key_census(
    store: &dyn SealedSecretStore,
    vault: &dyn CredentialVault,
    batch: u32,
) -> Result<BTreeMap<String, u64>, Error> {
    let mut counts = BTreeMap::new();
    let mut after = None;
    loop {
        let page = store.integrations_after(after, batch.max(1)).await?;
        let Some(last) = page.last() else {
            return Ok(counts);
        };
        after = Some(last.id);
        for i in &page {
            let kid = vault
                .key_id(&i.sealed_secret)
                .unwrap_or_else(|| "?".to_owned());
            *counts.entry(kid).or_default() += 1;
        }
    }
}

/// Re-seal, page by page, every secret sealed with a key other than the active one.
/// `progress` is told after each page (for an operator watching a long run).
pub async fn rotate(
    store: &dyn SealedSecretStore,
    vault: &dyn CredentialVault,
    batch: u32,
    mut progress: impl FnMut(&RotationReport),
) -> Result<RotationReport, Error> {
    let mut report = RotationReport::default();
    let mut after = None;
    loop {
        let page = store.integrations_after(after, batch.max(1)).await?;
        let Some(last) = page.last() else {
            return Ok(report);
        };
        after = Some(last.id);
        for i in &page {
            report.examined += 1;
            if !vault.needs_reseal(&i.sealed_secret) {
                report.current += 1;
                continue;
            }
            let ctx = SealContext {
                customer_id: i.customer_id.clone(),
                integration_id: i.id,
                provider: i.provider,
            };
            let new = match vault.reseal(&i.sealed_secret, &ctx).await {
                Ok(n) => n,
                Err(e) => {
                    report.failed.push((i.id, e.to_string()));
                    continue;
                }
            };
            if store
                .replace_sealed_secret(i.id, &i.sealed_secret, &new)
                .await?
            {
                report.resealed += 1;
            } else {
                report.changed_meanwhile += 1;
            }
        }
        progress(&report);
    }
}
