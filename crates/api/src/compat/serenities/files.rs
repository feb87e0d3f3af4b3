//! The file procedures: list, get, getDownloadUrl, delete (to the trash), rename, move, upload
//! (base64), getUsage and getQuota. Each parses, calls the core, renders.

use axum::extract::State;
use axum::Json;
use cabinet_core::files::DirectUpload;
use cabinet_core::listing::{FileFilter, FolderScope, Paging, Sort};
use cabinet_core::ports::FileChange;
use cabinet_core::{Caller, FileId, FileRecord, FileReference, FolderId};
use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;

use super::error::{Body, SerenitiesCaller, SerenitiesError, SerenitiesErrorBody, SerenitiesResult};
use super::shapes::{
    SerenitiesDownloadUrl, SerenitiesFile, SerenitiesFileList, SerenitiesQuota, SerenitiesSuccess,
    SerenitiesUsage,
};
use crate::compat::base64_body::{byte_stream, decode_base64};
use crate::AppState;

/// The reference kind that `conversationId` names.
pub const CONVERSATION: &str = "conversation";

/// Renders a file with the first conversation that references it.
pub(super) async fn render(
    state: &AppState,
    caller: &Caller,
    file: FileRecord,
) -> SerenitiesResult<SerenitiesFile> {
    let references = state.cabinet.list_references(caller, &file.id).await?;
    let links = state.cabinet.links_for_one(&file).await?;
    Ok(SerenitiesFile::new(file, first_conversation(references), &links))
}

/// The first conversation among what uses a file.
fn first_conversation(references: Vec<FileReference>) -> Option<String> {
    references.into_iter().find(|r| r.kind == CONVERSATION).map(|r| r.id)
}

/// A file id from a body.
pub(super) fn file_id(raw: &str) -> SerenitiesResult<FileId> {
    Ok(FileId::parse(raw)?)
}

/// A folder id from a body; null, absent, empty or `"root"` is the root.
pub(super) fn folder_id(raw: Option<&str>) -> SerenitiesResult<Option<FolderId>> {
    match raw {
        None | Some("") | Some("root") => Ok(None),
        Some(id) => Ok(Some(FolderId::parse(id)?)),
    }
}

/// Tells a field set to `null` (`Some(None)`) from one left out (`None`).
fn nullable<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

/// No parameters.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct NoParams {}

/// A file.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileIdParams {
    #[schema(example = "file_01jq3v5k2n8x7y6z5w4v3u2t1s")]
    pub file_id: String,
}

/// What `list` returns.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListParams {
    /// A folder id, or `"root"` for the root level; absent: every folder.
    #[schema(schema_with = crate::input_schema::folder_scope_or_null)]
    pub folder_id: Option<String>,
    /// Only files that this conversation references.
    pub conversation_id: Option<String>,
    /// `uploadedAt` (default), `size` or `fileName`.
    #[schema(schema_with = sort_by_or_null)]
    pub sort_by: Option<String>,
    /// `asc` or `desc` (default: `desc`, `asc` for `fileName`).
    #[schema(schema_with = crate::input_schema::sort_order_or_null)]
    pub sort_order: Option<String>,
    /// 1–100, default 50.
    #[schema(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    #[schema(value_type = Option<i64>, minimum = 0)]
    pub offset: Option<u64>,
}

/// What `list` sorts by.
fn sort_by_or_null() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::Array(vec![Type::String, Type::Null]))
        .enum_values(Some([Some("uploadedAt"), Some("size"), Some("fileName"), None]))
        .build()
}

/// List files.
#[utoipa::path(
    post, path = "/compat/serenities/api/v1/files/list", tag = "compat-serenities",
    request_body = ListParams,
    responses(
        (status = 200, body = SerenitiesFileList),
        (status = 400, body = SerenitiesErrorBody),
        (status = 401, body = SerenitiesErrorBody),
        (status = 404, description = "No such folder", body = SerenitiesErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    SerenitiesCaller(caller): SerenitiesCaller,
    Body(params): Body<ListParams>,
) -> SerenitiesResult<Json<SerenitiesFileList>> {
    let sort_by = match params.sort_by.as_deref() {
        None | Some("uploadedAt") => "created_at",
        Some("size") => "size",
        Some("fileName") => "name",
        Some(_) => return Err(SerenitiesError::bad_request("sortBy must be uploadedAt, size or fileName")),
    };
    let sort = Sort::parse(Some(sort_by), params.sort_order.as_deref())
        .map_err(|_| SerenitiesError::bad_request("sortOrder must be asc or desc"))?;
    let paging = Paging::parse(params.limit, None, params.offset, sort)?;
    let folder = match params.folder_id.as_deref() {
        None | Some("") => FolderScope::Anywhere,
        Some("root") => FolderScope::Root,
        Some(id) => {
            let id = FolderId::parse(id)?;
            // An unknown folder is 404, not an empty list.
            state.cabinet.get_folder(&caller, &id).await?;
            FolderScope::In(id)
        }
    };
    let conversation = params.conversation_id.filter(|c| !c.is_empty());
    let filter = FileFilter {
        folder,
        referenced_by: conversation.clone().map(|id| (CONVERSATION.to_owned(), id)),
        ..FileFilter::default()
    };
    let page = state.cabinet.list_files(&caller, filter, sort, paging).await?;
    let mut references = match &conversation {
        Some(_) => Default::default(),
        None => state.cabinet.references_of(&caller, &page.items).await?,
    };
    let links = state.cabinet.links_for(&caller.workspace_id, &page.items).await?;
    let files = page
        .items
        .into_iter()
        .map(|file| {
            let conversation = match &conversation {
                Some(id) => Some(id.clone()),
                None => first_conversation(references.remove(&file.id).unwrap_or_default()),
            };
            SerenitiesFile::new(file, conversation, &links)
        })
        .collect();
    Ok(Json(SerenitiesFileList { files, total: page.total }))
}

/// Get a file by id.
#[utoipa::path(
    post, path = "/compat/serenities/api/v1/files/get", tag = "compat-serenities",
    request_body = FileIdParams,
    responses(
        (status = 200, body = SerenitiesFile),
        (status = 400, body = SerenitiesErrorBody),
        (status = 401, body = SerenitiesErrorBody),
        (status = 404, body = SerenitiesErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    SerenitiesCaller(caller): SerenitiesCaller,
    Body(params): Body<FileIdParams>,
) -> SerenitiesResult<Json<SerenitiesFile>> {
    let file = state.cabinet.readable_file(&caller, &file_id(&params.file_id)?).await?;
    Ok(Json(render(&state, &caller, file).await?))
}

/// A presigned download URL, valid for one hour.
#[utoipa::path(
    post, path = "/compat/serenities/api/v1/files/getDownloadUrl", tag = "compat-serenities",
    request_body = FileIdParams,
    responses(
        (status = 200, body = SerenitiesDownloadUrl),
        (status = 400, body = SerenitiesErrorBody),
        (status = 401, body = SerenitiesErrorBody),
        (status = 404, body = SerenitiesErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_download_url(
    State(state): State<AppState>,
    SerenitiesCaller(caller): SerenitiesCaller,
    Body(params): Body<FileIdParams>,
) -> SerenitiesResult<Json<SerenitiesDownloadUrl>> {
    let url = state.cabinet.download_url(&caller, &file_id(&params.file_id)?, Some(3600), false).await?;
    Ok(Json(SerenitiesDownloadUrl { url: url.url, expires_at: url.expires_at }))
}

/// A file to delete.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeleteParams {
    #[schema(example = "file_01jq3v5k2n8x7y6z5w4v3u2t1s")]
    pub file_id: String,
    /// Cabinet extension: delete even if something references the file (default false).
    pub force: Option<bool>,
}

/// Delete a file: it moves to the trash. A file something references is refused (409) unless
/// `force`.
#[utoipa::path(
    post, path = "/compat/serenities/api/v1/files/delete", tag = "compat-serenities",
    request_body = DeleteParams,
    responses(
        (status = 200, body = SerenitiesSuccess),
        (status = 400, body = SerenitiesErrorBody),
        (status = 401, body = SerenitiesErrorBody),
        (status = 403, body = SerenitiesErrorBody),
        (status = 404, body = SerenitiesErrorBody),
        (status = 409, description = "In use", body = SerenitiesErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn delete(
    State(state): State<AppState>,
    SerenitiesCaller(caller): SerenitiesCaller,
    Body(params): Body<DeleteParams>,
) -> SerenitiesResult<Json<SerenitiesSuccess>> {
    let id = file_id(&params.file_id)?;
    state.cabinet.delete_file(&caller, &id, params.force.unwrap_or(false), false).await?;
    Ok(Json(SerenitiesSuccess { success: true }))
}

/// A new name.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RenameParams {
    #[schema(example = "file_01jq3v5k2n8x7y6z5w4v3u2t1s")]
    pub file_id: String,
    #[schema(schema_with = crate::input_schema::name)]
    pub new_name: String,
}

async fn change(
    state: &AppState,
    caller: &Caller,
    id: &str,
    change: FileChange,
) -> SerenitiesResult<Json<SerenitiesFile>> {
    let file = state.cabinet.update_file(caller, &file_id(id)?, change).await?;
    Ok(Json(render(state, caller, file).await?))
}

/// Rename a file.
#[utoipa::path(
    post, path = "/compat/serenities/api/v1/files/rename", tag = "compat-serenities",
    request_body = RenameParams,
    responses(
        (status = 200, body = SerenitiesFile),
        (status = 400, body = SerenitiesErrorBody),
        (status = 401, body = SerenitiesErrorBody),
        (status = 403, body = SerenitiesErrorBody),
        (status = 404, body = SerenitiesErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn rename(
    State(state): State<AppState>,
    SerenitiesCaller(caller): SerenitiesCaller,
    Body(params): Body<RenameParams>,
) -> SerenitiesResult<Json<SerenitiesFile>> {
    let name = FileChange { name: Some(params.new_name), ..FileChange::default() };
    change(&state, &caller, &params.file_id, name).await
}

/// Where to move a file.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MoveParams {
    #[schema(example = "file_01jq3v5k2n8x7y6z5w4v3u2t1s")]
    pub file_id: String,
    /// Required: a folder id, or null (or `"root"`) for the root.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = crate::input_schema::folder_scope_or_null, required = true)]
    pub folder_id: Option<Option<String>>,
}

/// Move a file to a folder, or to the root with `folderId: null`.
#[utoipa::path(
    post, path = "/compat/serenities/api/v1/files/move", tag = "compat-serenities",
    // The seed's procedure name (`move` is a Rust keyword, so the handler is `move_file`).
    operation_id = "move",
    request_body = MoveParams,
    responses(
        (status = 200, body = SerenitiesFile),
        (status = 400, body = SerenitiesErrorBody),
        (status = 401, body = SerenitiesErrorBody),
        (status = 403, body = SerenitiesErrorBody),
        (status = 404, description = "No such file or folder", body = SerenitiesErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn move_file(
    State(state): State<AppState>,
    SerenitiesCaller(caller): SerenitiesCaller,
    Body(params): Body<MoveParams>,
) -> SerenitiesResult<Json<SerenitiesFile>> {
    let Some(target) = params.folder_id else {
        return Err(SerenitiesError::bad_request("folderId is required (null for the root)"));
    };
    let moved = FileChange { folder: Some(folder_id(target.as_deref())?), ..FileChange::default() };
    change(&state, &caller, &params.file_id, moved).await
}

/// A base64 upload.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UploadParams {
    /// Original file name with extension.
    #[schema(schema_with = crate::input_schema::name)]
    pub file_name: String,
    /// Base64-encoded bytes.
    #[schema(schema_with = crate::input_schema::dialect_base64)]
    pub content: String,
    /// Sniffed from the bytes when absent (and checked against them when given).
    #[schema(schema_with = crate::input_schema::mime_type_or_empty_or_null)]
    pub mime_type: Option<String>,
    /// A folder id; null or absent for the root.
    #[schema(schema_with = crate::input_schema::folder_scope_or_null)]
    pub folder_id: Option<String>,
    /// Cabinet extension: record that this conversation references the file.
    #[schema(schema_with = crate::input_schema::reference_part_or_empty_or_null)]
    pub conversation_id: Option<String>,
}

/// Upload a file; the content is base64. Check `getQuota` first.
#[utoipa::path(
    post, path = "/compat/serenities/api/v1/files/upload", tag = "compat-serenities",
    request_body = UploadParams,
    responses(
        (status = 200, body = SerenitiesFile),
        (status = 400, body = SerenitiesErrorBody),
        (status = 401, body = SerenitiesErrorBody),
        (status = 403, body = SerenitiesErrorBody),
        (status = 404, description = "No such folder", body = SerenitiesErrorBody),
        (status = 413, description = "Too large, or the storage quota is exceeded", body = SerenitiesErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn upload(
    State(state): State<AppState>,
    SerenitiesCaller(caller): SerenitiesCaller,
    Body(params): Body<UploadParams, true>,
) -> SerenitiesResult<Json<SerenitiesFile>> {
    let (bytes, data_mime) = decode_base64(&params.content)
        .ok_or_else(|| SerenitiesError::bad_request("content is not valid base64"))?;
    let meta = DirectUpload {
        name: params.file_name,
        mime_type: params.mime_type.filter(|m| !m.is_empty()).or(data_mime),
        folder_id: folder_id(params.folder_id.as_deref())?,
        max_bytes: None,
    };
    let file = state.cabinet.upload_direct(&caller, meta, byte_stream(bytes)).await?;
    if let Some(conversation) = params.conversation_id.filter(|c| !c.is_empty()) {
        state.cabinet.add_reference(&caller, &file.id, CONVERSATION, &conversation, None).await?;
    }
    Ok(Json(render(&state, &caller, file).await?))
}

/// Storage stats: bytes in files and how many files.
#[utoipa::path(
    post, path = "/compat/serenities/api/v1/files/getUsage", tag = "compat-serenities",
    request_body = NoParams,
    responses(
        (status = 200, body = SerenitiesUsage),
        (status = 400, description = "The body is not a JSON object", body = SerenitiesErrorBody),
        (status = 401, body = SerenitiesErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_usage(
    State(state): State<AppState>,
    SerenitiesCaller(caller): SerenitiesCaller,
    Body(_params): Body<NoParams>,
) -> SerenitiesResult<Json<SerenitiesUsage>> {
    Ok(Json(state.cabinet.usage(&caller).await?.into()))
}

/// Storage quota. An unlimited workspace reports `limitBytes` 9007199254740991.
#[utoipa::path(
    post, path = "/compat/serenities/api/v1/files/getQuota", tag = "compat-serenities",
    request_body = NoParams,
    responses(
        (status = 200, body = SerenitiesQuota),
        (status = 400, description = "The body is not a JSON object", body = SerenitiesErrorBody),
        (status = 401, body = SerenitiesErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_quota(
    State(state): State<AppState>,
    SerenitiesCaller(caller): SerenitiesCaller,
    Body(_params): Body<NoParams>,
) -> SerenitiesResult<Json<SerenitiesQuota>> {
    Ok(Json(state.cabinet.quota(&caller).await?.into()))
}
