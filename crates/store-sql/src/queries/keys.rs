//! Workspaces and API keys, and the revocation of end-user tokens.

use cabinet_core::rules::TokenStanding;
use cabinet_core::{ApiKey, ApiKeyId, Code, Error, Result, Upload, Workspace, WorkspaceId};
use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, Type};

use crate::dialect::{Dialect, SqlStore, Value};
use crate::errors::{db_error, workspace_error};
use crate::read_cache::Lookup;
use crate::rows::{
    bytes, millis, ApiKeyRow, ApiKeyWorkspaceRow, UploadRow, WorkspaceRow, UPLOAD_COLUMNS, WORKSPACE_COLUMNS,
};

#[async_trait::async_trait]
impl<D: Dialect> cabinet_core::WorkspaceStore for SqlStore<D>
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
    async fn create_workspace(&self, ws: &Workspace) -> Result<()> {
        sqlx::query(
            "INSERT INTO workspaces (id, name, limit_bytes, max_file_bytes, used_bytes, reserved_bytes, \
             created_at) \
             VALUES ($1, $2, $3, $4, 0, 0, $5)",
        )
        .bind(ws.id.as_str())
        .bind(&ws.name)
        .bind(ws.limit_bytes.map(bytes).transpose()?)
        .bind(ws.max_file_bytes.map(bytes).transpose()?)
        .bind(millis(ws.created_at))
        .execute(self.write_pool())
        .await
        .map_err(workspace_error)?;
        Ok(())
    }

    async fn get_workspace(&self, id: &WorkspaceId) -> Result<Workspace> {
        // Read by every upload as it starts (its limits), so a point read on SQLite.
        let sql = format!("SELECT {WORKSPACE_COLUMNS} FROM workspaces WHERE id = $1");
        let row = match self.db.inline_rows::<WorkspaceRow>(&sql, &[id.as_str()]) {
            Some(rows) => rows?.into_iter().next(),
            None => sqlx::query_as::<_, WorkspaceRow>(&sql)
                .bind(id.as_str())
                .fetch_optional(self.read_pool())
                .await
                .map_err(db_error)?,
        };
        row.ok_or(Error::NotFound("workspace"))?.try_into()
    }

    async fn list_workspaces(&self) -> Result<Vec<Workspace>> {
        sqlx::query_as::<_, WorkspaceRow>(&format!(
            "SELECT {WORKSPACE_COLUMNS} FROM workspaces ORDER BY created_at, id"
        ))
        .fetch_all(self.read_pool())
        .await
        .map_err(db_error)?
        .into_iter()
        .map(Workspace::try_from)
        .collect()
    }

    async fn workspace_cors_origins(&self, id: &WorkspaceId) -> Result<Option<String>> {
        let row: Option<(Option<String>,)> =
            sqlx::query_as("SELECT cors_origins FROM workspaces WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(self.read_pool())
                .await
                .map_err(db_error)?;
        let (origins,) = row.ok_or(Error::NotFound("workspace"))?;
        Ok(origins)
    }

    async fn set_workspace_cors_origins(&self, id: &WorkspaceId, origins: Option<&str>) -> Result<()> {
        let done = sqlx::query("UPDATE workspaces SET cors_origins = $1 WHERE id = $2")
            .bind(origins)
            .bind(id.as_str())
            .execute(self.write_pool())
            .await
            .map_err(db_error)?;
        if D::rows_affected(&done) == 0 {
            return Err(Error::NotFound("workspace"));
        }
        Ok(())
    }

    async fn workspace_has_live_items(&self, id: &WorkspaceId) -> Result<bool> {
        let row: Option<(i64,)> = sqlx::query_as(HOLDS_ITEMS_LIVE)
            .bind(id.as_str())
            .fetch_optional(self.read_pool())
            .await
            .map_err(db_error)?;
        let (held,) = row.ok_or(Error::NotFound("workspace"))?;
        Ok(held != 0)
    }

    async fn delete_workspace(&self, id: &WorkspaceId, at: DateTime<Utc>) -> Result<Vec<Upload>> {
        let ws = id.as_str();
        let mut tx = self.write_pool().begin().await.map_err(db_error)?;
        // Taken first, as every commit of a file takes it: a file committed while this runs is
        // either here to refuse the deletion, or finds no workspace to commit into.
        Self::lock_workspace(&mut tx, id).await?;
        let held: Option<(i64,)> =
            sqlx::query_as(HOLDS_ITEMS).bind(ws).fetch_optional(&mut *tx).await.map_err(db_error)?;
        match held {
            None => return Err(Error::NotFound("workspace")),
            Some((0,)) => {}
            Some(_) => {
                return Err(Error::conflict(
                    Code::WorkspaceNotEmpty,
                    "the workspace holds files or folders; delete them first",
                ))
            }
        }
        let live: Vec<Upload> = sqlx::query_as::<_, UploadRow>(&format!(
            "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE workspace_id = $1 AND status IN ('WAITING', 'UPLOADING')"
        ))
        .bind(ws)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?
        .into_iter()
        .map(Upload::try_from)
        .collect::<Result<_>>()?;
        // A key granted this workspace alone would reach nothing: it is revoked, not left dangling.
        sqlx::query(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id IN (SELECT key_id FROM \
             api_key_workspaces WHERE workspace_id = $2) AND NOT EXISTS (SELECT 1 FROM api_key_workspaces o \
             WHERE o.key_id = api_keys.id AND o.workspace_id <> $2)",
        )
        .bind(millis(at))
        .bind(ws)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        // Events last of all: deleting rows above records some (`key.revoked`).
        for table in [
            "api_key_workspaces",
            "uploads",
            "file_tags",
            "file_references",
            "access_rules",
            "token_revocations",
            "usage_ledger",
            "s3_keys",
            "s3_objects",
            "webhook_deliveries",
            "webhooks",
            "events",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE workspace_id = $1"))
                .bind(ws)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        sqlx::query("DELETE FROM workspaces WHERE id = $1")
            .bind(ws)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(live)
    }
}

/// 1 when the workspace (`$1`) holds a file or folder, trashed or not; no row when it does not exist.
const HOLDS_ITEMS: &str = "SELECT CAST(CASE WHEN EXISTS (SELECT 1 FROM files WHERE workspace_id = $1) \
     OR EXISTS (SELECT 1 FROM folders WHERE workspace_id = $1) THEN 1 ELSE 0 END AS BIGINT) \
     FROM workspaces WHERE id = $1";

/// The same for files and folders out of the trash.
const HOLDS_ITEMS_LIVE: &str = "SELECT CAST(CASE WHEN EXISTS (SELECT 1 FROM files WHERE workspace_id = $1 \
     AND trashed_at IS NULL) OR EXISTS (SELECT 1 FROM folders WHERE workspace_id = $1 AND trashed_at IS NULL) \
     THEN 1 ELSE 0 END AS BIGINT) FROM workspaces WHERE id = $1";

#[async_trait::async_trait]
impl<D: Dialect> cabinet_core::KeyStore for SqlStore<D>
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
    async fn create_api_key(&self, key: &ApiKey, secret_hash: &str) -> Result<()> {
        let mut tx = self.write_pool().begin().await.map_err(db_error)?;
        sqlx::query(
            "INSERT INTO api_keys (id, secret_hash, name, role, hint, created_at) VALUES ($1, $2, $3, $4, \
             $5, $6)",
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
            sqlx::query(
                "INSERT INTO api_key_workspaces (key_id, workspace_id, position) VALUES ($1, $2, $3)",
            )
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
        const SQL: &str = super::FIND_API_KEY;
        let cache = self.db.cache();
        let read = match cache {
            Some(cache) => match cache.key(secret_hash).await {
                Lookup::Kept(kept) => return Ok(Some(kept)),
                Lookup::Read(read) => read,
            },
            None => None,
        };
        let inline = self.db.inline_rows::<ApiKeyWorkspaceRow>(SQL, &[secret_hash]);
        let rows = match inline {
            Some(rows) => rows?,
            None => sqlx::query_as::<_, ApiKeyWorkspaceRow>(SQL)
                .bind(secret_hash)
                .fetch_all(self.read_pool())
                .await
                .map_err(db_error)?,
        };
        let workspaces: Vec<String> = rows.iter().filter_map(|row| row.workspace_id.clone()).collect();
        let Some(row) = rows.into_iter().next() else { return Ok(None) };
        let key = row.key.into_key(workspaces)?;
        if let (Some(cache), Some(read)) = (cache, read) {
            cache.keep_key(read, secret_hash, &key);
        }
        Ok(Some(key))
    }

    async fn list_api_keys(&self, ws: &WorkspaceId) -> Result<Vec<ApiKey>> {
        let rows = sqlx::query_as::<_, ApiKeyRow>(
            "SELECT k.id, k.name, k.role, k.hint, k.created_at, k.revoked_at FROM api_keys k \
             JOIN api_key_workspaces w ON w.key_id = k.id WHERE w.workspace_id = $1 ORDER BY k.created_at, \
             k.id",
        )
        .bind(ws.as_str())
        .fetch_all(self.read_pool())
        .await
        .map_err(db_error)?;
        let mut keys = Vec::with_capacity(rows.len());
        for row in rows {
            let workspaces: Vec<String> = sqlx::query_scalar(
                "SELECT workspace_id FROM api_key_workspaces WHERE key_id = $1 ORDER BY position",
            )
            .bind(&row.id)
            .fetch_all(self.read_pool())
            .await
            .map_err(db_error)?;
            keys.push(row.into_key(workspaces)?);
        }
        Ok(keys)
    }

    async fn revoke_tokens(&self, ws: &WorkspaceId, sub: &str, at: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "INSERT INTO token_revocations (workspace_id, sub, revoked_up_to) VALUES ($1, $2, $3) \
             ON CONFLICT (workspace_id, sub) DO UPDATE SET revoked_up_to = \
             CASE WHEN excluded.revoked_up_to > token_revocations.revoked_up_to \
             THEN excluded.revoked_up_to ELSE token_revocations.revoked_up_to END",
        )
        .bind(ws.as_str())
        .bind(sub)
        .bind(millis(at))
        .execute(self.write_pool())
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn token_standing(&self, ws: &WorkspaceId, key_id: &str, sub: &str) -> Result<TokenStanding> {
        let cache = self.db.cache();
        let read = match cache {
            Some(cache) => match cache.standing(ws.as_str(), key_id, sub).await {
                Lookup::Kept(kept) => return Ok(kept),
                Lookup::Read(read) => read,
            },
            None => None,
        };
        let (live, cutoff): (i64, Option<i64>) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM api_keys WHERE id = $1 AND revoked_at IS NULL), \
             (SELECT MAX(revoked_up_to) FROM token_revocations WHERE workspace_id = $2 AND sub IN ('', $3))",
        )
        .bind(key_id)
        .bind(ws.as_str())
        .bind(sub)
        .fetch_one(self.read_pool())
        .await
        .map_err(db_error)?;
        let standing = TokenStanding {
            key_live: live > 0,
            revoked_up_to: cutoff.and_then(chrono::DateTime::from_timestamp_millis),
        };
        if let (Some(cache), Some(read)) = (cache, read) {
            cache.keep_standing(read, ws.as_str(), key_id, sub, &standing);
        }
        Ok(standing)
    }

    async fn revoke_api_key(&self, id: &ApiKeyId, at: DateTime<Utc>) -> Result<()> {
        let done = sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2")
            .bind(millis(at))
            .bind(id.as_str())
            .execute(self.write_pool())
            .await
            .map_err(db_error)?;
        if D::rows_affected(&done) == 0 {
            return Err(Error::NotFound("api key"));
        }
        Ok(())
    }
}
