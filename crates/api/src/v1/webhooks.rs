//! `/v1/webhooks`: a workspace's receivers of its events (`cabinet_core::webhooks`) — create
//! (the secret shown once), list, details, change, delete, secret rotation, the delivery log and
//! replay. Needs a key with the admin role.

use axum::extract::State;
use axum::http::StatusCode;
use cabinet_core::webhooks::{Delivery, Webhook, WebhookInput, WebhookInputChange, MAX_DELIVERIES_PER_READ};
use cabinet_core::{DeliveryId, WebhookId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Authenticated;
use crate::error::{ApiResult, ErrorBody, Json, Path, Query};
use crate::schemas;
use crate::AppState;

/// A receiver of the workspace's events.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookJson {
    #[schema(value_type = schemas::WebhookId)]
    pub id: WebhookId,
    /// Where deliveries are POSTed.
    pub url: String,
    /// The event types it receives: a type (`file.created`), a prefix (`file.*`) or `*`.
    pub event_types: Vec<String>,
    pub enabled: bool,
    /// Why deliveries stopped: `retries_exhausted` when the receiver failed for the whole retry
    /// period; null when enabled, or disabled by a key.
    pub disabled_reason: Option<String>,
    /// The `seq` of the last event the receiver acknowledged (or that its filter passed over);
    /// deliveries continue after it.
    pub delivered_seq: u64,
    /// Failed attempts at the next event since the last success.
    pub failed_attempts: u32,
    /// When the next event is tried again, while the receiver is failing.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Until when the secret replaced by the last rotation still signs alongside the new one.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Webhook> for WebhookJson {
    fn from(hook: Webhook) -> Self {
        let failing = hook.failed_attempts > 0;
        WebhookJson {
            id: hook.id,
            url: hook.url,
            event_types: hook.event_types,
            enabled: hook.enabled,
            disabled_reason: hook.disabled_reason,
            delivered_seq: hook.delivered_seq,
            failed_attempts: hook.failed_attempts,
            next_attempt_at: (failing && hook.enabled).then_some(hook.next_attempt_at),
            previous_secret_expires_at: hook.previous_secret_until.filter(|until| *until > Utc::now()),
            created_at: hook.created_at,
            updated_at: hook.updated_at,
        }
    }
}

/// An endpoint with its secret: the answer of create and rotate-secret, the only time the secret
/// is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookWithSecretJson {
    #[serde(flatten)]
    pub webhook: WebhookJson,
    /// `whsec_` and the key in base64: deliveries are signed with it as Standard Webhooks
    /// specifies (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
    pub secret: String,
}

/// The workspace's endpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookListJson {
    pub data: Vec<WebhookJson>,
}

/// A new endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// An http or https URL on a public address (unless the server allows private ones).
    #[schema(schema_with = crate::input_schema::webhook_url)]
    pub url: String,
    /// Types (`file.created`), prefixes (`file.*`) or `*` (the default): 1 to 32.
    #[schema(schema_with = crate::input_schema::webhook_event_types_or_null)]
    pub event_types: Option<Vec<String>>,
    /// Default true.
    pub enabled: Option<bool>,
}

/// What to change; fields left out stay as they are. Enabling a disabled endpoint resumes after
/// its last acknowledged event.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhookRequest {
    #[schema(schema_with = crate::input_schema::webhook_url_or_null)]
    pub url: Option<String>,
    #[schema(schema_with = crate::input_schema::webhook_event_types_or_null)]
    pub event_types: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

/// Where a replay starts.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// Deliver again every event numbered after this `seq` (those the feed still keeps), in order.
    #[schema(minimum = 0, maximum = 9_007_199_254_740_991_u64)]
    pub after: u64,
}

/// One attempt to deliver one event.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryJson {
    #[schema(value_type = schemas::DeliveryId)]
    pub id: DeliveryId,
    /// The event's id (`{workspace_id}.{seq}`, also the `webhook-id` header) and number.
    pub event_id: String,
    pub seq: u64,
    /// 1 for the first attempt at the event, 2 for the first retry, …
    pub attempt: u32,
    pub created_at: DateTime<Utc>,
    /// The receiver's status, when it answered.
    pub status: Option<u16>,
    /// Why the attempt failed (no answer, or a status that is not 2xx); null when it succeeded.
    pub error: Option<String>,
    pub duration_ms: u64,
}

impl From<Delivery> for DeliveryJson {
    fn from(delivery: Delivery) -> Self {
        DeliveryJson {
            event_id: format!("{}.{}", delivery.workspace_id, delivery.seq),
            id: delivery.id,
            seq: delivery.seq,
            attempt: delivery.attempt,
            created_at: delivery.at,
            status: delivery.status,
            error: delivery.error,
            duration_ms: delivery.duration_ms,
        }
    }
}

/// A page of the delivery log, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryListJson {
    pub data: Vec<DeliveryJson>,
    /// Pass as `before` for the next (older) page; null on the last.
    pub next_before: Option<String>,
}

/// Which page of the log.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryParams {
    /// Attempts older than this delivery id.
    #[param(value_type = Option<schemas::DeliveryId>)]
    pub before: Option<String>,
    /// At most this many (default 50, at most 100).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// Adds a receiver; the answer carries the signing secret, shown this once. Deliveries start
/// with the next event.
#[utoipa::path(
    post, path = "/v1/webhooks", tag = "webhooks",
    request_body = CreateWebhookRequest,
    responses(
        (status = 201, body = WebhookWithSecretJson),
        (status = 400, description = "Not an http(s) URL, a non-public receiver, or a bad filter", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 409, description = "The workspace has 20 webhooks already", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create_webhook(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Json(request): Json<CreateWebhookRequest>,
) -> ApiResult<(StatusCode, Json<WebhookWithSecretJson>)> {
    let input = WebhookInput { url: request.url, event_types: request.event_types, enabled: request.enabled };
    let created = state.cabinet.create_webhook(&caller, input).await?;
    Ok((
        StatusCode::CREATED,
        Json(WebhookWithSecretJson { webhook: created.webhook.into(), secret: created.secret }),
    ))
}

/// The workspace's receivers, oldest first.
#[utoipa::path(
    get, path = "/v1/webhooks", tag = "webhooks",
    responses(
        (status = 200, body = WebhookListJson),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list_webhooks(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> ApiResult<Json<WebhookListJson>> {
    let hooks = state.cabinet.list_webhooks(&caller).await?;
    Ok(Json(WebhookListJson { data: hooks.into_iter().map(WebhookJson::from).collect() }))
}

/// One receiver.
#[utoipa::path(
    get, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = schemas::WebhookId, Path, description = "Webhook id")),
    responses(
        (status = 200, body = WebhookJson),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_webhook(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookJson>> {
    Ok(Json(state.cabinet.get_webhook(&caller, &WebhookId::parse(&id)?).await?.into()))
}

/// Changes a receiver's URL, filter or state.
#[utoipa::path(
    patch, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = schemas::WebhookId, Path, description = "Webhook id")),
    request_body = UpdateWebhookRequest,
    responses(
        (status = 200, body = WebhookJson),
        (status = 400, description = "Not an http(s) URL, a non-public receiver, or a bad filter", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn update_webhook(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    Json(request): Json<UpdateWebhookRequest>,
) -> ApiResult<Json<WebhookJson>> {
    let id = WebhookId::parse(&id)?;
    let change =
        WebhookInputChange { url: request.url, event_types: request.event_types, enabled: request.enabled };
    Ok(Json(state.cabinet.update_webhook(&caller, &id, change).await?.into()))
}

/// Removes a receiver and its delivery log.
#[utoipa::path(
    delete, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = schemas::WebhookId, Path, description = "Webhook id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn delete_webhook(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.cabinet.delete_webhook(&caller, &WebhookId::parse(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Gives the receiver a new secret, shown this once; for 24 hours deliveries carry a signature
/// by the old secret too (`webhook-signature` lists both), so the receiver can switch without
/// refusing one.
#[utoipa::path(
    post, path = "/v1/webhooks/{id}/rotate-secret", tag = "webhooks",
    params(("id" = schemas::WebhookId, Path, description = "Webhook id")),
    responses(
        (status = 200, body = WebhookWithSecretJson),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn rotate_secret(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookWithSecretJson>> {
    let rotated = state.cabinet.rotate_webhook_secret(&caller, &WebhookId::parse(&id)?).await?;
    Ok(Json(WebhookWithSecretJson { webhook: rotated.webhook.into(), secret: rotated.secret }))
}

/// Delivers again, in order, every event after `after` that the feed still keeps; later events
/// follow as usual.
#[utoipa::path(
    post, path = "/v1/webhooks/{id}/replay", tag = "webhooks",
    params(("id" = schemas::WebhookId, Path, description = "Webhook id")),
    request_body = ReplayRequest,
    responses(
        (status = 200, body = WebhookJson),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn replay(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    Json(request): Json<ReplayRequest>,
) -> ApiResult<Json<WebhookJson>> {
    let id = WebhookId::parse(&id)?;
    Ok(Json(state.cabinet.replay_webhook(&caller, &id, request.after).await?.into()))
}

/// The receiver's delivery attempts, newest first: each with its event, attempt number, time,
/// the receiver's status or the error, and how long it took.
#[utoipa::path(
    get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = schemas::WebhookId, Path, description = "Webhook id"), DeliveryParams),
    responses(
        (status = 200, body = DeliveryListJson),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list_deliveries(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    Query(params): Query<DeliveryParams>,
) -> ApiResult<Json<DeliveryListJson>> {
    let id = WebhookId::parse(&id)?;
    let limit = params.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_DELIVERIES_PER_READ {
        return Err(
            cabinet_core::Error::bad_request(cabinet_core::Code::InvalidLimit, "limit is 1 to 100").into()
        );
    }
    let before = match params.before.as_deref() {
        Some(raw) => Some(DeliveryId::parse(raw).map_err(|_| {
            cabinet_core::Error::bad_request(cabinet_core::Code::InvalidCursor, "before is a delivery id")
        })?),
        None => None,
    };
    let page = state.cabinet.webhook_deliveries(&caller, &id, before.as_ref(), limit).await?;
    let next_before = (page.len() == limit as usize).then(|| page.last().map(|d| d.id.to_string())).flatten();
    Ok(Json(DeliveryListJson { data: page.into_iter().map(DeliveryJson::from).collect(), next_before }))
}
