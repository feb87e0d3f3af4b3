//! setAccessRules and getAccessRules: who may create, read and delete a file in published apps
//! (`public`, `authenticated`, `creator`, `admin`), and whether uploads track their creator.
//! Keys missing from `accessRules` keep their inherited value (folder, then workspace default,
//! then `admin`); so does an absent `trackCreator` (on unless a folder or the workspace turns it
//! off). The core's access rules decide and enforce; this only translates.

use axum::extract::State;
use axum::Json;
use cabinet_core::rules::{AccessRules, Audience, EffectiveRules, RuleTarget};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{Body, SerenitiesCaller, SerenitiesError, SerenitiesErrorBody, SerenitiesResult};
use super::files::{file_id, FileIdParams};
use crate::AppState;

/// Who may do an operation: `public`, `authenticated`, `creator` or `admin`.
type AudienceName = String;

/// Rules per operation.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
pub struct AccessRulesJson {
    #[schema(example = "authenticated")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create: Option<AudienceName>,
    #[schema(example = "public")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read: Option<AudienceName>,
    #[schema(example = "creator")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete: Option<AudienceName>,
}

/// New rules for a file.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetAccessRulesParams {
    #[schema(example = "file_01jq3v5k2n8x7y6z5w4v3u2t1s")]
    pub file_id: String,
    /// Keys left out keep their inherited value.
    pub access_rules: AccessRulesJson,
    /// Whether to track who uploads each file (absent: inherited, true by default).
    pub track_creator: Option<bool>,
}

/// A file's effective rules.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessRulesResponse {
    pub file_id: String,
    pub access_rules: AccessRulesJson,
    pub track_creator: bool,
}

fn audience(operation: &str, raw: Option<String>) -> SerenitiesResult<Option<Audience>> {
    raw.map(|raw| {
        Audience::parse(&raw).ok_or_else(|| {
            SerenitiesError::bad_request(format!(
                "accessRules.{operation} must be public, authenticated, creator or admin"
            ))
        })
    })
    .transpose()
}

fn render(file_id: String, rules: EffectiveRules) -> AccessRulesResponse {
    AccessRulesResponse {
        file_id,
        access_rules: AccessRulesJson {
            create: Some(rules.create.as_str().to_owned()),
            read: Some(rules.read.as_str().to_owned()),
            delete: Some(rules.delete.as_str().to_owned()),
        },
        track_creator: rules.track_creator,
    }
}

/// Set a file's access rules.
#[utoipa::path(
    post, path = "/compat/serenities/api/v1/files/setAccessRules", tag = "compat-serenities",
    request_body = SetAccessRulesParams,
    responses(
        (status = 200, body = AccessRulesResponse),
        (status = 400, body = SerenitiesErrorBody),
        (status = 401, body = SerenitiesErrorBody),
        (status = 403, body = SerenitiesErrorBody),
        (status = 404, body = SerenitiesErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn set_access_rules(
    State(state): State<AppState>,
    SerenitiesCaller(caller): SerenitiesCaller,
    Body(params): Body<SetAccessRulesParams>,
) -> SerenitiesResult<Json<AccessRulesResponse>> {
    let id = file_id(&params.file_id)?;
    let rules = AccessRules {
        create: audience("create", params.access_rules.create)?,
        read: audience("read", params.access_rules.read)?,
        delete: audience("delete", params.access_rules.delete)?,
        track_creator: params.track_creator,
    };
    let view = state.cabinet.set_access_rules(&caller, &RuleTarget::File(id.clone()), rules).await?;
    Ok(Json(render(id.to_string(), view.effective)))
}

/// A file's effective access rules (its own, else its folder's, else the workspace default).
#[utoipa::path(
    post, path = "/compat/serenities/api/v1/files/getAccessRules", tag = "compat-serenities",
    request_body = FileIdParams,
    responses(
        (status = 200, body = AccessRulesResponse),
        (status = 400, body = SerenitiesErrorBody),
        (status = 401, body = SerenitiesErrorBody),
        (status = 404, body = SerenitiesErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_access_rules(
    State(state): State<AppState>,
    SerenitiesCaller(caller): SerenitiesCaller,
    Body(params): Body<FileIdParams>,
) -> SerenitiesResult<Json<AccessRulesResponse>> {
    let id = file_id(&params.file_id)?;
    let view = state.cabinet.access_rules(&caller, &RuleTarget::File(id.clone())).await?;
    Ok(Json(render(id.to_string(), view.effective)))
}
