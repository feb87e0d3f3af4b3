//! Webhook endpoints, their cursors and leases, and their delivery logs (migration 0020). A lease
//! is taken by one conditional UPDATE that re-checks the lease in its WHERE, so of two nodes that
//! race for an endpoint exactly one gets it; a cursor moves by compare-and-set, so a node that
//! lost its lease, or an endpoint replayed meanwhile, changes nothing.

use cabinet_core::webhooks::{Delivery, NewWebhook, Webhook, WebhookChange};
use cabinet_core::{DeliveryId, Error, Result, WebhookId, WorkspaceId};
use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, Type};

use crate::dialect::{Dialect, SqlStore, Value};
use crate::errors::db_error;
use crate::rows::{from_millis, millis};

const COLUMNS: &str = "id, workspace_id, url, event_types, enabled, disabled_reason, secret, previous_secret, \
     previous_secret_until, delivered_seq, failed_attempts, failing_since, next_attempt_at, created_at, updated_at";

#[derive(sqlx_macros::FromRow)]
struct WebhookRow {
    id: String,
    workspace_id: String,
    url: String,
    event_types: String,
    enabled: bool,
    disabled_reason: Option<String>,
    secret: String,
    previous_secret: Option<String>,
    previous_secret_until: Option<i64>,
    delivered_seq: i64,
    failed_attempts: i64,
    failing_since: Option<i64>,
    next_attempt_at: i64,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<WebhookRow> for Webhook {
    type Error = Error;

    fn try_from(row: WebhookRow) -> Result<Self> {
        Ok(Webhook {
            id: row.id.parse()?,
            workspace_id: row.workspace_id.parse()?,
            url: row.url,
            event_types: row.event_types.split(' ').filter(|t| !t.is_empty()).map(str::to_owned).collect(),
            enabled: row.enabled,
            disabled_reason: row.disabled_reason,
            secret: row.secret,
            previous_secret: row.previous_secret,
            previous_secret_until: row.previous_secret_until.map(from_millis).transpose()?,
            delivered_seq: row.delivered_seq.max(0) as u64,
            failed_attempts: u32::try_from(row.failed_attempts.max(0)).unwrap_or(u32::MAX),
            failing_since: row.failing_since.map(from_millis).transpose()?,
            next_attempt_at: from_millis(row.next_attempt_at)?,
            created_at: from_millis(row.created_at)?,
            updated_at: from_millis(row.updated_at)?,
        })
    }
}

#[derive(sqlx_macros::FromRow)]
struct DeliveryRow {
    id: String,
    webhook_id: String,
    workspace_id: String,
    seq: i64,
    attempt: i64,
    at: i64,
    status: Option<i64>,
    error: Option<String>,
    duration_ms: i64,
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = Error;

    fn try_from(row: DeliveryRow) -> Result<Self> {
        Ok(Delivery {
            id: row.id.parse()?,
            webhook_id: row.webhook_id.parse()?,
            workspace_id: row.workspace_id.parse()?,
            seq: row.seq.max(0) as u64,
            attempt: u32::try_from(row.attempt.max(0)).unwrap_or(u32::MAX),
            at: from_millis(row.at)?,
            status: row.status.and_then(|status| u16::try_from(status).ok()),
            error: row.error,
            duration_ms: row.duration_ms.max(0) as u64,
        })
    }
}

/// A lease that a change or replay ended keeps its time but not its holder: the holder's renewals
/// and cursor writes fail, so it stops, and no other node claims the endpoint before the holder
/// gives it back (or the time runs out), so two nodes never send to it at once.
const ENDED_PREFIX: &str = "ended:";
const ENDED_LEASE: &str =
    "CASE WHEN lease_owner IS NULL OR lease_owner LIKE 'ended:%' THEN lease_owner ELSE 'ended:' || lease_owner END";

fn seq(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait::async_trait]
impl<D: Dialect> cabinet_core::WebhookStore for SqlStore<D>
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
    async fn create_webhook(&self, hook: &NewWebhook) -> Result<Webhook> {
        let row: Option<WebhookRow> = sqlx::query_as(&format!(
            "INSERT INTO webhooks (id, workspace_id, url, event_types, enabled, secret, delivered_seq, \
               failed_attempts, next_attempt_at, created_at, updated_at) \
             SELECT $1, id, $2, $3, $4, $5, event_seq, 0, $6, $6, $6 FROM workspaces WHERE id = $7 \
             RETURNING {COLUMNS}"
        ))
        .bind(hook.id.as_str())
        .bind(hook.url.as_str())
        .bind(hook.event_types.join(" "))
        .bind(hook.enabled)
        .bind(hook.secret.as_str())
        .bind(millis(hook.at))
        .bind(hook.workspace_id.as_str())
        .fetch_optional(self.write_pool())
        .await
        .map_err(db_error)?;
        row.ok_or(Error::NotFound("workspace"))?.try_into()
    }

    async fn list_webhooks(&self, ws: &WorkspaceId) -> Result<Vec<Webhook>> {
        let rows: Vec<WebhookRow> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM webhooks WHERE workspace_id = $1 ORDER BY id"))
                .bind(ws.as_str())
                .fetch_all(self.read_pool())
                .await
                .map_err(db_error)?;
        rows.into_iter().map(Webhook::try_from).collect()
    }

    async fn get_webhook(&self, ws: &WorkspaceId, id: &WebhookId) -> Result<Webhook> {
        let row: Option<WebhookRow> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM webhooks WHERE workspace_id = $1 AND id = $2"))
                .bind(ws.as_str())
                .bind(id.as_str())
                .fetch_optional(self.write_pool())
                .await
                .map_err(db_error)?;
        row.ok_or(Error::NotFound("webhook"))?.try_into()
    }

    async fn update_webhook(
        &self,
        ws: &WorkspaceId,
        id: &WebhookId,
        change: &WebhookChange,
        at: DateTime<Utc>,
    ) -> Result<Webhook> {
        // Enabling an endpoint that was disabled forgets its failures and makes it due now. The
        // lease ends, so the node sending to the endpoint stops at its next cursor write rather
        // than sending to the old URL or by the old filter until it goes idle.
        let row: Option<WebhookRow> = sqlx::query_as(&format!(
            "UPDATE webhooks SET url = COALESCE($1, url), event_types = COALESCE($2, event_types), \
               lease_owner = {ENDED_LEASE}, \
               failed_attempts = CASE WHEN $3 AND NOT enabled THEN 0 ELSE failed_attempts END, \
               failing_since = CASE WHEN $3 AND NOT enabled THEN NULL ELSE failing_since END, \
               next_attempt_at = CASE WHEN $3 AND NOT enabled THEN $4 ELSE next_attempt_at END, \
               disabled_reason = CASE WHEN $5 IS NULL THEN disabled_reason ELSE NULL END, \
               enabled = COALESCE($5, enabled), updated_at = $4 \
             WHERE workspace_id = $6 AND id = $7 RETURNING {COLUMNS}"
        ))
        .bind(change.url.as_deref())
        .bind(change.event_types.as_ref().map(|types| types.join(" ")))
        .bind(change.enabled == Some(true))
        .bind(millis(at))
        .bind(change.enabled)
        .bind(ws.as_str())
        .bind(id.as_str())
        .fetch_optional(self.write_pool())
        .await
        .map_err(db_error)?;
        row.ok_or(Error::NotFound("webhook"))?.try_into()
    }

    async fn delete_webhook(&self, ws: &WorkspaceId, id: &WebhookId) -> Result<()> {
        let mut tx = self.write_pool().begin().await.map_err(db_error)?;
        let done = sqlx::query("DELETE FROM webhooks WHERE workspace_id = $1 AND id = $2")
            .bind(ws.as_str())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        if D::rows_affected(&done) == 0 {
            return Err(Error::NotFound("webhook"));
        }
        sqlx::query("DELETE FROM webhook_deliveries WHERE webhook_id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    async fn rotate_webhook_secret(
        &self,
        ws: &WorkspaceId,
        id: &WebhookId,
        secret: &str,
        previous_until: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<Webhook> {
        let row: Option<WebhookRow> = sqlx::query_as(&format!(
            "UPDATE webhooks SET previous_secret = secret, previous_secret_until = $1, secret = $2, \
               updated_at = $3 WHERE workspace_id = $4 AND id = $5 RETURNING {COLUMNS}"
        ))
        .bind(millis(previous_until))
        .bind(secret)
        .bind(millis(at))
        .bind(ws.as_str())
        .bind(id.as_str())
        .fetch_optional(self.write_pool())
        .await
        .map_err(db_error)?;
        row.ok_or(Error::NotFound("webhook"))?.try_into()
    }

    async fn rewind_webhook(
        &self,
        ws: &WorkspaceId,
        id: &WebhookId,
        after: u64,
        at: DateTime<Utc>,
    ) -> Result<Webhook> {
        // The lease ends too: the node holding it may have sent past `after` without storing
        // its cursor yet, and would otherwise store it over the rewind (its compare-and-set
        // would still match when the stored cursor was already at `after`).
        let row: Option<WebhookRow> = sqlx::query_as(&format!(
            "UPDATE webhooks SET delivered_seq = CASE WHEN $1 < delivered_seq THEN $1 ELSE delivered_seq END, \
               failed_attempts = 0, failing_since = NULL, next_attempt_at = $2, updated_at = $2, \
               lease_owner = {ENDED_LEASE} \
             WHERE workspace_id = $3 AND id = $4 RETURNING {COLUMNS}"
        ))
        .bind(seq(after))
        .bind(millis(at))
        .bind(ws.as_str())
        .bind(id.as_str())
        .fetch_optional(self.write_pool())
        .await
        .map_err(db_error)?;
        row.ok_or(Error::NotFound("webhook"))?.try_into()
    }

    async fn webhook_deliveries(
        &self,
        ws: &WorkspaceId,
        id: &WebhookId,
        before: Option<&DeliveryId>,
        limit: u32,
    ) -> Result<Vec<Delivery>> {
        let rows: Vec<DeliveryRow> = sqlx::query_as(
            "SELECT id, webhook_id, workspace_id, seq, attempt, at, status, error, duration_ms \
             FROM webhook_deliveries WHERE webhook_id = $1 AND workspace_id = $2 AND id < $3 \
             ORDER BY id DESC LIMIT $4",
        )
        .bind(id.as_str())
        .bind(ws.as_str())
        // Every delivery id sorts below `whd_` followed by a character past the ULID alphabet.
        .bind(before.map_or("whd_~", DeliveryId::as_str))
        .bind(i64::from(limit))
        .fetch_all(self.read_pool())
        .await
        .map_err(db_error)?;
        rows.into_iter().map(Delivery::try_from).collect()
    }

    async fn due_webhooks(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<WebhookId>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT h.id FROM webhooks h JOIN workspaces w ON w.id = h.workspace_id \
             WHERE h.enabled AND h.next_attempt_at <= $1 AND (h.lease_until IS NULL OR h.lease_until < $1) \
               AND w.event_seq > h.delivered_seq \
             ORDER BY h.next_attempt_at LIMIT $2",
        )
        .bind(millis(now))
        .bind(i64::from(limit))
        .fetch_all(self.read_pool())
        .await
        .map_err(db_error)?;
        rows.into_iter().map(|(id,)| id.parse()).collect()
    }

    async fn claim_webhook(
        &self,
        id: &WebhookId,
        node: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<Webhook>> {
        let row: Option<WebhookRow> = sqlx::query_as(&format!(
            "UPDATE webhooks SET lease_owner = $1, lease_until = $2 \
             WHERE id = $3 AND enabled AND next_attempt_at <= $4 AND (lease_until IS NULL OR lease_until < $4) \
             RETURNING {COLUMNS}"
        ))
        .bind(node)
        .bind(millis(until))
        .bind(id.as_str())
        .bind(millis(now))
        .fetch_optional(self.write_pool())
        .await
        .map_err(db_error)?;
        row.map(Webhook::try_from).transpose()
    }

    async fn advance_webhook(
        &self,
        id: &WebhookId,
        node: &str,
        from: u64,
        to: u64,
        lease_until: DateTime<Utc>,
        deliveries: &[Delivery],
    ) -> Result<bool> {
        let mut tx = self.write_pool().begin().await.map_err(db_error)?;
        let done = sqlx::query(
            "UPDATE webhooks SET delivered_seq = $1, failed_attempts = 0, failing_since = NULL, lease_until = $5 \
             WHERE id = $2 AND lease_owner = $3 AND delivered_seq = $4 AND enabled",
        )
        .bind(seq(to))
        .bind(id.as_str())
        .bind(node)
        .bind(seq(from))
        .bind(millis(lease_until))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let moved = D::rows_affected(&done) == 1;
        // The attempts happened either way: the log keeps them.
        for delivery in deliveries {
            insert_delivery::<D>(&mut tx, delivery).await?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(moved)
    }

    async fn webhook_failed(
        &self,
        id: &WebhookId,
        node: &str,
        delivery: &Delivery,
        next_attempt_at: DateTime<Utc>,
        disable: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.write_pool().begin().await.map_err(db_error)?;
        insert_delivery::<D>(&mut tx, delivery).await?;
        sqlx::query(
            "UPDATE webhooks SET failed_attempts = failed_attempts + 1, \
               failing_since = COALESCE(failing_since, $1), next_attempt_at = $2, \
               enabled = CASE WHEN $3 IS NULL THEN enabled ELSE $4 END, \
               disabled_reason = COALESCE($3, disabled_reason), lease_owner = NULL, lease_until = NULL \
             WHERE id = $5 AND lease_owner = $6",
        )
        .bind(millis(delivery.at))
        .bind(millis(next_attempt_at))
        .bind(disable)
        .bind(false)
        .bind(id.as_str())
        .bind(node)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    async fn renew_webhook(&self, id: &WebhookId, node: &str, until: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query("UPDATE webhooks SET lease_until = $1 WHERE id = $2 AND lease_owner = $3")
            .bind(millis(until))
            .bind(id.as_str())
            .bind(node)
            .execute(self.write_pool())
            .await
            .map_err(db_error)?;
        Ok(D::rows_affected(&done) == 1)
    }

    async fn webhooks_with_plain_secrets(&self, limit: u32) -> Result<Vec<Webhook>> {
        // `_` matches any one character in LIKE: the prefix is compared exactly instead.
        let rows: Vec<WebhookRow> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM webhooks \
             WHERE substr(secret, 1, 6) = 'whsec_' OR substr(previous_secret, 1, 6) = 'whsec_' \
             ORDER BY id LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(self.write_pool())
        .await
        .map_err(db_error)?;
        rows.into_iter().map(Webhook::try_from).collect()
    }

    async fn replace_webhook_secrets(
        &self,
        id: &WebhookId,
        from: (&str, Option<&str>),
        to: (&str, Option<&str>),
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE webhooks SET secret = $1, previous_secret = $2 \
             WHERE id = $3 AND secret = $4 AND (previous_secret = $5 OR (previous_secret IS NULL AND $5 IS NULL))",
        )
        .bind(to.0)
        .bind(to.1)
        .bind(id.as_str())
        .bind(from.0)
        .bind(from.1)
        .execute(self.write_pool())
        .await
        .map_err(db_error)?;
        Ok(D::rows_affected(&done) == 1)
    }

    async fn release_webhook(&self, id: &WebhookId, node: &str) -> Result<()> {
        sqlx::query(
            "UPDATE webhooks SET lease_owner = NULL, lease_until = NULL \
             WHERE id = $1 AND (lease_owner = $2 OR lease_owner = $3)",
        )
        .bind(id.as_str())
        .bind(node)
        .bind(format!("{ENDED_PREFIX}{node}"))
        .execute(self.write_pool())
        .await
        .map_err(db_error)?;
        Ok(())
    }
}

async fn insert_delivery<D: Dialect>(tx: &mut sqlx::Transaction<'_, D::Db>, delivery: &Delivery) -> Result<()>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    for<'q> <D::Db as Database>::Arguments<'q>: IntoArguments<'q, D::Db>,
    for<'q> &'q str: Encode<'q, D::Db> + Type<D::Db>,
    i64: Value<D::Db>,
    Option<i64>: Value<D::Db>,
    for<'q> Option<&'q str>: Encode<'q, D::Db> + Type<D::Db>,
{
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, webhook_id, workspace_id, seq, attempt, at, status, error, duration_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(delivery.id.as_str())
    .bind(delivery.webhook_id.as_str())
    .bind(delivery.workspace_id.as_str())
    .bind(seq(delivery.seq))
    .bind(i64::from(delivery.attempt))
    .bind(millis(delivery.at))
    .bind(delivery.status.map(i64::from))
    .bind(delivery.error.as_deref())
    .bind(i64::try_from(delivery.duration_ms).unwrap_or(i64::MAX))
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}
