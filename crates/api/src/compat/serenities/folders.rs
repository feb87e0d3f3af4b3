//! The folder procedures: listFolders (a bare array), createFolder, renameFolder and
//! deleteFolder (empty folders only: 409 CONFLICT otherwise; to the trash).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use cabinet_core::folders::OnConflict;
use cabinet_core::listing::{FolderFilter, FolderScope, Paging, Sort, Start};
use cabinet_core::ports::FolderChange;
use cabinet_core::{Code, FolderId};
use serde::Deserialize;
use utoipa::ToSchema;

use super::error::{Body, SerenitiesCaller, SerenitiesError, SerenitiesErrorBody, SerenitiesResult};
use super::files::folder_id;
use super::shapes::{SerenitiesFolder, SerenitiesFolderEntry, SerenitiesSuccess};
use crate::AppState;

/// Which folders.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListFoldersParams {
    /// The parent's id; null or absent (or `"root"`) for root-level folders.
    #[schema(schema_with = crate::input_schema::folder_scope_or_null)]
    pub parent_id: Option<String>,
}

/// The folders directly under a parent (or at the root), by name: a bare array.
#[utoipa::path(
    post, path = "/compat/serenities/api/v1/files/listFolders", tag = "compat-serenities",
    request_body = ListFoldersParams,
    responses(
        (status = 200, body = Vec<SerenitiesFolderEntry>),
        (status = 400, body = SerenitiesErrorBody),
        (status = 401, body = SerenitiesErrorBody),
        (status = 404, description = "No such parent", body = SerenitiesErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list_folders(
    State(state): State<AppState>,
    SerenitiesCaller(caller): SerenitiesCaller,
    Body(params): Body<ListFoldersParams>,
) -> SerenitiesResult<Json<Vec<SerenitiesFolderEntry>>> {
    let parent = match folder_id(params.parent_id.as_deref())? {
        Some(id) => {
            // An unknown parent is 404, not an empty list.
            state.cabinet.get_folder(&caller, &id).await?;
            FolderScope::In(id)
        }
        None => FolderScope::Root,
    };
    let sort = Sort::parse(Some("name"), None)?;
    let mut folders = Vec::new();
    loop {
        let paging =
            Paging { limit: cabinet_core::listing::MAX_PAGE, start: Start::Offset(folders.len() as u64) };
        let filter = FolderFilter { parent: parent.clone(), ..FolderFilter::default() };
        let page = state.cabinet.list_folders(&caller, filter, sort, paging).await?;
        let done = page.next_cursor.is_none();
        folders.extend(page.items.into_iter().map(SerenitiesFolderEntry::from));
        if done {
            return Ok(Json(folders));
        }
    }
}

/// A new folder.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateFolderParams {
    #[schema(schema_with = crate::input_schema::name)]
    pub name: String,
    /// The parent's id; null or absent for the root.
    #[schema(schema_with = crate::input_schema::folder_scope_or_null)]
    pub parent_id: Option<String>,
}

/// Create a folder; a sibling of the same name is 409 CONFLICT.
#[utoipa::path(
    post, path = "/compat/serenities/api/v1/files/createFolder", tag = "compat-serenities",
    request_body = CreateFolderParams,
    responses(
        (status = 200, body = SerenitiesFolder),
        (status = 400, body = SerenitiesErrorBody),
        (status = 401, body = SerenitiesErrorBody),
        (status = 403, body = SerenitiesErrorBody),
        (status = 404, description = "No such parent", body = SerenitiesErrorBody),
        (status = 409, description = "The name is taken", body = SerenitiesErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create_folder(
    State(state): State<AppState>,
    SerenitiesCaller(caller): SerenitiesCaller,
    Body(params): Body<CreateFolderParams>,
) -> SerenitiesResult<Json<SerenitiesFolder>> {
    let parent = folder_id(params.parent_id.as_deref())?;
    let folder = state.cabinet.create_folder(&caller, &params.name, parent, OnConflict::Fail).await?;
    Ok(Json(folder.into()))
}

/// A folder's new name.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RenameFolderParams {
    #[schema(example = "fld_01jq3v5k2n8x7y6z5w4v3u2t1s")]
    pub folder_id: String,
    #[schema(schema_with = crate::input_schema::name)]
    pub new_name: String,
}

/// Rename a folder.
#[utoipa::path(
    post, path = "/compat/serenities/api/v1/files/renameFolder", tag = "compat-serenities",
    request_body = RenameFolderParams,
    responses(
        (status = 200, body = SerenitiesFolder),
        (status = 400, body = SerenitiesErrorBody),
        (status = 401, body = SerenitiesErrorBody),
        (status = 403, body = SerenitiesErrorBody),
        (status = 404, body = SerenitiesErrorBody),
        (status = 409, description = "The name is taken", body = SerenitiesErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn rename_folder(
    State(state): State<AppState>,
    SerenitiesCaller(caller): SerenitiesCaller,
    Body(params): Body<RenameFolderParams>,
) -> SerenitiesResult<Json<SerenitiesFolder>> {
    let change = FolderChange { name: Some(params.new_name), ..FolderChange::default() };
    let folder = state
        .cabinet
        .update_folder(&caller, &FolderId::parse(&params.folder_id)?, change, OnConflict::Fail)
        .await?;
    Ok(Json(folder.into()))
}

/// A folder.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FolderIdParams {
    #[schema(example = "fld_01jq3v5k2n8x7y6z5w4v3u2t1s")]
    pub folder_id: String,
}

/// Delete an empty folder (to the trash); one that holds anything is 409 CONFLICT.
#[utoipa::path(
    post, path = "/compat/serenities/api/v1/files/deleteFolder", tag = "compat-serenities",
    request_body = FolderIdParams,
    responses(
        (status = 200, body = SerenitiesSuccess),
        (status = 400, body = SerenitiesErrorBody),
        (status = 401, body = SerenitiesErrorBody),
        (status = 403, body = SerenitiesErrorBody),
        (status = 404, body = SerenitiesErrorBody),
        (status = 409, description = "Not empty", body = SerenitiesErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn delete_folder(
    State(state): State<AppState>,
    SerenitiesCaller(caller): SerenitiesCaller,
    Body(params): Body<FolderIdParams>,
) -> SerenitiesResult<Json<SerenitiesSuccess>> {
    let id = FolderId::parse(&params.folder_id)?;
    match state.cabinet.delete_folder(&caller, &id, false, false, false).await {
        Ok(_) => Ok(Json(SerenitiesSuccess { success: true })),
        // The native message offers `recursive=true`, which this procedure does not take.
        Err(err) if err.code() == Code::FolderNotEmpty => Err(SerenitiesError {
            status: StatusCode::CONFLICT,
            code: "CONFLICT",
            message: "Folder must be empty: move or delete what it holds first".to_owned(),
        }),
        Err(err) => Err(err.into()),
    }
}
