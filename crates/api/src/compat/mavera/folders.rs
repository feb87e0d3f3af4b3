//! Mavera's Folders API: list, create (with `is_shared`, and the `parent_id` extension), get with
//! a page of its files, update, delete (with its contents, their storage reclaimed at once) and
//! favorites.

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use cabinet_core::folders::OnConflict;
use cabinet_core::listing::{encode_cursor, FileFilter, FolderFilter, FolderScope, Paging, Sort};
use cabinet_core::ports::FolderChange;
use cabinet_core::{FileId, FolderId};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::error::{MaveraError, MaveraErrorBody, MaveraResult};
use super::files::{DeleteParams, WorkspaceParam};
use super::shapes::{render_files, render_folder, Deleted, FileList, FolderList, FolderObject};
use super::{caller, Body, Key, Params};
use crate::error::Path;
use crate::AppState;

/// `GET /folders` filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ListFoldersParams {
    #[param(value_type = crate::schemas::WorkspaceId)]
    pub workspace_id: String,
    /// Only folders directly under this one (Cabinet's folders nest); all folders by default.
    #[param(schema_with = crate::input_schema::folder_id_or_empty)]
    pub parent_id: Option<String>,
    pub is_favorite: Option<bool>,
    /// Case-insensitive substring of the name.
    #[param(schema_with = crate::input_schema::no_control)]
    pub search: Option<String>,
    /// 1 to 100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The id of the last folder of the previous page.
    #[param(schema_with = crate::input_schema::folder_id_or_empty)]
    pub cursor: Option<String>,
}

/// List folders, newest first.
#[utoipa::path(
    get, path = "/compat/mavera/api/v1/folders", tag = "compat-mavera",
    params(ListFoldersParams),
    responses((status = 200, body = FolderList), (status = 400, body = MaveraErrorBody), (status = 401, body = MaveraErrorBody), (status = 404, body = MaveraErrorBody)),
    security(("bearer" = []))
)]
pub async fn list_folders(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> MaveraResult<axum::Json<FolderList>> {
    let params = Params::from(query)?;
    let caller = caller(&state, &headers, params.get("workspace_id")).await?;
    params.get("workspace_id").ok_or_else(|| MaveraError::missing("workspace_id"))?;
    let parent = match params.get("parent_id") {
        Some(raw) => FolderScope::In(FolderId::parse(raw)?),
        None => FolderScope::Anywhere,
    };
    let filter = FolderFilter {
        parent,
        name_contains: cabinet_core::listing::name_query(params.get("search")),
        favorite: params.bool("is_favorite")?,
        trashed: false,
    };
    let sort = Sort::NEWEST_FIRST;
    let cursor = match params.get("cursor") {
        Some(raw) => {
            let invalid = || MaveraError::invalid("cursor", "cursor is not a folder of this workspace");
            let id = FolderId::parse(raw).map_err(|_| invalid())?;
            let last = state.cabinet.get_folder(&caller, &id).await.map_err(|_| invalid())?.folder;
            Some(encode_cursor(&last, sort))
        }
        None => None,
    };
    let paging = Paging::parse(Some(params.limit()?), cursor.as_deref(), None, sort)?;
    let page = state.cabinet.list_folders(&caller, filter, sort, paging).await?;
    let has_more = page.next_cursor.is_some();
    let next_cursor = has_more.then(|| page.items.last().map(|folder| folder.id.to_string())).flatten();
    let mut data = Vec::with_capacity(page.items.len());
    for folder in page.items {
        data.push(render_folder(&state, &caller, folder).await?);
    }
    Ok(axum::Json(FolderList { object: "list", data, has_more, next_cursor }))
}

/// `POST /folders`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = MaveraCreateFolderRequest)]
#[allow(dead_code)]
pub struct CreateFolderRequest {
    #[schema(schema_with = crate::input_schema::name)]
    pub name: String,
    #[schema(example = "ws_01jdq4x7m2c8v5n3k9w6r1t0ya")]
    pub workspace_id: String,
    /// Cabinet extension: create it inside this folder.
    #[schema(schema_with = crate::input_schema::folder_id_or_null)]
    pub parent_id: Option<String>,
    /// Shared with every member of the workspace (default false).
    pub is_shared: Option<bool>,
}

/// Create a folder.
#[utoipa::path(
    post, path = "/compat/mavera/api/v1/folders", tag = "compat-mavera",
    request_body = CreateFolderRequest,
    responses((status = 201, body = FolderObject), (status = 400, body = MaveraErrorBody), (status = 401, body = MaveraErrorBody), (status = 404, body = MaveraErrorBody), (status = 409, description = "A sibling has that name", body = MaveraErrorBody)),
    security(("bearer" = []))
)]
pub async fn create_folder(
    State(state): State<AppState>,
    key: Key,
    body: Body,
) -> MaveraResult<(StatusCode, axum::Json<FolderObject>)> {
    let workspace = body.opt_string("workspace_id")?;
    let caller = key.caller(workspace.as_deref())?;
    workspace.ok_or_else(|| MaveraError::missing("workspace_id"))?;
    let name = body.string("name")?;
    let parent = body.folder("parent_id")?.flatten();
    let is_shared = body.opt_bool("is_shared")?.unwrap_or(false);
    let folder = state
        .cabinet
        .create_folder_marked(&caller, &name, parent, OnConflict::Fail, is_shared)
        .await
        .map_err(|e| MaveraError::from(e).about("name"))?;
    Ok((StatusCode::CREATED, axum::Json(render_folder(&state, &caller, folder).await?)))
}

/// `GET /folders/{id}` options.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct GetFolderParams {
    pub workspace_id: Option<String>,
    /// Include a page of the folder's files (default true).
    pub include_files: Option<bool>,
    /// 1 to 100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The id of the last file of the previous page.
    #[param(schema_with = crate::input_schema::file_id_or_empty)]
    pub cursor: Option<String>,
}

/// A folder with a page of its files.
#[utoipa::path(
    get, path = "/compat/mavera/api/v1/folders/{id}", tag = "compat-mavera",
    params(("id" = String, Path, description = "Folder id"), GetFolderParams),
    responses((status = 200, body = FolderObject), (status = 400, body = MaveraErrorBody), (status = 401, body = MaveraErrorBody), (status = 404, body = MaveraErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_folder(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> MaveraResult<axum::Json<FolderObject>> {
    let params = Params::from(query)?;
    let caller = caller(&state, &headers, params.get("workspace_id")).await?;
    let id = FolderId::parse(&id)?;
    let folder = state.cabinet.get_folder(&caller, &id).await?.folder;
    if folder.trashed_at.is_some() {
        return Err(cabinet_core::Error::NotFound("folder").into());
    }
    let mut object = render_folder(&state, &caller, folder).await?;
    if params.bool("include_files")?.unwrap_or(true) {
        let sort = Sort::NEWEST_FIRST;
        let cursor = match params.get("cursor") {
            Some(raw) => {
                let invalid = || MaveraError::invalid("cursor", "cursor is not a file of this folder");
                let last = state
                    .cabinet
                    .get_file(&caller, &FileId::parse(raw).map_err(|_| invalid())?)
                    .await
                    .map_err(|_| invalid())?;
                Some(encode_cursor(&last, sort))
            }
            None => None,
        };
        let paging = Paging::parse(Some(params.limit()?), cursor.as_deref(), None, sort)?;
        let filter = FileFilter { folder: FolderScope::In(id), ..Default::default() };
        let page = state.cabinet.list_files(&caller, filter, sort, paging).await?;
        let has_more = page.next_cursor.is_some();
        let next_cursor = has_more.then(|| page.items.last().map(|file| file.id.to_string())).flatten();
        let data = render_files(&state, &caller, page.items).await?;
        object.files = Some(FileList { object: "list", data, has_more, next_cursor });
    }
    Ok(axum::Json(object))
}

/// `PATCH /folders/{id}`; fields left out stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = MaveraUpdateFolderRequest)]
#[allow(dead_code)]
pub struct UpdateFolderRequest {
    #[schema(schema_with = crate::input_schema::name_or_null)]
    pub name: Option<String>,
    /// Cabinet extension: move under this folder; null moves it to the top.
    #[schema(schema_with = crate::input_schema::folder_id_or_null)]
    pub parent_id: Option<String>,
    /// Mark it shared with every member of the workspace (stored and returned; every key of a
    /// workspace already sees all of it).
    pub is_shared: Option<bool>,
}

/// Rename or move a folder.
#[utoipa::path(
    patch, path = "/compat/mavera/api/v1/folders/{id}", tag = "compat-mavera",
    params(("id" = String, Path, description = "Folder id"), WorkspaceParam),
    request_body = UpdateFolderRequest,
    responses((status = 200, body = FolderObject), (status = 400, body = MaveraErrorBody), (status = 401, body = MaveraErrorBody), (status = 404, body = MaveraErrorBody), (status = 409, body = MaveraErrorBody)),
    security(("bearer" = []))
)]
pub async fn update_folder(
    State(state): State<AppState>,
    key: Key,
    Path(id): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    body: Body,
) -> MaveraResult<axum::Json<FolderObject>> {
    let params = Params::from(query)?;
    let workspace = body.opt_string("workspace_id")?.or(params.get("workspace_id").map(str::to_owned));
    let caller = key.caller(workspace.as_deref())?;
    let change = FolderChange {
        name: body.opt_string("name")?,
        parent: body.folder("parent_id")?,
        is_favorite: None,
        is_shared: body.opt_bool("is_shared")?,
    };
    let folder = state
        .cabinet
        .update_folder(&caller, &FolderId::parse(&id)?, change, OnConflict::Fail)
        .await
        .map_err(|e| MaveraError::from(e).about("name"))?;
    Ok(axum::Json(render_folder(&state, &caller, folder).await?))
}

/// Delete a folder and everything in it, reclaiming the storage at once (with `permanent=false`,
/// to the trash instead). A folder holding files in use needs `force=true`.
#[utoipa::path(
    delete, path = "/compat/mavera/api/v1/folders/{id}", tag = "compat-mavera",
    params(("id" = String, Path, description = "Folder id"), DeleteParams),
    responses((status = 200, body = Deleted), (status = 401, body = MaveraErrorBody), (status = 404, body = MaveraErrorBody), (status = 409, description = "Files in it are in use", body = MaveraErrorBody)),
    security(("bearer" = []))
)]
pub async fn delete_folder(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> MaveraResult<axum::Json<Deleted>> {
    let params = Params::from(query)?;
    let caller = caller(&state, &headers, params.get("workspace_id")).await?;
    // As with files: what was in the folder is reclaimed at once.
    let permanent = params.bool("permanent")?.unwrap_or(true);
    let force = params.bool("force")?.unwrap_or(false);
    let folder = state.cabinet.delete_folder(&caller, &FolderId::parse(&id)?, true, force, permanent).await?;
    Ok(axum::Json(Deleted { id: folder.id.to_string(), object: "folder", deleted: true }))
}

/// Toggle a folder's favorite mark; returns the folder.
#[utoipa::path(
    post, path = "/compat/mavera/api/v1/folders/{id}/favorite", tag = "compat-mavera",
    operation_id = "toggle_folder_favorite",
    params(("id" = String, Path, description = "Folder id"), WorkspaceParam),
    responses((status = 200, body = FolderObject), (status = 401, body = MaveraErrorBody), (status = 404, body = MaveraErrorBody)),
    security(("bearer" = []))
)]
pub async fn toggle_favorite(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> MaveraResult<axum::Json<FolderObject>> {
    let params = Params::from(query)?;
    let caller = caller(&state, &headers, params.get("workspace_id")).await?;
    let folder = state.cabinet.toggle_folder_favorite(&caller, &FolderId::parse(&id)?).await?;
    Ok(axum::Json(render_folder(&state, &caller, folder).await?))
}
