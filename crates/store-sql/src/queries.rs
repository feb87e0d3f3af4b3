//! The metadata port's queries, written once in SQL that SQLite and PostgreSQL both accept
//! (`$N` parameters, `RETURNING`, row-value comparison). Each dialect supplies its pools and
//! migrations and instantiates this implementation; the conformance suite holds both to it.

/// Implements `MetadataStore` for a store type with `write` and `read` pools of database `$db`.
macro_rules! impl_metadata_store {
    ($store:ty, $db:ty) => {
        const _: () = {
        use std::collections::HashSet;

        use cabinet_core::ports::FileListQuery;
        use cabinet_core::{
            ApiKey, ApiKeyId, Error, FailureReason, FileId, FileRecord, Result, Upload, UploadId, Usage,
            Workspace, WorkspaceId,
        };
        use chrono::{DateTime, Utc};
        use sqlx::Row;

        use crate::errors::db_error;
        use crate::rows::{
            bytes, millis, ApiKeyRow, FileRow, UploadRow, WorkspaceRow, FILE_COLUMNS, UPLOAD_COLUMNS,
            WORKSPACE_COLUMNS,
        };

        impl $store {
            fn quota_error(available: Option<i64>, requested: u64) -> Error {
                Error::QuotaExceeded { requested, available: available.unwrap_or(0).max(0) as u64 }
            }

            async fn insert_file(tx: &mut sqlx::Transaction<'_, $db>, file: &FileRecord) -> Result<()> {
                sqlx::query(&format!("INSERT INTO files ({FILE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"))
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

            fn id_pairs(rows: Vec<<$db as sqlx::Database>::Row>) -> Result<Vec<(WorkspaceId, UploadId)>> {
                rows.into_iter()
                    .map(|row| {
                        let ws: String = row.try_get("workspace_id").map_err(db_error)?;
                        let id: String = row.try_get("id").map_err(db_error)?;
                        Ok((ws.parse()?, id.parse()?))
                    })
                    .collect()
            }
        }

        #[async_trait::async_trait]
        impl cabinet_core::MetadataStore for $store {
            async fn ping(&self) -> Result<()> {
                sqlx::query("SELECT 1").execute(&self.read).await.map_err(|err| Error::Unavailable(Box::new(err)))?;
                Ok(())
            }

            async fn create_workspace(&self, ws: &Workspace) -> Result<()> {
                sqlx::query(
                    "INSERT INTO workspaces (id, name, limit_bytes, max_file_bytes, used_bytes, reserved_bytes, created_at) \
                     VALUES ($1, $2, $3, $4, 0, 0, $5)",
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
                sqlx::query_as::<_, WorkspaceRow>(&format!("SELECT {WORKSPACE_COLUMNS} FROM workspaces WHERE id = $1"))
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
                    "INSERT INTO api_keys (id, secret_hash, name, role, hint, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
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
                    sqlx::query("INSERT INTO api_key_workspaces (key_id, workspace_id, position) VALUES ($1, $2, $3)")
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
                    "SELECT id, name, role, hint, created_at, revoked_at FROM api_keys WHERE secret_hash = $1",
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
                     JOIN api_key_workspaces w ON w.key_id = k.id WHERE w.workspace_id = $1 ORDER BY k.created_at, k.id",
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
                let done = sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2")
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
                    "UPDATE workspaces SET reserved_bytes = reserved_bytes + $1 \
                     WHERE id = $2 AND (limit_bytes IS NULL OR used_bytes + reserved_bytes + $1 <= limit_bytes)",
                )
                .bind(size)
                .bind(upload.workspace_id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
                if reserved.rows_affected() == 0 {
                    let available: Option<i64> = sqlx::query_scalar(
                        "SELECT limit_bytes - used_bytes - reserved_bytes FROM workspaces WHERE id = $1",
                    )
                    .bind(upload.workspace_id.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_error)?
                    .ok_or(Error::NotFound("workspace"))?;
                    return Err(Self::quota_error(available, upload.size));
                }
                sqlx::query(&format!(
                    "INSERT INTO uploads ({UPLOAD_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
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
                    "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE workspace_id = $1 AND id = $2"
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
                    "UPDATE uploads SET status = 'UPLOADING', updated_at = $1 \
                     WHERE workspace_id = $2 AND id = $3 AND status = 'WAITING'",
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
                    "UPDATE uploads SET status = 'SUCCESS', updated_at = $1 \
                     WHERE workspace_id = $2 AND id = $3 AND status IN ('WAITING', 'UPLOADING') RETURNING size",
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
                Self::insert_file(&mut tx, file).await?;
                sqlx::query(
                    "UPDATE workspaces SET reserved_bytes = reserved_bytes - $1, used_bytes = used_bytes + $2 WHERE id = $3",
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
                    "UPDATE uploads SET status = 'FAILED', failure_reason = $1, updated_at = $2 \
                     WHERE workspace_id = $3 AND id = $4 AND status IN ('WAITING', 'UPLOADING') RETURNING size",
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
                sqlx::query("UPDATE workspaces SET reserved_bytes = reserved_bytes - $1 WHERE id = $2")
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
                     WHERE (status = 'WAITING' AND expires_at <= $1) OR (status = 'UPLOADING' AND expires_at <= $2) LIMIT $3",
                )
                .bind(millis(waiting_before))
                .bind(millis(uploading_before))
                .bind(i64::from(limit))
                .fetch_all(&self.read)
                .await
                .map_err(db_error)?;
                Self::id_pairs(rows)
            }

            async fn receiving_uploads(&self, limit: u32) -> Result<Vec<(WorkspaceId, UploadId)>> {
                let rows = sqlx::query("SELECT workspace_id, id FROM uploads WHERE status = 'UPLOADING' LIMIT $1")
                    .bind(i64::from(limit))
                    .fetch_all(&self.read)
                    .await
                    .map_err(db_error)?;
                Self::id_pairs(rows)
            }

            async fn insert_file_charging(&self, file: &FileRecord) -> Result<()> {
                let size = bytes(file.size)?;
                let mut tx = self.write.begin().await.map_err(db_error)?;
                let charged = sqlx::query(
                    "UPDATE workspaces SET used_bytes = used_bytes + $1 \
                     WHERE id = $2 AND (limit_bytes IS NULL OR used_bytes + reserved_bytes + $1 <= limit_bytes)",
                )
                .bind(size)
                .bind(file.workspace_id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
                if charged.rows_affected() == 0 {
                    let available: Option<i64> = sqlx::query_scalar(
                        "SELECT limit_bytes - used_bytes - reserved_bytes FROM workspaces WHERE id = $1",
                    )
                    .bind(file.workspace_id.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_error)?
                    .ok_or(Error::NotFound("workspace"))?;
                    return Err(Self::quota_error(available, file.size));
                }
                Self::insert_file(&mut tx, file).await?;
                tx.commit().await.map_err(db_error)
            }

            async fn get_file(&self, ws: &WorkspaceId, id: &FileId) -> Result<FileRecord> {
                sqlx::query_as::<_, FileRow>(&format!(
                    "SELECT {FILE_COLUMNS} FROM files WHERE workspace_id = $1 AND id = $2"
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
                        "SELECT {FILE_COLUMNS} FROM files WHERE workspace_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
                    ))
                    .bind(ws.as_str())
                    .bind(i64::from(query.limit))
                    .fetch_all(&self.read)
                    .await,
                    Some(after) => sqlx::query_as::<_, FileRow>(&format!(
                        "SELECT {FILE_COLUMNS} FROM files WHERE workspace_id = $1 AND (created_at, id) < ($2, $3) \
                         ORDER BY created_at DESC, id DESC LIMIT $4"
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
                    "DELETE FROM files WHERE workspace_id = $1 AND id = $2 RETURNING {FILE_COLUMNS}"
                ))
                .bind(ws.as_str())
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?
                .ok_or(Error::NotFound("file"))?
                .try_into()?;
                sqlx::query("UPDATE workspaces SET used_bytes = used_bytes - $1 WHERE id = $2")
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
                    "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(size), 0) AS BIGINT) AS total FROM files WHERE workspace_id = $1",
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
                        "SELECT CAST(1 AS BIGINT) WHERE EXISTS (SELECT 1 FROM files WHERE blob_key = $1) \
                         OR EXISTS (SELECT 1 FROM uploads WHERE blob_key = $1 AND status IN ('WAITING', 'UPLOADING'))",
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
        };
    };
}

pub(crate) use impl_metadata_store;
