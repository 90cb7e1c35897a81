//! What both backends' embedded migrations answer.

use diesel::backend::Backend;
use diesel::migration::MigrationSource;
use trunkline_core::ports::StoreError;

/// Versions of every embedded migration, in order.
pub fn versions<DB: Backend>(source: &impl MigrationSource<DB>) -> Result<Vec<String>, StoreError> {
    let migrations = source
        .migrations()
        .map_err(|e| StoreError::Other(format!("embedded migrations are unreadable: {e}")))?;
    Ok(migrations
        .iter()
        .map(|m| m.name().version().to_string())
        .collect())
}
