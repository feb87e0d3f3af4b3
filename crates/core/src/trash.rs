//! The trash: what was deleted, kept (and still counted against the quota) until it is purged —
//! one at a time, all at once, or automatically once the retention period has passed.

use chrono::Duration;

use crate::error::Result;
use crate::model::{FileRecord, Folder, Role};
use crate::ports::TrashEntry;
use crate::{Cabinet, Caller};

const BATCH: u32 = 500;

/// One top-level entry of the trash.
// Items of one page, built and rendered at once: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum TrashItem {
    File(FileRecord),
    Folder(Folder),
}

impl Cabinet {
    /// The top-level entries of the trash, newest first.
    pub async fn list_trash(&self, caller: &Caller, limit: u32) -> Result<Vec<TrashItem>> {
        caller.require(Role::Read)?;
        let ws = &caller.workspace_id;
        let mut items = Vec::new();
        for entry in self.store.trash_entries(ws, limit).await? {
            items.push(match entry {
                TrashEntry::File(id) => TrashItem::File(self.store.get_file(ws, &id).await?),
                TrashEntry::Folder(id) => TrashItem::Folder(self.store.get_folder(ws, &id).await?),
            });
        }
        Ok(items)
    }

    /// Purges everything in the caller's trash; returns how many top-level entries.
    pub async fn empty_trash(&self, caller: &Caller) -> Result<u64> {
        caller.require(Role::Write)?;
        self.purge_trash_of(&caller.workspace_id).await
    }

    /// Purges everything in a workspace's trash; returns how many top-level entries.
    pub(crate) async fn purge_trash_of(&self, ws: &crate::WorkspaceId) -> Result<u64> {
        let mut purged = 0;
        loop {
            let entries = self.store.trash_entries(ws, BATCH).await?;
            if entries.is_empty() {
                return Ok(purged);
            }
            for entry in entries {
                self.purge_entry(ws, &entry).await?;
                purged += 1;
            }
        }
    }

    /// Purges every trash entry older than the retention period; returns how many.
    pub async fn purge_expired_trash(&self) -> Result<u64> {
        let before = self.clock.now() - self.settings.trash_retention;
        let mut purged = 0;
        loop {
            let entries = self.store.expired_trash(before, BATCH).await?;
            let done = entries.len() < BATCH as usize;
            for (ws, entry) in entries {
                self.purge_entry(&ws, &entry).await?;
                purged += 1;
            }
            if done {
                break;
            }
        }
        if purged > 0 {
            tracing::info!(purged, "expired trash purged");
        }
        Ok(purged)
    }

    async fn purge_entry(&self, ws: &crate::WorkspaceId, entry: &TrashEntry) -> Result<()> {
        match entry {
            TrashEntry::File(id) => {
                self.purge_file(ws, id).await?;
            }
            TrashEntry::Folder(id) => {
                let purged = self.store.purge_folder(ws, id, self.clock.now()).await?;
                self.hot.forget_workspace(ws);
                for file in purged {
                    self.delete_blob_quietly(&file.blob_key).await;
                    self.delete_thumbnails(&file).await;
                }
            }
        }
        Ok(())
    }
}

/// Days deleted things stay in the trash unless the deployment says otherwise.
pub const DEFAULT_RETENTION_DAYS: u64 = 30;

/// The default retention: [`DEFAULT_RETENTION_DAYS`].
pub fn default_retention() -> Duration {
    Duration::days(DEFAULT_RETENTION_DAYS as i64)
}
