//! The audit log (migration 0021): appended, read newest first, pruned past its retention. The
//! database refuses every other change; the prune opens its gate to the horizon for the length of
//! its own transaction.

use cabinet_core::audit::{AuditActor, AuditQuery, AuditRecord, NewAuditRecord};
use cabinet_core::{Result, WorkspaceId};
use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, QueryBuilder, Type};

use crate::dialect::{Dialect, SqlStore, Value};
use crate::errors::db_error;
use crate::rows::{from_millis, millis};

type AuditRow =
    (i64, i64, String, Option<String>, String, Option<String>, Option<String>, i64, Option<String>);

impl<D: Dialect> SqlStore<D>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    for<'q> <D::Db as Database>::Arguments<'q>: IntoArguments<'q, D::Db>,
    usize: ColumnIndex<<D::Db as Database>::Row>,
    i64: Value<D::Db>,
    String: Value<D::Db>,
    Option<i64>: Value<D::Db>,
    Option<String>: Value<D::Db>,
{
    /// Appends `records` in the caller's transaction: the audit log's writer, and a change that
    /// commits with the record of the request that made it.
    pub(crate) async fn append_audit_in(
        tx: &mut sqlx::Transaction<'_, D::Db>,
        records: &[&NewAuditRecord],
    ) -> Result<()> {
        // One statement per 512 records (9 parameters each, well inside either database's limit):
        // each statement is a round trip to the writer.
        for chunk in records.chunks(512) {
            let mut insert = QueryBuilder::<'static, D::Db>::new(
                "INSERT INTO audit_log (workspace_id, at, actor_kind, actor_id, action, object_id, \
                 client_address, status, error_code) ",
            );
            insert.push_values(chunk, |mut row, record| {
                row.push_bind(record.workspace_id.to_string())
                    .push_bind(millis(record.at))
                    .push_bind(record.actor.kind().to_owned())
                    .push_bind(record.actor.id().map(str::to_owned))
                    .push_bind(record.action.clone())
                    .push_bind(record.object_id.clone())
                    .push_bind(record.client_address.clone())
                    .push_bind(i64::from(record.status))
                    .push_bind(record.error_code.clone());
            });
            D::execute_built(&mut insert, &mut **tx).await.map_err(db_error)?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl<D: Dialect> cabinet_core::AuditStore for SqlStore<D>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    for<'q> <D::Db as Database>::Arguments<'q>: IntoArguments<'q, D::Db>,
    for<'q> &'q str: Encode<'q, D::Db> + Type<D::Db> + ColumnIndex<<D::Db as Database>::Row>,
    usize: ColumnIndex<<D::Db as Database>::Row>,
    i64: Value<D::Db>,
    String: Value<D::Db>,
    Option<i64>: Value<D::Db>,
    Option<String>: Value<D::Db>,
{
    async fn append_audit(&self, records: &[NewAuditRecord]) -> Result<()> {
        let mut tx = self.write_pool().begin().await.map_err(db_error)?;
        let records: Vec<&NewAuditRecord> = records.iter().collect();
        Self::append_audit_in(&mut tx, &records).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn audit_records(&self, ws: &WorkspaceId, query: &AuditQuery) -> Result<Vec<AuditRecord>> {
        let rows: Vec<AuditRow> = sqlx::query_as(
            "SELECT id, at, actor_kind, actor_id, action, object_id, client_address, status, error_code \
             FROM audit_log WHERE workspace_id = $1 \
             AND ($2 IS NULL OR actor_id = $2 OR actor_kind = $2) \
             AND ($3 IS NULL OR action = $3) \
             AND ($4 IS NULL OR object_id = $4) \
             AND ($5 IS NULL OR status / 100 = $5) \
             AND ($6 IS NULL OR at >= $6) \
             AND ($7 IS NULL OR at < $7) \
             AND ($8 IS NULL OR id < $8) \
             ORDER BY id DESC LIMIT $9",
        )
        .bind(ws.as_str())
        .bind(query.actor.clone())
        .bind(query.action.clone())
        .bind(query.object_id.clone())
        .bind(query.status_class.map(i64::from))
        .bind(query.from.map(millis))
        .bind(query.to.map(millis))
        .bind(query.before.map(|before| i64::try_from(before).unwrap_or(i64::MAX)))
        .bind(i64::from(query.limit))
        .fetch_all(self.read_pool())
        .await
        .map_err(db_error)?;
        rows.into_iter()
            .map(|(id, at, kind, actor_id, action, object_id, client_address, status, error_code)| {
                Ok(AuditRecord {
                    id: id.max(0) as u64,
                    record: NewAuditRecord {
                        workspace_id: ws.clone(),
                        at: from_millis(at)?,
                        actor: AuditActor::from_stored(&kind, actor_id)?,
                        action,
                        object_id,
                        client_address,
                        status: u16::try_from(status).unwrap_or(0),
                        error_code,
                    },
                })
            })
            .collect()
    }

    async fn prune_audit(&self, before: DateTime<Utc>) -> Result<u64> {
        let horizon = millis(before);
        let mut tx = self.write_pool().begin().await.map_err(db_error)?;
        sqlx::query("UPDATE audit_prune_gate SET horizon = $1 WHERE only_row = 1")
            .bind(horizon)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let done = sqlx::query("DELETE FROM audit_log WHERE at < $1")
            .bind(horizon)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        sqlx::query("UPDATE audit_prune_gate SET horizon = 0 WHERE only_row = 1")
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(D::rows_affected(&done))
    }
}
