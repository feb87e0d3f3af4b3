//! `/v1/audit`: the workspace's audit log, newest first, for its admins (`cabinet_core::audit`).

use axum::extract::State;
use cabinet_core::audit::{AuditQuery, AuditRecord, MAX_AUDIT_PER_READ};
use cabinet_core::{Code, Error};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Authenticated;
use crate::error::{ApiResult, ErrorBody, Json, Query};
use crate::AppState;

/// Who acted.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditActorJson {
    /// `key`, `end_user`, `anonymous` or `admin_cli` (an operator's `cabinet admin` command).
    #[schema(example = "key")]
    pub kind: String,
    /// The key's id, or the end user's `sub`.
    pub id: Option<String>,
}

/// One record: who did what to which object, when, from where, and how it ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditRecordJson {
    /// The record's number: later records have larger ones.
    pub id: u64,
    pub workspace_id: String,
    pub at: DateTime<Utc>,
    pub actor: AuditActorJson,
    /// The method and route (`DELETE /v1/files/{id}`), or the admin command (`admin revoke-key`).
    #[schema(example = "DELETE /v1/files/{id}")]
    pub action: String,
    /// The file, folder, upload or key the request named, if it named one.
    pub object_id: Option<String>,
    /// The client's address as the server resolved it (behind trusted proxies, the client's).
    pub client_address: Option<String>,
    /// The HTTP status answered (an admin command: 200 when it succeeded).
    pub status: u16,
    /// The error's code when it failed (`forbidden`, `quota_exceeded`…).
    pub error_code: Option<String>,
}

impl From<AuditRecord> for AuditRecordJson {
    fn from(stored: AuditRecord) -> Self {
        let record = stored.record;
        AuditRecordJson {
            id: stored.id,
            workspace_id: record.workspace_id.to_string(),
            at: record.at,
            actor: AuditActorJson {
                kind: record.actor.kind().to_owned(),
                id: record.actor.id().map(str::to_owned),
            },
            action: record.action,
            object_id: record.object_id,
            client_address: record.client_address,
            status: record.status,
            error_code: record.error_code,
        }
    }
}

/// A page of the log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditListJson {
    pub data: Vec<AuditRecordJson>,
    /// Pass as `cursor` for the next (older) page; null on the last.
    pub next_cursor: Option<String>,
}

/// Which records.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// A key id, an end user's `sub`, or a kind: `key`, `end_user`, `anonymous`, `admin_cli`.
    #[param(schema_with = crate::input_schema::audit_filter)]
    pub actor: Option<String>,
    /// The action exactly, as records show it (`POST /v1/files`).
    #[param(schema_with = crate::input_schema::audit_filter)]
    pub action: Option<String>,
    /// The object the request named.
    #[param(schema_with = crate::input_schema::audit_filter)]
    pub object_id: Option<String>,
    /// The status class: `2xx`, `3xx`, `4xx` or `5xx`.
    #[param(pattern = "^[2-5]xx$")]
    pub status: Option<String>,
    /// Records at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Records before this time.
    pub to: Option<DateTime<Utc>>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$")]
    pub cursor: Option<String>,
    /// At most this many (default 100, at most 500).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

/// The workspace's audit log, newest first: every change, and every refusal, of a caller that
/// authenticated, on every surface, and the admin CLI's commands. Needs a key with the admin
/// role.
#[utoipa::path(
    get, path = "/v1/audit", tag = "audit",
    params(AuditParams),
    responses(
        (status = 200, body = AuditListJson),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a key with the admin role", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list_audit(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(params): Query<AuditParams>,
) -> ApiResult<Json<AuditListJson>> {
    let limit = params.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_AUDIT_PER_READ {
        return Err(Error::bad_request(Code::InvalidQuery, "limit is 1 to 500").into());
    }
    let status_class = match params.status.as_deref() {
        None => None,
        Some(filter) => Some(
            cabinet_core::audit::status_class(filter)
                .ok_or_else(|| Error::bad_request(Code::InvalidQuery, "status is 2xx, 3xx, 4xx or 5xx"))?,
        ),
    };
    let before = match params.cursor.as_deref() {
        None => None,
        Some(cursor) => {
            Some(cursor.parse::<u64>().ok().filter(|before| *before <= i64::MAX as u64).ok_or_else(|| {
                Error::bad_request(Code::InvalidCursor, "cursor is the next_cursor of a page")
            })?)
        }
    };
    let query = AuditQuery {
        actor: params.actor,
        action: params.action,
        object_id: params.object_id,
        status_class,
        from: params.from,
        to: params.to,
        before,
        limit,
    };
    let records = state.cabinet.audit_log(&caller, &query).await?;
    let next_cursor = (records.len() == limit as usize)
        .then(|| records.last().map(|record| record.id.to_string()))
        .flatten();
    Ok(Json(AuditListJson { data: records.into_iter().map(AuditRecordJson::from).collect(), next_cursor }))
}
