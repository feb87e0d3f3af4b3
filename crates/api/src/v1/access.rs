//! End-user tokens and access rules: `POST /v1/tokens`, `GET|PUT …/access-rules` on files, folders
//! and the workspace, the public URLs of files whose read rule is `public`, and the revocation of
//! a workspace's permalinks.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use cabinet_core::links::Caching;
use cabinet_core::rules::{AccessRules, Audience, RuleTarget, RuleView};
use cabinet_core::{FileId, FolderId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Authenticated;
use crate::download::serve_file;
use crate::error::{ApiResult, ErrorBody, Json, Path};
use crate::schemas;
use crate::AppState;

/// A token request for one of the app's users.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The app's id for the user.
    #[schema(schema_with = crate::input_schema::reference_part)]
    pub sub: String,
    /// Lifetime in seconds, 1 to 86400; default 3600.
    #[schema(minimum = 1, maximum = 86400)]
    pub ttl: Option<u64>,
}

/// An end-user token: send it as `Authorization: Bearer <token>`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenJson {
    pub token: String,
    pub sub: String,
    pub expires_at: DateTime<Utc>,
}

/// Mint a short-lived token for one of the app's users (admin key only).
#[utoipa::path(
    post, path = "/v1/tokens", tag = "access",
    request_body = TokenRequest,
    responses(
        (status = 201, body = TokenJson),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create_token(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Json(request): Json<TokenRequest>,
) -> ApiResult<(StatusCode, Json<TokenJson>)> {
    let (token, expires_at) = state.cabinet.mint_end_user_token(&caller, &request.sub, request.ttl)?;
    Ok((StatusCode::CREATED, Json(TokenJson { token, sub: request.sub.trim().to_owned(), expires_at })))
}

/// Which end-user tokens to end.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct TokenRevocation {
    /// Only this user's tokens; without it, every end-user token of the workspace.
    #[schema(example = "user_42")]
    pub sub: Option<String>,
}

/// When the revocation took effect: tokens minted up to then are refused.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenRevocationJson {
    pub sub: Option<String>,
    pub revoked_up_to: DateTime<Utc>,
}

/// End end-user tokens at once (admin key only): one user's (`sub`), or every token of the
/// workspace. Tokens minted afterwards work. Revoking the API key that minted tokens ends them too.
#[utoipa::path(
    post, path = "/v1/tokens/revoke", tag = "access",
    request_body = TokenRevocation,
    responses(
        (status = 200, body = TokenRevocationJson),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn revoke_tokens(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Json(request): Json<TokenRevocation>,
) -> ApiResult<Json<TokenRevocationJson>> {
    let sub = request.sub.as_deref().map(str::trim);
    let revoked_up_to = state.cabinet.revoke_end_user_tokens(&caller, sub).await?;
    Ok(Json(TokenRevocationJson { sub: sub.map(str::to_owned), revoked_up_to }))
}

/// The workspace's links after a revocation.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkRevocationJson {
    /// The link generation now current: permalinks made before name an older one.
    pub link_generation: u64,
}

/// End every permalink of the workspace at once (admin key only): those handed out as
/// `download-url?lasting=true` and the stored URLs of the dialects (Mavera `url`, CMS
/// `file_url`). Links asked for afterwards work. Expiring URLs end with their expiry; public
/// URLs end when the file's read rule closes.
#[utoipa::path(
    post, path = "/v1/links/revoke", tag = "access",
    responses(
        (status = 200, body = LinkRevocationJson),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn revoke_links(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> ApiResult<Json<LinkRevocationJson>> {
    let link_generation = state.cabinet.revoke_links(&caller).await?;
    Ok(Json(LinkRevocationJson { link_generation }))
}

/// Rules for `create`, `read` and `delete`: `public`, `authenticated`, `creator` or `admin`;
/// null inherits (file → folders → workspace → `admin`).
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct RulesJson {
    #[schema(value_type = Option<schemas::Audience>)]
    pub create: Option<Audience>,
    #[schema(value_type = Option<schemas::Audience>)]
    pub read: Option<Audience>,
    #[schema(value_type = Option<schemas::Audience>)]
    pub delete: Option<Audience>,
    /// Record the uploading end user as creator (default true).
    pub track_creator: Option<bool>,
}

/// The rules set here and those in effect after inheritance.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessRulesJson {
    pub rules: RulesJson,
    pub effective: EffectiveJson,
}

/// Rules in effect.
#[derive(Debug, Serialize, ToSchema)]
pub struct EffectiveJson {
    #[schema(value_type = schemas::Audience)]
    pub create: Audience,
    #[schema(value_type = schemas::Audience)]
    pub read: Audience,
    #[schema(value_type = schemas::Audience)]
    pub delete: Audience,
    pub track_creator: bool,
}

impl From<RuleView> for AccessRulesJson {
    fn from(view: RuleView) -> Self {
        Self {
            rules: RulesJson {
                create: view.own.create,
                read: view.own.read,
                delete: view.own.delete,
                track_creator: view.own.track_creator,
            },
            effective: EffectiveJson {
                create: view.effective.create,
                read: view.effective.read,
                delete: view.effective.delete,
                track_creator: view.effective.track_creator,
            },
        }
    }
}

fn rules_of(json: RulesJson) -> AccessRules {
    AccessRules {
        create: json.create,
        read: json.read,
        delete: json.delete,
        track_creator: json.track_creator,
    }
}

/// The workspace's default rules.
#[utoipa::path(
    get, path = "/v1/access-rules", tag = "access",
    responses((status = 200, body = AccessRulesJson), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_workspace_rules(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> ApiResult<Json<AccessRulesJson>> {
    Ok(Json(state.cabinet.access_rules(&caller, &RuleTarget::Workspace).await?.into()))
}

/// Set the workspace's default rules (admin key only).
#[utoipa::path(
    put, path = "/v1/access-rules", tag = "access",
    request_body = RulesJson,
    responses((status = 200, body = AccessRulesJson), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn put_workspace_rules(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Json(rules): Json<RulesJson>,
) -> ApiResult<Json<AccessRulesJson>> {
    Ok(Json(state.cabinet.set_access_rules(&caller, &RuleTarget::Workspace, rules_of(rules)).await?.into()))
}

/// A file's rules.
#[utoipa::path(
    get, path = "/v1/files/{id}/access-rules", tag = "access",
    params(("id" = schemas::FileId, Path, description = "File id")),
    responses((status = 200, body = AccessRulesJson), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_file_rules(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<AccessRulesJson>> {
    let target = RuleTarget::File(FileId::parse(&id)?);
    Ok(Json(state.cabinet.access_rules(&caller, &target).await?.into()))
}

/// Set a file's rules (admin key only).
#[utoipa::path(
    put, path = "/v1/files/{id}/access-rules", tag = "access",
    params(("id" = schemas::FileId, Path, description = "File id")),
    request_body = RulesJson,
    responses((status = 200, body = AccessRulesJson), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn put_file_rules(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    Json(rules): Json<RulesJson>,
) -> ApiResult<Json<AccessRulesJson>> {
    let target = RuleTarget::File(FileId::parse(&id)?);
    Ok(Json(state.cabinet.set_access_rules(&caller, &target, rules_of(rules)).await?.into()))
}

/// A folder's rules (inherited by what it holds).
#[utoipa::path(
    get, path = "/v1/folders/{id}/access-rules", tag = "access",
    params(("id" = schemas::FolderId, Path, description = "Folder id")),
    responses((status = 200, body = AccessRulesJson), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_folder_rules(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<AccessRulesJson>> {
    let target = RuleTarget::Folder(FolderId::parse(&id)?);
    Ok(Json(state.cabinet.access_rules(&caller, &target).await?.into()))
}

/// Set a folder's rules (admin key only).
#[utoipa::path(
    put, path = "/v1/folders/{id}/access-rules", tag = "access",
    params(("id" = schemas::FolderId, Path, description = "Folder id")),
    request_body = RulesJson,
    responses((status = 200, body = AccessRulesJson), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn put_folder_rules(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    Json(rules): Json<RulesJson>,
) -> ApiResult<Json<AccessRulesJson>> {
    let target = RuleTarget::Folder(FolderId::parse(&id)?);
    Ok(Json(state.cabinet.set_access_rules(&caller, &target, rules_of(rules)).await?.into()))
}

/// The public URL of a file whose read rule is `public`, without a version: no credentials,
/// revalidated each time. The file JSON's `public_url` is the versioned, cacheable one.
#[utoipa::path(
    get, path = "/public/v1/files/{workspace_id}/{file_id}", tag = "access",
    params(("workspace_id" = String, Path), ("file_id" = String, Path)),
    responses(
        (status = 200, description = "The file", content_type = "*/*", body = Vec<u8>),
        (status = 206, description = "The requested range", content_type = "*/*", body = Vec<u8>),
        (status = 304, description = "Not modified"),
        (status = 404, description = "No such file, or it is not public", body = ErrorBody),
        (status = 416, description = "Range not satisfiable"),
    )
)]
pub async fn public_file(
    State(state): State<AppState>,
    Path((workspace, file)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
) -> ApiResult<Response<Body>> {
    let file = state.cabinet.public_file(&workspace, &file).await?;
    serve_file(&state.cabinet, &file, &headers, false, method == Method::HEAD, Caching::PublicRevalidated)
        .await
}

/// A file whose read rule is `public`, at the content version its URL names (the file JSON's
/// `public_url`): no credentials, cacheable by anyone for a year (`immutable`), since those bytes
/// never change. 404 once the file is trashed or deleted, its rule closes, or the version is not
/// the file's.
#[utoipa::path(
    get, path = "/public/v1/files/{workspace_id}/{file_id}/{version}", tag = "access",
    params(
        ("workspace_id" = String, Path),
        ("file_id" = String, Path),
        ("version" = String, Path, description = "The first 16 hex digits of the file's sha256"),
    ),
    responses(
        (status = 200, description = "The file", content_type = "*/*", body = Vec<u8>),
        (status = 206, description = "The requested range", content_type = "*/*", body = Vec<u8>),
        (status = 304, description = "Not modified"),
        (status = 404, description = "No such file or version, or it is not public", body = ErrorBody),
        (status = 416, description = "Range not satisfiable"),
    )
)]
pub async fn public_file_version(
    State(state): State<AppState>,
    Path((workspace, file, version)): Path<(String, String, String)>,
    method: Method,
    headers: HeaderMap,
) -> ApiResult<Response<Body>> {
    let file = state.cabinet.public_file_at_version(&workspace, &file, &version).await?;
    serve_file(&state.cabinet, &file, &headers, false, method == Method::HEAD, Caching::PublicImmutable).await
}
