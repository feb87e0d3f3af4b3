//! The quota ledger: what a workspace uses, its history for metering, reconciling it with the files
//! and uploads, and the blobs it accounts for.

use std::collections::HashSet;

use cabinet_core::ports::LedgerCheck;
use cabinet_core::{Error, FileId, Result, Usage, WorkspaceId};
use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, Row, Type};

use crate::dialect::{Dialect, SqlStore, Value};
use crate::errors::db_error;
use crate::rows::{from_millis, millis};

#[async_trait::async_trait]
impl<D: Dialect> cabinet_core::LedgerStore for SqlStore<D>
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
    async fn usage(&self, ws: &WorkspaceId) -> Result<Usage> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(size), 0) AS BIGINT) AS total, \
             CAST(COALESCE(SUM(CASE WHEN trashed_at IS NULL THEN 0 ELSE 1 END), 0) AS BIGINT) AS trashed_n, \
             CAST(COALESCE(SUM(CASE WHEN trashed_at IS NULL THEN 0 ELSE size END), 0) AS BIGINT) AS trashed \
             FROM files WHERE workspace_id = $1",
        )
        .bind(ws.as_str())
        .fetch_one(self.read_pool())
        .await
        .map_err(db_error)?;
        let count = |column: &str| -> Result<u64> {
            Ok(row.try_get::<i64, _>(column).map_err(db_error)?.max(0) as u64)
        };
        Ok(Usage {
            file_count: count("n")?,
            total_size: count("total")?,
            trashed_count: count("trashed_n")?,
            trashed_size: count("trashed")?,
        })
    }

    async fn reconcile_ledger(
        &self,
        ws: &WorkspaceId,
        repair: bool,
        at: DateTime<Utc>,
    ) -> Result<LedgerCheck> {
        const ACTUAL_USED: &str =
            "(SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM files WHERE workspace_id = $1)";
        const ACTUAL_RESERVED: &str = "(SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM uploads \
             WHERE workspace_id = $1 AND status IN ('WAITING', 'UPLOADING'))";
        let mut tx = self.write_pool().begin().await.map_err(db_error)?;
        let (used, reserved, actual_used, actual_reserved): (i64, i64, i64, i64) = sqlx::query_as(&format!(
            "SELECT used_bytes, reserved_bytes, {ACTUAL_USED}, {ACTUAL_RESERVED} FROM workspaces WHERE id = \
             $1"
        ))
        .bind(ws.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?
        .ok_or(Error::NotFound("workspace"))?;
        if repair && (used != actual_used || reserved != actual_reserved) {
            // One statement, so the sums and the ledger cannot drift apart while it runs.
            sqlx::query(&format!(
                "UPDATE workspaces SET used_bytes = {ACTUAL_USED}, reserved_bytes = {ACTUAL_RESERVED} WHERE \
                 id = $1"
            ))
            .bind(ws.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            Self::record_usage(&mut tx, ws, at).await?;
        }
        tx.commit().await.map_err(db_error)?;
        let unsigned = |n: i64| n.max(0) as u64;
        Ok(LedgerCheck {
            recorded_used: unsigned(used),
            recorded_reserved: unsigned(reserved),
            actual_used: unsigned(actual_used),
            actual_reserved: unsigned(actual_reserved),
        })
    }

    async fn usage_history(
        &self,
        ws: &WorkspaceId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<(u64, Vec<(DateTime<Utc>, u64)>)> {
        let before: Option<i64> = sqlx::query_scalar(
            "SELECT used_bytes FROM usage_ledger WHERE workspace_id = $1 AND at <= $2 ORDER BY at DESC, seq \
             DESC LIMIT 1",
        )
        .bind(ws.as_str())
        .bind(millis(from))
        .fetch_optional(self.read_pool())
        .await
        .map_err(db_error)?;
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT at, used_bytes FROM usage_ledger WHERE workspace_id = $1 AND at > $2 AND at < $3 ORDER \
             BY at, seq",
        )
        .bind(ws.as_str())
        .bind(millis(from))
        .bind(millis(to))
        .fetch_all(self.read_pool())
        .await
        .map_err(db_error)?;
        let changes = rows
            .into_iter()
            .map(|(at, used)| Ok((from_millis(at)?, used.max(0) as u64)))
            .collect::<Result<Vec<_>>>()?;
        Ok((before.unwrap_or(0).max(0) as u64, changes))
    }

    async fn file_blobs(
        &self,
        after: Option<&FileId>,
        limit: u32,
    ) -> Result<Vec<(WorkspaceId, FileId, String, u64)>> {
        let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT workspace_id, id, blob_key, size FROM files WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after.map_or("", |id| id.as_str()))
        .bind(i64::from(limit))
        .fetch_all(self.read_pool())
        .await
        .map_err(db_error)?;
        rows.into_iter()
            .map(|(ws, id, key, size)| Ok((ws.parse()?, id.parse()?, key, size.max(0) as u64)))
            .collect()
    }

    async fn blob_keys_in_use(&self, keys: &[String]) -> Result<HashSet<String>> {
        let mut owned = HashSet::new();
        for key in keys {
            let found: Option<i64> = sqlx::query_scalar(
                "SELECT CAST(1 AS BIGINT) WHERE EXISTS (SELECT 1 FROM files WHERE blob_key = $1) \
                 OR EXISTS (SELECT 1 FROM uploads WHERE blob_key = $1 AND status IN ('WAITING', \
                 'UPLOADING'))",
            )
            .bind(key)
            .fetch_optional(self.read_pool())
            .await
            .map_err(db_error)?;
            if found.is_some() {
                owned.insert(key.clone());
            }
        }
        Ok(owned)
    }
}
