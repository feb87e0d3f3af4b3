//! SQLite in WAL mode. All writes go through a single connection, so write transactions never
//! contend for the lock (and never hit SQLITE_BUSY inside the process); reads use a pool. Other
//! processes (the admin CLI) wait on the busy timeout.

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use cabinet_core::ports::FileListQuery;
use cabinet_core::{
    ApiKey, ApiKeyId, Error, FailureReason, FileId, FileRecord, MetadataStore, Result, Upload, UploadId,
    Usage, Workspace, WorkspaceId,
};
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use crate::errors::db_error;
use crate::rows::{
    bytes, millis, ApiKeyRow, FileRow, UploadRow, WorkspaceRow, FILE_COLUMNS, UPLOAD_COLUMNS,
    WORKSPACE_COLUMNS,
};

const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("../migrations/sqlite/0001_spine.sql"))];

/// The SQLite metadata store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at a `sqlite://` URL or a path, and migrates it.
    pub async fn open(url: &str) -> Result<Self> {
        let options = if url.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(url)
                .map_err(|err| Error::bad_request("invalid_database_url", err.to_string()))?
        } else {
            SqliteConnectOptions::new().filename(url)
        }
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // Durable commits: a file reported SUCCESS survives a power cut, not just a crash.
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await
            .map_err(db_error)?;
        let read = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.read_only(true))
            .await
            .map_err(db_error)?;
        let store = Self { write, read };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        sqlx::query("CREATE TABLE IF NOT EXISTS cabinet_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)")
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let applied: HashSet<i64> = sqlx::query_scalar("SELECT version FROM cabinet_migrations")
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?
            .into_iter()
            .collect();
        for (version, sql) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            sqlx::raw_sql(sql).execute(&mut *tx).await.map_err(db_error)?;
            sqlx::query("INSERT INTO cabinet_migrations (version, applied_at) VALUES (?, ?)")
                .bind(version)
                .bind(Utc::now().timestamp_millis())
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }

    async fn key_workspaces(&self, key_id: &str) -> Result<Vec<String>> {
        sqlx::query_scalar("SELECT workspace_id FROM api_key_workspaces WHERE key_id = ? ORDER BY position")
            .bind(key_id)
            .fetch_all(&self.read)
            .await
            .map_err(db_error)
    }
}

fn quota_error(available: Option<i64>, requested: u64) -> Error {
    Error::QuotaExceeded { requested, available: available.unwrap_or(0).max(0) as u64 }
}

#[async_trait]
impl MetadataStore for SqliteStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await.map_err(|err| Error::Unavailable(Box::new(err)))?;
        Ok(())
    }

    async fn create_workspace(&self, ws: &Workspace) -> Result<()> {
        sqlx::query(
            "INSERT INTO workspaces (id, name, limit_bytes, max_file_bytes, used_bytes, reserved_bytes, created_at) \
             VALUES (?, ?, ?, ?, 0, 0, ?)",
        )
        .bind(ws.id.as_str())
        .bind(&ws.name)
        .bind(ws.limit_bytes.map(bytes).transpose()?)
        .bind(ws.max_file_bytes.map(bytes).transpose()?)
        .bind(millis(ws.created_at))
        .execute(&self.write)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn get_workspace(&self, id: &WorkspaceId) -> Result<Workspace> {
        sqlx::query_as::<_, WorkspaceRow>(&format!("SELECT {WORKSPACE_COLUMNS} FROM workspaces WHERE id = ?"))
            .bind(id.as_str())
            .fetch_optional(&self.read)
            .await
            .map_err(db_error)?
            .ok_or(Error::NotFound("workspace"))?
            .try_into()
    }

    async fn list_workspaces(&self) -> Result<Vec<Workspace>> {
        sqlx::query_as::<_, WorkspaceRow>(&format!(
            "SELECT {WORKSPACE_COLUMNS} FROM workspaces ORDER BY created_at, id"
        ))
        .fetch_all(&self.read)
        .await
        .map_err(db_error)?
        .into_iter()
        .map(Workspace::try_from)
        .collect()
    }

    async fn create_api_key(&self, key: &ApiKey, secret_hash: &str) -> Result<()> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        sqlx::query(
            "INSERT INTO api_keys (id, secret_hash, name, role, hint, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(key.id.as_str())
        .bind(secret_hash)
        .bind(&key.name)
        .bind(key.role.as_str())
        .bind(&key.hint)
        .bind(millis(key.created_at))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        for (position, ws) in key.workspaces.iter().enumerate() {
            sqlx::query("INSERT INTO api_key_workspaces (key_id, workspace_id, position) VALUES (?, ?, ?)")
                .bind(key.id.as_str())
                .bind(ws.as_str())
                .bind(position as i64)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }

    async fn find_api_key(&self, secret_hash: &str) -> Result<Option<ApiKey>> {
        let row = sqlx::query_as::<_, ApiKeyRow>(
            "SELECT id, name, role, hint, created_at, revoked_at FROM api_keys WHERE secret_hash = ?",
        )
        .bind(secret_hash)
        .fetch_optional(&self.read)
        .await
        .map_err(db_error)?;
        match row {
            None => Ok(None),
            Some(row) => {
                let workspaces = self.key_workspaces(&row.id).await?;
                row.into_key(workspaces).map(Some)
            }
        }
    }

    async fn list_api_keys(&self, ws: &WorkspaceId) -> Result<Vec<ApiKey>> {
        let rows = sqlx::query_as::<_, ApiKeyRow>(
            "SELECT k.id, k.name, k.role, k.hint, k.created_at, k.revoked_at FROM api_keys k \
             JOIN api_key_workspaces w ON w.key_id = k.id WHERE w.workspace_id = ? ORDER BY k.created_at, k.id",
        )
        .bind(ws.as_str())
        .fetch_all(&self.read)
        .await
        .map_err(db_error)?;
        let mut keys = Vec::with_capacity(rows.len());
        for row in rows {
            let workspaces = self.key_workspaces(&row.id).await?;
            keys.push(row.into_key(workspaces)?);
        }
        Ok(keys)
    }

    async fn revoke_api_key(&self, id: &ApiKeyId, at: DateTime<Utc>) -> Result<()> {
        let done = sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?")
            .bind(millis(at))
            .bind(id.as_str())
            .execute(&self.write)
            .await
            .map_err(db_error)?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound("api key"));
        }
        Ok(())
    }

    async fn insert_upload_reserving(&self, upload: &Upload) -> Result<()> {
        let size = bytes(upload.size)?;
        let mut tx = self.write.begin().await.map_err(db_error)?;
        let reserved = sqlx::query(
            "UPDATE workspaces SET reserved_bytes = reserved_bytes + ?1 \
             WHERE id = ?2 AND (limit_bytes IS NULL OR used_bytes + reserved_bytes + ?1 <= limit_bytes)",
        )
        .bind(size)
        .bind(upload.workspace_id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if reserved.rows_affected() == 0 {
            let available: Option<i64> = sqlx::query_scalar(
                "SELECT limit_bytes - used_bytes - reserved_bytes FROM workspaces WHERE id = ?",
            )
            .bind(upload.workspace_id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?
            .ok_or(Error::NotFound("workspace"))?;
            return Err(quota_error(available, upload.size));
        }
        sqlx::query(&format!(
            "INSERT INTO uploads ({UPLOAD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(upload.workspace_id.as_str())
        .bind(upload.id.as_str())
        .bind(&upload.name)
        .bind(size)
        .bind(&upload.declared_mime)
        .bind(&upload.sha256)
        .bind(upload.folder_id.as_ref().map(|id| id.as_str()))
        .bind(upload.status.as_str())
        .bind(upload.failure_reason.map(FailureReason::as_str))
        .bind(upload.file_id.as_str())
        .bind(&upload.blob_key)
        .bind(millis(upload.created_at))
        .bind(millis(upload.updated_at))
        .bind(millis(upload.expires_at))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    async fn get_upload(&self, ws: &WorkspaceId, id: &UploadId) -> Result<Upload> {
        sqlx::query_as::<_, UploadRow>(&format!(
            "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE workspace_id = ? AND id = ?"
        ))
        .bind(ws.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.read)
        .await
        .map_err(db_error)?
        .ok_or(Error::NotFound("upload"))?
        .try_into()
    }

    async fn begin_receiving(&self, ws: &WorkspaceId, id: &UploadId, at: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE uploads SET status = 'UPLOADING', updated_at = ? \
             WHERE workspace_id = ? AND id = ? AND status = 'WAITING'",
        )
        .bind(millis(at))
        .bind(ws.as_str())
        .bind(id.as_str())
        .execute(&self.write)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn finish_upload(&self, ws: &WorkspaceId, id: &UploadId, file: &FileRecord) -> Result<bool> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        let reserved: Option<i64> = sqlx::query_scalar(
            "UPDATE uploads SET status = 'SUCCESS', updated_at = ? \
             WHERE workspace_id = ? AND id = ? AND status IN ('WAITING', 'UPLOADING') RETURNING size",
        )
        .bind(millis(file.created_at))
        .bind(ws.as_str())
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some(reserved) = reserved else {
            return Ok(false);
        };
        insert_file(&mut tx, file).await?;
        sqlx::query(
            "UPDATE workspaces SET reserved_bytes = reserved_bytes - ?, used_bytes = used_bytes + ? WHERE id = ?",
        )
        .bind(reserved)
        .bind(bytes(file.size)?)
        .bind(ws.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn fail_upload(
        &self,
        ws: &WorkspaceId,
        id: &UploadId,
        reason: FailureReason,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        let reserved: Option<i64> = sqlx::query_scalar(
            "UPDATE uploads SET status = 'FAILED', failure_reason = ?, updated_at = ? \
             WHERE workspace_id = ? AND id = ? AND status IN ('WAITING', 'UPLOADING') RETURNING size",
        )
        .bind(reason.as_str())
        .bind(millis(at))
        .bind(ws.as_str())
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some(reserved) = reserved else {
            return Ok(false);
        };
        sqlx::query("UPDATE workspaces SET reserved_bytes = reserved_bytes - ? WHERE id = ?")
            .bind(reserved)
            .bind(ws.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn expired_uploads(
        &self,
        waiting_before: DateTime<Utc>,
        uploading_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<(WorkspaceId, UploadId)>> {
        let rows = sqlx::query(
            "SELECT workspace_id, id FROM uploads \
             WHERE (status = 'WAITING' AND expires_at <= ?) OR (status = 'UPLOADING' AND expires_at <= ?) LIMIT ?",
        )
        .bind(millis(waiting_before))
        .bind(millis(uploading_before))
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await
        .map_err(db_error)?;
        id_pairs(rows)
    }

    async fn receiving_uploads(&self, limit: u32) -> Result<Vec<(WorkspaceId, UploadId)>> {
        let rows = sqlx::query("SELECT workspace_id, id FROM uploads WHERE status = 'UPLOADING' LIMIT ?")
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await
            .map_err(db_error)?;
        id_pairs(rows)
    }

    async fn waiting_uploads(&self, after: Option<&UploadId>, limit: u32) -> Result<Vec<Upload>> {
        let rows = sqlx::query_as::<_, UploadRow>(&format!(
            "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE status = 'WAITING' AND id > ? ORDER BY id LIMIT ?"
        ))
        .bind(after.map_or("", |id| id.as_str()))
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await
        .map_err(db_error)?;
        rows.into_iter().map(Upload::try_from).collect()
    }

    async fn insert_file_charging(&self, file: &FileRecord) -> Result<()> {
        let size = bytes(file.size)?;
        let mut tx = self.write.begin().await.map_err(db_error)?;
        let charged = sqlx::query(
            "UPDATE workspaces SET used_bytes = used_bytes + ?1 \
             WHERE id = ?2 AND (limit_bytes IS NULL OR used_bytes + reserved_bytes + ?1 <= limit_bytes)",
        )
        .bind(size)
        .bind(file.workspace_id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if charged.rows_affected() == 0 {
            let available: Option<i64> = sqlx::query_scalar(
                "SELECT limit_bytes - used_bytes - reserved_bytes FROM workspaces WHERE id = ?",
            )
            .bind(file.workspace_id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?
            .ok_or(Error::NotFound("workspace"))?;
            return Err(quota_error(available, file.size));
        }
        insert_file(&mut tx, file).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn get_file(&self, ws: &WorkspaceId, id: &FileId) -> Result<FileRecord> {
        sqlx::query_as::<_, FileRow>(&format!(
            "SELECT {FILE_COLUMNS} FROM files WHERE workspace_id = ? AND id = ?"
        ))
        .bind(ws.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.read)
        .await
        .map_err(db_error)?
        .ok_or(Error::NotFound("file"))?
        .try_into()
    }

    async fn list_files(&self, ws: &WorkspaceId, query: &FileListQuery) -> Result<Vec<FileRecord>> {
        let rows = match &query.after {
            None => sqlx::query_as::<_, FileRow>(&format!(
                "SELECT {FILE_COLUMNS} FROM files WHERE workspace_id = ? ORDER BY created_at DESC, id DESC LIMIT ?"
            ))
            .bind(ws.as_str())
            .bind(i64::from(query.limit))
            .fetch_all(&self.read)
            .await,
            Some(after) => sqlx::query_as::<_, FileRow>(&format!(
                "SELECT {FILE_COLUMNS} FROM files WHERE workspace_id = ? AND (created_at, id) < (?, ?) \
                 ORDER BY created_at DESC, id DESC LIMIT ?"
            ))
            .bind(ws.as_str())
            .bind(millis(after.created_at))
            .bind(after.id.as_str())
            .bind(i64::from(query.limit))
            .fetch_all(&self.read)
            .await,
        };
        rows.map_err(db_error)?.into_iter().map(FileRecord::try_from).collect()
    }

    async fn delete_file(&self, ws: &WorkspaceId, id: &FileId) -> Result<FileRecord> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        let file: FileRecord = sqlx::query_as::<_, FileRow>(&format!(
            "DELETE FROM files WHERE workspace_id = ? AND id = ? RETURNING {FILE_COLUMNS}"
        ))
        .bind(ws.as_str())
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?
        .ok_or(Error::NotFound("file"))?
        .try_into()?;
        sqlx::query("UPDATE workspaces SET used_bytes = used_bytes - ? WHERE id = ?")
            .bind(bytes(file.size)?)
            .bind(ws.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(file)
    }

    async fn usage(&self, ws: &WorkspaceId) -> Result<Usage> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, COALESCE(SUM(size), 0) AS total FROM files WHERE workspace_id = ?",
        )
        .bind(ws.as_str())
        .fetch_one(&self.read)
        .await
        .map_err(db_error)?;
        let count: i64 = row.try_get("n").map_err(db_error)?;
        let total: i64 = row.try_get("total").map_err(db_error)?;
        Ok(Usage { file_count: count.max(0) as u64, total_size: total.max(0) as u64 })
    }

    async fn blob_keys_in_use(&self, keys: &[String]) -> Result<HashSet<String>> {
        let mut owned = HashSet::new();
        for key in keys {
            let found: Option<i64> = sqlx::query_scalar(
                "SELECT 1 WHERE EXISTS (SELECT 1 FROM files WHERE blob_key = ?1) \
                 OR EXISTS (SELECT 1 FROM uploads WHERE blob_key = ?1 AND status IN ('WAITING', 'UPLOADING'))",
            )
            .bind(key)
            .fetch_optional(&self.read)
            .await
            .map_err(db_error)?;
            if found.is_some() {
                owned.insert(key.clone());
            }
        }
        Ok(owned)
    }
}

async fn insert_file(tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>, file: &FileRecord) -> Result<()> {
    sqlx::query(&format!("INSERT INTO files ({FILE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"))
        .bind(file.workspace_id.as_str())
        .bind(file.id.as_str())
        .bind(&file.name)
        .bind(&file.mime_type)
        .bind(bytes(file.size)?)
        .bind(&file.sha256)
        .bind(file.folder_id.as_ref().map(|id| id.as_str()))
        .bind(&file.blob_key)
        .bind(millis(file.created_at))
        .bind(millis(file.updated_at))
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

fn id_pairs(rows: Vec<sqlx::sqlite::SqliteRow>) -> Result<Vec<(WorkspaceId, UploadId)>> {
    rows.into_iter()
        .map(|row| {
            let ws: String = row.try_get("workspace_id").map_err(db_error)?;
            let id: String = row.try_get("id").map_err(db_error)?;
            Ok((ws.parse()?, id.parse()?))
        })
        .collect()
}
