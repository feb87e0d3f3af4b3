//! `/v1/folders`: the tree — create, details with breadcrumbs, children, rename/move, favorite,
//! delete to the trash (recursively), restore.

use axum::extract::State;
use axum::http::StatusCode;
use cabinet_core::folders::OnConflict;
use cabinet_core::listing::FolderFilter;
use cabinet_core::ports::FolderChange;
use cabinet_core::FolderId;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::files::file_list;
use super::params::{folder_scope, nullable, ListParams};
use super::shapes::{
    BreadcrumbJson, FavoriteJson, FolderContentsJson, FolderJson, FolderListJson, RestoredFolderJson,
};
use crate::auth::Authenticated;
use crate::error::{ApiResult, ErrorBody, Json, Path, Query};
use crate::schemas;
use crate::AppState;

/// How a name clash is handled.
#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct ConflictParams {
    /// `fail` (default: 409 `name_taken`) or `rename` (picks "name (2)").
    #[param(pattern = "^(fail|rename)$")]
    pub on_conflict: Option<String>,
}

/// A new folder.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateFolderRequest {
    #[schema(schema_with = crate::input_schema::name)]
    pub name: String,
    /// Null or absent: at the root.
    #[schema(value_type = Option<schemas::FolderId>)]
    pub parent_id: Option<FolderId>,
}

/// Create a folder at the root or under another.
#[utoipa::path(
    post, path = "/v1/folders", tag = "folders",
    params(ConflictParams),
    request_body = CreateFolderRequest,
    responses(
        (status = 201, body = FolderJson),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such parent", body = ErrorBody),
        (status = 409, description = "A sibling has that name", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create_folder(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(conflict): Query<ConflictParams>,
    Json(request): Json<CreateFolderRequest>,
) -> ApiResult<(StatusCode, Json<FolderJson>)> {
    let on_conflict = OnConflict::parse(conflict.on_conflict.as_deref())?;
    let folder = state.cabinet.create_folder(&caller, &request.name, request.parent_id, on_conflict).await?;
    Ok((StatusCode::CREATED, Json(folder.into())))
}

/// Which folders.
#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct FolderFilterParams {
    /// A folder id or `root`: its direct children only. Absent: every folder.
    #[param(schema_with = crate::input_schema::folder_scope)]
    pub parent_id: Option<String>,
    /// Case-insensitive substring of the name.
    #[param(schema_with = crate::input_schema::name_filter)]
    pub q: Option<String>,
    pub favorite: Option<bool>,
    /// Only folders in the trash.
    pub trashed: Option<bool>,
}

/// List folders, filtered, sorted and paged.
#[utoipa::path(
    get, path = "/v1/folders", tag = "folders",
    params(FolderFilterParams, ListParams),
    responses((status = 200, body = FolderListJson), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list_folders(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(filter): Query<FolderFilterParams>,
    Query(list): Query<ListParams>,
) -> ApiResult<Json<FolderListJson>> {
    let (sort, paging) = list.parse()?;
    let filter = FolderFilter {
        parent: folder_scope(filter.parent_id.as_deref(), false)?,
        name_contains: cabinet_core::listing::name_query(filter.q.as_deref()),
        favorite: filter.favorite,
        trashed: filter.trashed.unwrap_or(false),
    };
    let page = state.cabinet.list_folders(&caller, filter, sort, paging).await?;
    Ok(Json(folder_list(page)))
}

fn folder_list(page: cabinet_core::Page<cabinet_core::Folder>) -> FolderListJson {
    FolderListJson {
        total: page.total,
        has_more: page.next_cursor.is_some(),
        next_cursor: page.next_cursor,
        data: page.items.into_iter().map(FolderJson::from).collect(),
    }
}

/// A folder with its path from the root (breadcrumbs).
#[utoipa::path(
    get, path = "/v1/folders/{id}", tag = "folders",
    params(("id" = schemas::FolderId, Path, description = "Folder id")),
    responses((status = 200, body = FolderJson), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_folder(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<FolderJson>> {
    let details = state.cabinet.get_folder(&caller, &FolderId::parse(&id)?).await?;
    let mut json = FolderJson::from(details.folder);
    json.path = Some(details.path.into_iter().map(|f| BreadcrumbJson { id: f.id, name: f.name }).collect());
    Ok(Json(json))
}

/// What a folder (or, with `root`, the top level) holds directly: folders and files, each sorted
/// and paged alike.
#[utoipa::path(
    get, path = "/v1/folders/{id}/children", tag = "folders",
    params(("id" = String, Path, description = "Folder id, or `root`"), ListParams),
    responses((status = 200, body = FolderContentsJson), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list_children(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    Query(list): Query<ListParams>,
) -> ApiResult<Json<FolderContentsJson>> {
    let (sort, paging) = list.parse()?;
    let id = if id == "root" { None } else { Some(FolderId::parse(&id)?) };
    let contents = state.cabinet.folder_contents(&caller, id.as_ref(), sort, paging).await?;
    let folder = match &id {
        Some(id) => Some(FolderJson::from(state.cabinet.get_folder(&caller, id).await?.folder)),
        None => None,
    };
    Ok(Json(FolderContentsJson {
        folder,
        folders: folder_list(contents.folders),
        files: file_list(contents.files, &caller.workspace_id, &state.cabinet).await?,
    }))
}

/// What to change on a folder; fields left out stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateFolderRequest {
    #[schema(schema_with = crate::input_schema::name_or_null)]
    pub name: Option<String>,
    /// A folder id; `null` moves it to the root. Never into its own subtree.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = crate::input_schema::folder_id_or_null)]
    pub parent_id: Option<Option<FolderId>>,
    pub is_favorite: Option<bool>,
}

/// Rename, move or mark a folder.
#[utoipa::path(
    patch, path = "/v1/folders/{id}", tag = "folders",
    params(("id" = schemas::FolderId, Path, description = "Folder id"), ConflictParams),
    request_body = UpdateFolderRequest,
    responses(
        (status = 200, body = FolderJson),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Name taken, or a move into its own subtree", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn update_folder(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    Query(conflict): Query<ConflictParams>,
    Json(request): Json<UpdateFolderRequest>,
) -> ApiResult<Json<FolderJson>> {
    let on_conflict = OnConflict::parse(conflict.on_conflict.as_deref())?;
    let change = FolderChange {
        name: request.name,
        parent: request.parent_id,
        is_favorite: request.is_favorite,
        is_shared: None,
    };
    Ok(Json(state.cabinet.update_folder(&caller, &FolderId::parse(&id)?, change, on_conflict).await?.into()))
}

/// How a folder delete behaves.
#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct DeleteFolderParams {
    /// Delete a folder that holds files or folders, with all of them.
    pub recursive: Option<bool>,
    /// Delete even if files in it are in use.
    pub force: Option<bool>,
    /// Purge at once instead of moving to the trash.
    pub permanent: Option<bool>,
}

/// Delete a folder: to the trash, with everything below it when `recursive`.
#[utoipa::path(
    delete, path = "/v1/folders/{id}", tag = "folders",
    params(("id" = schemas::FolderId, Path, description = "Folder id"), DeleteFolderParams),
    responses(
        (status = 200, description = "The trashed (or purged) folder", body = FolderJson),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Not empty (without recursive), or files in use (without force)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn delete_folder(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    Query(params): Query<DeleteFolderParams>,
) -> ApiResult<Json<FolderJson>> {
    let folder = state
        .cabinet
        .delete_folder(
            &caller,
            &FolderId::parse(&id)?,
            params.recursive.unwrap_or(false),
            params.force.unwrap_or(false),
            params.permanent.unwrap_or(false),
        )
        .await?;
    Ok(Json(folder.into()))
}

/// Toggle a folder's favorite mark.
#[utoipa::path(
    post, path = "/v1/folders/{id}/favorite", tag = "folders", operation_id = "toggle_folder_favorite",
    params(("id" = schemas::FolderId, Path, description = "Folder id")),
    responses((status = 200, body = FavoriteJson), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn toggle_favorite(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<FavoriteJson>> {
    let folder = state.cabinet.toggle_folder_favorite(&caller, &FolderId::parse(&id)?).await?;
    Ok(Json(FavoriteJson { id: folder.id.to_string(), is_favorite: folder.is_favorite }))
}

/// Take a folder out of the trash with what was trashed along with it.
#[utoipa::path(
    post, path = "/v1/folders/{id}/restore", tag = "folders",
    params(("id" = schemas::FolderId, Path, description = "Folder id")),
    responses(
        (status = 200, body = RestoredFolderJson),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Not in the trash", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn restore_folder(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<RestoredFolderJson>> {
    let (folder, note) = state.cabinet.restore_folder(&caller, &FolderId::parse(&id)?).await?;
    Ok(Json(RestoredFolderJson { folder: folder.into(), restore: note.into() }))
}
