//! `/v1/events` (a long poll) and `/v1/events/stream` (server-sent events): what changed in the
//! workspace, in the order it committed, each event once per read and none of a change that
//! rolled back (the outbox: `cabinet_core::events`).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use cabinet_core::access::Caller;
use cabinet_core::events::{MAX_EVENTS_PER_READ, MAX_EVENT_WAIT};
use cabinet_core::{Cabinet, EventRecord, FileId, FolderId, UploadId};
use chrono::{DateTime, Utc};
use futures::Stream;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::shapes::{FileJson, FolderJson, UploadJson};
use crate::auth::Authenticated;
use crate::error::{ApiResult, ErrorBody, Json, Query};
use crate::AppState;

/// One change.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventJson {
    /// Unique across workspaces: `{workspace_id}.{seq}`.
    pub id: String,
    /// The event's number in its workspace: each is one more than the one before.
    pub seq: u64,
    /// `file.created`, `file.updated`, `file.moved`, `file.trashed`, `file.restored`,
    /// `file.purged`, the same six for `folder.`, `upload.succeeded`, `upload.failed`,
    /// `reference.added`, `reference.removed`, `key.revoked`, `tokens.revoked`, `quota.crossed`,
    /// `webhook.disabled` (its receiver failed for the whole retry period).
    #[serde(rename = "type")]
    pub kind: String,
    pub workspace_id: String,
    /// The file, folder, upload, key or webhook the event is about (the workspace, for
    /// `tokens.revoked` and `quota.crossed`).
    pub object_id: String,
    /// An upload's failure reason, a reference's `kind/id`, the end user whose tokens were revoked
    /// (null: every end user's), the quota percentage crossed (`80`, `90`, `100`), or why a
    /// webhook was disabled (`retries_exhausted`).
    pub detail: Option<String>,
    /// When the change committed.
    pub created_at: DateTime<Utc>,
    pub data: EventDataJson,
}

/// What the event is about, as the API shows it when the event is read.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventDataJson {
    /// The file (as `GET /v1/files/{id}`), folder or upload as it is now; null once it is gone
    /// (purged) and for key, token and quota events.
    #[schema(value_type = Option<Object>)]
    pub object: Option<Value>,
}

/// A read of the feed.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventListJson {
    pub data: Vec<EventJson>,
    /// Pass as `after` to read on: the last event's `seq`, or `after` again when none came.
    pub next_after: u64,
}

/// Where to read from, and how long to wait.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// Events numbered after this (`seq`); 0, the default, reads from the oldest kept.
    #[param(minimum = 0, maximum = 9_007_199_254_740_991_u64)]
    pub after: Option<u64>,
    /// At most this many (default 100, at most 500).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Seconds to wait for the first event when there is none yet (a long poll; default 0, at
    /// most 60).
    #[param(minimum = 0, maximum = 60)]
    pub wait: Option<u64>,
}

/// The largest `after`: the largest integer a JSON number carries exactly (2^53 - 1).
const MAX_AFTER: u64 = 9_007_199_254_740_991;

/// The workspace's events after `after`, oldest first; with `wait`, holds the request until the
/// first arrives (a long poll). Needs a key with the read role.
#[utoipa::path(
    get, path = "/v1/events", tag = "events",
    params(EventParams),
    responses(
        (status = 200, body = EventListJson),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a key (end-user tokens read files only)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list_events(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(params): Query<EventParams>,
) -> ApiResult<Json<EventListJson>> {
    let limit = params.limit.unwrap_or(100);
    let wait = Duration::from_secs(params.wait.unwrap_or(0));
    let after = params.after.unwrap_or(0);
    if limit == 0 || limit > MAX_EVENTS_PER_READ || wait > MAX_EVENT_WAIT || after > MAX_AFTER {
        return Err(cabinet_core::Error::bad_request(
            cabinet_core::Code::InvalidQuery,
            "after is 0 to 2^53 - 1, limit 1 to 500 and wait 0 to 60 seconds",
        )
        .into());
    }
    let page = state.cabinet.events(&caller, after, limit, wait).await?;
    let mut data = Vec::with_capacity(page.events.len());
    for event in page.events {
        data.push(render(&state.cabinet, &caller, event).await?);
    }
    Ok(Json(EventListJson { data, next_after: page.last }))
}

/// The workspace's events as server-sent events, from `Last-Event-ID` (what a reconnecting
/// `EventSource` sends) or `after`, else from now; each event's `id` is its `seq`, its `event`
/// its type, its `data` the JSON of `GET /v1/events`. Outside the OpenAPI document: a stream
/// that does not end.
pub async fn stream_events(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    Query(params): Query<EventParams>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let resumed =
        headers.get("last-event-id").and_then(|value| value.to_str().ok()?.trim().parse::<u64>().ok());
    let after = match resumed.or(params.after) {
        Some(after) => after,
        None => state.cabinet.newest_event(&caller).await?,
    };
    let cabinet = state.cabinet.clone();
    let stream = futures::stream::unfold((cabinet, caller, after), |(cabinet, caller, after)| async move {
        // Each turn waits for what comes after the last event sent, then sends it.
        let page = cabinet.events(&caller, after, 100, Duration::from_secs(25)).await.ok()?;
        let mut events = Vec::with_capacity(page.events.len());
        for event in page.events {
            let seq = event.seq;
            let json = render(&cabinet, &caller, event).await.ok()?;
            let kind = json.kind.clone();
            let data = serde_json::to_string(&json).ok()?;
            events.push(Ok(Event::default().id(seq.to_string()).event(kind).data(data)));
        }
        Some((futures::stream::iter(events), (cabinet, caller, page.last)))
    });
    use futures::StreamExt;
    Ok(Sse::new(stream.flatten()).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

async fn render(cabinet: &Cabinet, caller: &Caller, event: EventRecord) -> ApiResult<EventJson> {
    let gone = |kind: &str| kind.ends_with(".purged");
    let object = match event.kind.split('.').next() {
        Some("file") | Some("reference") if !gone(&event.kind) => match FileId::parse(&event.object_id) {
            Ok(id) => match cabinet.get_file(caller, &id).await {
                Ok(file) => {
                    Some(serde_json::to_value(FileJson::of(file, cabinet).await?).unwrap_or(Value::Null))
                }
                Err(_) => None,
            },
            Err(_) => None,
        },
        Some("folder") if !gone(&event.kind) => match FolderId::parse(&event.object_id) {
            Ok(id) => cabinet
                .get_folder(caller, &id)
                .await
                .ok()
                .and_then(|details| serde_json::to_value(FolderJson::from(details.folder)).ok()),
            Err(_) => None,
        },
        Some("upload") => match UploadId::parse(&event.object_id) {
            Ok(id) => match cabinet.get_upload(caller, &id).await {
                Ok(upload) => serde_json::to_value(UploadJson::new(upload, cabinet).await?).ok(),
                Err(_) => None,
            },
            Err(_) => None,
        },
        _ => None,
    };
    Ok(EventJson {
        id: format!("{}.{}", event.workspace_id, event.seq),
        seq: event.seq,
        kind: event.kind,
        workspace_id: event.workspace_id.to_string(),
        object_id: event.object_id,
        detail: event.detail,
        created_at: event.at,
        data: EventDataJson { object },
    })
}

/// The body of a webhook delivery: the event exactly as `GET /v1/events` shows it, its object
/// read as an admin key of the workspace would.
pub struct WebhookBodies;

#[async_trait::async_trait]
impl cabinet_core::webhooks::EventBodies for WebhookBodies {
    async fn body(&self, cabinet: &Cabinet, event: &EventRecord) -> cabinet_core::Result<Vec<u8>> {
        let caller = Caller {
            workspace_id: event.workspace_id.clone(),
            actor: cabinet_core::access::Actor::Key {
                id: cabinet_core::ApiKeyId::parse(DELIVERY_READER)?,
                role: cabinet_core::Role::Admin,
            },
        };
        let json = render(cabinet, &caller, event.clone()).await.map_err(|err| err.0)?;
        serde_json::to_vec(&json).map_err(cabinet_core::Error::internal)
    }
}

/// The key id deliveries read their objects as: no stored key has it (ids are random ULIDs).
const DELIVERY_READER: &str = "key_00000000000000000000000000";
