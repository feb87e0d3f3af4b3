//! The metadata port's queries, written once in SQL that SQLite and PostgreSQL both accept
//! (`$N` parameters, `RETURNING`, row-value comparison) over `SqlStore<D>`, one module an aggregate.
//! Each dialect supplies its pools, its name match and its migrations; the conformance suite holds
//! both to the same behaviour.

use cabinet_core::{Error, Result, WorkspaceId};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, QueryBuilder, Type};

use crate::dialect::{Dialect, SqlStore, Value};
use crate::errors::db_error;
use crate::rows::{bytes, millis};

pub(crate) use filters::NameMatched;

mod access;
mod audit;
mod events;
mod files;
mod filters;
mod folders;
mod keys;
mod ledger;
mod links;
mod migrations;
mod s3;
mod search;
mod trash;
mod uploads;
mod webhooks;

/// A key and its workspaces in order, by the hash of its secret: behind every request.
pub(crate) const FIND_API_KEY: &str = "SELECT k.id, k.name, k.role, k.hint, k.created_at, k.revoked_at, \
     w.workspace_id FROM api_keys k LEFT JOIN api_key_workspaces w ON w.key_id = k.id \
     WHERE k.secret_hash = $1 ORDER BY w.position";

/// The quota's rule, as a condition on a workspace's row: it can take `change` (an SQL expression
/// of the bytes added) when it has no limit, or its used and reserved bytes stay within the limit.
fn fits_quota(change: &str) -> String {
    format!("(limit_bytes IS NULL OR used_bytes + reserved_bytes {change} <= limit_bytes)")
}

/// The refusal of bytes the quota cannot take, given what it had left.
fn quota_error(available: Option<i64>, requested: u64) -> Error {
    Error::QuotaExceeded { requested, available: available.unwrap_or(0).max(0) as u64 }
}

impl<D: Dialect> SqlStore<D>
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
    /// Adds `size` bytes to the workspace's `column` (`used_bytes` or `reserved_bytes`) in the
    /// transaction, in one conditional statement; `QuotaExceeded` (and nothing changed) when they
    /// do not fit the limit.
    pub(super) async fn charge(
        tx: &mut sqlx::Transaction<'_, D::Db>,
        ws: &WorkspaceId,
        column: &'static str,
        size: u64,
    ) -> Result<()> {
        let charged = sqlx::query(&format!(
            "UPDATE workspaces SET {column} = {column} + $1 WHERE id = $2 AND {}",
            fits_quota("+ $1")
        ))
        .bind(bytes(size)?)
        .bind(ws.as_str())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
        if D::rows_affected(&charged) == 0 {
            let available: Option<i64> = sqlx::query_scalar(
                "SELECT limit_bytes - used_bytes - reserved_bytes FROM workspaces WHERE id = $1",
            )
            .bind(ws.as_str())
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_error)?
            .ok_or(Error::NotFound("workspace"))?;
            return Err(quota_error(available, size));
        }
        Ok(())
    }

    /// Locks the workspace's row for the rest of the transaction, so tree changes in one
    /// workspace happen one at a time.
    pub(super) async fn lock_workspace(
        tx: &mut sqlx::Transaction<'_, D::Db>,
        ws: &WorkspaceId,
    ) -> Result<()> {
        sqlx::query("UPDATE workspaces SET used_bytes = used_bytes WHERE id = $1")
            .bind(ws.as_str())
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// Appends the workspace's `used_bytes` as of `at` to the metering ledger, in the
    /// transaction that changed it.
    pub(super) async fn record_usage(
        tx: &mut sqlx::Transaction<'_, D::Db>,
        ws: &WorkspaceId,
        at: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO usage_ledger (workspace_id, at, used_bytes) SELECT id, $2, used_bytes FROM \
                     workspaces WHERE id = $1",
        )
        .bind(ws.as_str())
        .bind(millis(at))
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    pub(super) async fn count(&self, mut qb: QueryBuilder<'static, D::Db>) -> Result<u64> {
        let rows: Vec<(i64,)> = D::fetch_built(&mut qb, self.read_pool()).await.map_err(db_error)?;
        let (n,) = rows.into_iter().next().ok_or_else(|| db_error(sqlx::Error::RowNotFound))?;
        Ok(n.max(0) as u64)
    }
}

#[async_trait::async_trait]
impl<D: Dialect> cabinet_core::MetadataStore for SqlStore<D>
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
    fn in_request_scope<'a>(&'a self, request: BoxFuture<'a, ()>) -> BoxFuture<'a, ()> {
        self.db.in_request_scope(request)
    }

    fn hands_statements_to_a_thread(&self) -> bool {
        D::HANDS_STATEMENTS_TO_A_THREAD
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(self.read_pool())
            .await
            .map_err(|err| Error::Unavailable(Box::new(err)))?;
        Ok(())
    }

    fn pools(&self) -> Vec<cabinet_core::ports::PoolUsage> {
        let usage = |name, pool: &sqlx::Pool<D::Db>| cabinet_core::ports::PoolUsage {
            name,
            open: pool.size(),
            idle: pool.num_idle() as u32,
            max: pool.options().get_max_connections(),
        };
        vec![usage("read", self.read_pool()), usage("write", self.write_pool())]
    }
}
