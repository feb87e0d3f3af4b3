//! The trash: files and folders (with their subtrees) going in and coming back, and purges that
//! return the bytes to the quota.

use cabinet_core::names::fold;
use cabinet_core::ports::TrashEntry;
use cabinet_core::{Error, FileId, FileRecord, Folder, FolderId, Result, WorkspaceId};
use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, Type};

use crate::dialect::{Dialect, SqlStore, Value};
use crate::errors::{db_error, folder_error};
use crate::rows::{bytes, millis, FileRow, FolderRow, FILE_COLUMNS, FOLDER_COLUMNS};

/// A trash entry from its stored kind and id.
fn trash_entry(kind: &str, id: &str) -> Result<TrashEntry> {
    Ok(match kind {
        "folder" => TrashEntry::Folder(id.parse()?),
        _ => TrashEntry::File(id.parse()?),
    })
}

#[async_trait::async_trait]
impl<D: Dialect> cabinet_core::TrashStore for SqlStore<D>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    for<'q> <D::Db as Database>::Arguments<'q>: IntoArguments<'q, D::Db>,
    for<'q> &'q str: Encode<'q, D::Db> + Type<D::Db> + ColumnIndex<<D::Db as Database>::Row>,
    usize: ColumnIndex<<D::Db as Database>::Row>,
    i64: Value<D::Db>,
    String: Value<D::Db>,
    bool: Value<D::Db>,
    Option<i64>: Value<D::Db>,
    Option<String>: Value<D::Db>,
    Option<bool>: Value<D::Db>,
    for<'q> Option<&'q str>: Encode<'q, D::Db>,
{
    async fn trash_file(&self, ws: &WorkspaceId, id: &FileId, at: DateTime<Utc>) -> Result<FileRecord> {
        // The live-file counter (a trigger) writes the workspace row after the file's;
        // taking the workspace first keeps the lock order of folder trashing.
        let mut tx = self.write_pool().begin().await.map_err(db_error)?;
        Self::lock_workspace(&mut tx, ws).await?;
        let file = sqlx::query_as::<_, FileRow>(&format!(
            "UPDATE files SET trashed_at = $1, trash_root = NULL, updated_at = $1 \
             WHERE workspace_id = $2 AND id = $3 AND trashed_at IS NULL RETURNING {FILE_COLUMNS}"
        ))
        .bind(millis(at))
        .bind(ws.as_str())
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?
        .ok_or(Error::NotFound("file"))?
        .try_into()?;
        tx.commit().await.map_err(db_error)?;
        Ok(file)
    }

    async fn restore_file(
        &self,
        ws: &WorkspaceId,
        id: &FileId,
        folder: Option<&FolderId>,
        at: DateTime<Utc>,
    ) -> Result<FileRecord> {
        let mut tx = self.write_pool().begin().await.map_err(db_error)?;
        Self::lock_workspace(&mut tx, ws).await?;
        let file = sqlx::query_as::<_, FileRow>(&format!(
            "UPDATE files SET trashed_at = NULL, trash_root = NULL, folder_id = $1, updated_at = $2 \
             WHERE workspace_id = $3 AND id = $4 AND trashed_at IS NOT NULL RETURNING {FILE_COLUMNS}"
        ))
        .bind(folder.map(|f| f.as_str()))
        .bind(millis(at))
        .bind(ws.as_str())
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?
        .ok_or(Error::NotFound("file"))?
        .try_into()?;
        tx.commit().await.map_err(db_error)?;
        Ok(file)
    }

    async fn trash_folder(&self, ws: &WorkspaceId, id: &FolderId, at: DateTime<Utc>) -> Result<Folder> {
        const LIVE_SUBTREE: &str = "WITH RECURSIVE sub (id) AS ( \
             SELECT id FROM folders WHERE workspace_id = $1 AND id = $2 AND trashed_at IS NULL \
             UNION SELECT c.id FROM folders c JOIN sub ON c.parent_id = sub.id \
             WHERE c.workspace_id = $1 AND c.trashed_at IS NULL) ";
        let mut tx = self.write_pool().begin().await.map_err(db_error)?;
        Self::lock_workspace(&mut tx, ws).await?;
        sqlx::query(&format!(
            "{LIVE_SUBTREE} UPDATE files SET trashed_at = $3, trash_root = $2 \
             WHERE workspace_id = $1 AND trashed_at IS NULL AND folder_id IN (SELECT id FROM sub)"
        ))
        .bind(ws.as_str())
        .bind(id.as_str())
        .bind(millis(at))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        sqlx::query(&format!(
            "{LIVE_SUBTREE} UPDATE folders SET trashed_at = $3, \
             trash_root = CASE WHEN id = $2 THEN NULL ELSE $2 END \
             WHERE workspace_id = $1 AND id IN (SELECT id FROM sub)"
        ))
        .bind(ws.as_str())
        .bind(id.as_str())
        .bind(millis(at))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let folder: Folder = sqlx::query_as::<_, FolderRow>(&format!(
            "SELECT {FOLDER_COLUMNS} FROM folders WHERE workspace_id = $1 AND id = $2 AND trashed_at = $3"
        ))
        .bind(ws.as_str())
        .bind(id.as_str())
        .bind(millis(at))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?
        .ok_or(Error::NotFound("folder"))?
        .try_into()?;
        tx.commit().await.map_err(db_error)?;
        Ok(folder)
    }

    async fn restore_folder(
        &self,
        ws: &WorkspaceId,
        id: &FolderId,
        parent: Option<&FolderId>,
        name: &str,
        with_contents: bool,
        at: DateTime<Utc>,
    ) -> Result<Folder> {
        let mut tx = self.write_pool().begin().await.map_err(db_error)?;
        Self::lock_workspace(&mut tx, ws).await?;
        if let Some(parent) = parent {
            Self::check_placement(&mut tx, ws, Some(id), parent).await?;
        }
        let row: Option<FolderRow> = sqlx::query_as(&format!(
            "UPDATE folders SET trashed_at = NULL, trash_root = NULL, parent_id = $1, name = $2, \
             name_folded = $3, \
             updated_at = $4 WHERE workspace_id = $5 AND id = $6 AND trashed_at IS NOT NULL RETURNING \
             {FOLDER_COLUMNS}"
        ))
        .bind(parent.map(|p| p.as_str()))
        .bind(name)
        .bind(fold(name))
        .bind(millis(at))
        .bind(ws.as_str())
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(folder_error)?;
        let folder = Folder::try_from(row.ok_or(Error::NotFound("folder"))?)?;
        if with_contents {
            for table in ["folders", "files"] {
                sqlx::query(&format!(
                    "UPDATE {table} SET trashed_at = NULL, trash_root = NULL WHERE workspace_id = $1 AND \
                     trash_root = $2"
                ))
                .bind(ws.as_str())
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(folder_error)?;
            }
        }
        tx.commit().await.map_err(db_error)?;
        Ok(folder)
    }

    async fn purge_folder(
        &self,
        ws: &WorkspaceId,
        id: &FolderId,
        at: DateTime<Utc>,
    ) -> Result<Vec<FileRecord>> {
        const SUBTREE: &str = "WITH RECURSIVE sub (id) AS ( \
             SELECT id FROM folders WHERE workspace_id = $1 AND id = $2 \
             UNION SELECT c.id FROM folders c JOIN sub ON c.parent_id = sub.id WHERE c.workspace_id = $1) ";
        let mut tx = self.write_pool().begin().await.map_err(db_error)?;
        Self::lock_workspace(&mut tx, ws).await?;
        let rows: Vec<FileRow> = sqlx::query_as(&format!(
            "{SUBTREE} DELETE FROM files WHERE workspace_id = $1 AND folder_id IN (SELECT id FROM sub) \
             RETURNING {FILE_COLUMNS}"
        ))
        .bind(ws.as_str())
        .bind(id.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        let files = rows.into_iter().map(FileRecord::try_from).collect::<Result<Vec<_>>>()?;
        let mut freed: i64 = 0;
        for file in &files {
            freed += bytes(file.size)?;
            for table in ["file_tags", "file_references"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE workspace_id = $1 AND file_id = $2"))
                    .bind(ws.as_str())
                    .bind(file.id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
            }
        }
        sqlx::query("UPDATE workspaces SET used_bytes = used_bytes - $1 WHERE id = $2")
            .bind(freed)
            .bind(ws.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        Self::record_usage(&mut tx, ws, at).await?;
        let removed = sqlx::query(&format!(
            "{SUBTREE} DELETE FROM folders WHERE workspace_id = $1 AND id IN (SELECT id FROM sub)"
        ))
        .bind(ws.as_str())
        .bind(id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if D::rows_affected(&removed) == 0 {
            return Err(Error::NotFound("folder"));
        }
        tx.commit().await.map_err(db_error)?;
        Ok(files)
    }

    async fn expired_trash(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<(WorkspaceId, TrashEntry)>> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT workspace_id, 'file', id FROM files WHERE trashed_at < $1 AND trash_root IS NULL \
             UNION ALL SELECT workspace_id, 'folder', id FROM folders WHERE trashed_at < $1 AND trash_root \
             IS NULL \
             LIMIT $2",
        )
        .bind(millis(before))
        .bind(i64::from(limit))
        .fetch_all(self.read_pool())
        .await
        .map_err(db_error)?;
        rows.into_iter().map(|(ws, kind, id)| Ok((ws.parse()?, trash_entry(&kind, &id)?))).collect()
    }

    async fn trash_entries(&self, ws: &WorkspaceId, limit: u32) -> Result<Vec<TrashEntry>> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT kind, id, trashed_at FROM ( \
                 SELECT 'file' AS kind, id, trashed_at FROM files \
                 WHERE workspace_id = $1 AND trashed_at IS NOT NULL AND trash_root IS NULL \
                 UNION ALL SELECT 'folder' AS kind, id, trashed_at FROM folders \
                 WHERE workspace_id = $1 AND trashed_at IS NOT NULL AND trash_root IS NULL) AS entries \
             ORDER BY trashed_at DESC, id DESC LIMIT $2",
        )
        .bind(ws.as_str())
        .bind(i64::from(limit))
        .fetch_all(self.read_pool())
        .await
        .map_err(db_error)?;
        rows.into_iter().map(|(kind, id, _)| trash_entry(&kind, &id)).collect()
    }
}
