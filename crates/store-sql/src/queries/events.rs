//! The outbox's reads: the database's triggers write the events (migration 0018), in the
//! transaction of each change.

use cabinet_core::{EventRecord, Result, WorkspaceId};
use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, Type};

use crate::dialect::{Dialect, SqlStore, Value};
use crate::errors::db_error;
use crate::rows::{from_millis, millis};

#[async_trait::async_trait]
impl<D: Dialect> cabinet_core::EventStore for SqlStore<D>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    for<'q> <D::Db as Database>::Arguments<'q>: IntoArguments<'q, D::Db>,
    for<'q> &'q str: Encode<'q, D::Db> + Type<D::Db> + ColumnIndex<<D::Db as Database>::Row>,
    usize: ColumnIndex<<D::Db as Database>::Row>,
    i64: Value<D::Db>,
    String: Value<D::Db>,
    Option<String>: Value<D::Db>,
{
    async fn events_after(&self, ws: &WorkspaceId, after: u64, limit: u32) -> Result<Vec<EventRecord>> {
        let rows: Vec<(i64, String, String, Option<String>, i64)> = sqlx::query_as(
            "SELECT seq, type, object_id, detail, at FROM events WHERE workspace_id = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3",
        )
        .bind(ws.as_str())
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(self.read_pool())
        .await
        .map_err(db_error)?;
        rows.into_iter()
            .map(|(seq, kind, object_id, detail, at)| {
                Ok(EventRecord {
                    workspace_id: ws.clone(),
                    seq: seq.max(0) as u64,
                    kind,
                    object_id,
                    detail,
                    at: from_millis(at)?,
                })
            })
            .collect()
    }

    async fn newest_event(&self, ws: &WorkspaceId) -> Result<u64> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT event_seq FROM workspaces WHERE id = $1")
            .bind(ws.as_str())
            .fetch_optional(self.read_pool())
            .await
            .map_err(db_error)?;
        seq.map(|seq| seq.max(0) as u64).ok_or_else(|| cabinet_core::Error::NotFound("workspace"))
    }

    async fn prune_events(&self, before: DateTime<Utc>) -> Result<u64> {
        // Each workspace's events go from its oldest up to the first still inside the retention
        // (they are numbered in the order they were written; a clock stepped back only keeps one
        // a while longer), and never one an enabled webhook endpoint has not yet acknowledged,
        // however old: the endpoint's delivery reads it from here. Every statement is a walk of
        // the events' primary key, from the oldest: no index of their times to keep up.
        let cutoff = millis(before);
        let due: Vec<String> = sqlx::query_scalar(
            "SELECT w.id FROM workspaces w \
             WHERE (SELECT e.at FROM events e WHERE e.workspace_id = w.id ORDER BY e.seq LIMIT 1) < $1",
        )
        .bind(cutoff)
        .fetch_all(self.read_pool())
        .await
        .map_err(db_error)?;
        let mut pruned = 0;
        for workspace in due {
            let done = sqlx::query(
                "DELETE FROM events WHERE workspace_id = $1 \
                 AND seq < COALESCE((SELECT e.seq FROM events e WHERE e.workspace_id = $1 AND e.at >= $2 \
                                     ORDER BY e.seq LIMIT 1), 9223372036854775807) \
                 AND seq <= COALESCE((SELECT MIN(h.delivered_seq) FROM webhooks h \
                                      WHERE h.workspace_id = $1 AND h.enabled), 9223372036854775807)",
            )
            .bind(&workspace)
            .bind(cutoff)
            .execute(self.write_pool())
            .await
            .map_err(db_error)?;
            pruned += D::rows_affected(&done);
        }
        // The delivery log goes with the retention too.
        sqlx::query("DELETE FROM webhook_deliveries WHERE at < $1")
            .bind(cutoff)
            .execute(self.write_pool())
            .await
            .map_err(db_error)?;
        Ok(pruned)
    }
}
