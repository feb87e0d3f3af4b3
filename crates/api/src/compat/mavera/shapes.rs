//! Mavera's objects, rendered from core records: every one carries its `object` discriminator.

use std::collections::{BTreeMap, HashMap};

use cabinet_core::listing::{FileFilter, FolderScope, Paging, Sort};
use cabinet_core::{Caller, FileRecord, Folder, FolderId};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::error::MaveraResult;
use crate::AppState;

/// A file (Mavera's File object).
#[derive(Debug, Serialize, ToSchema)]
pub struct FileObject {
    #[schema(example = "file_01jdq4x7m2c8v5n3k9w6r1t0ya")]
    pub id: String,
    /// Always `file`.
    pub object: &'static str,
    pub name: String,
    /// A lasting URL of the bytes (a permalink: no expiry, one per file); it ends when the file is
    /// deleted or the workspace's links are revoked. Empty for a file in the trash.
    pub url: String,
    /// For a file anyone may read (its read rule is `public`): its URL at this content version,
    /// which needs no key and may be cached by anyone for a year; absent otherwise, so the seed's
    /// shape is unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// MIME type (sniffed from the bytes).
    #[serde(rename = "type")]
    pub mime_type: String,
    pub size: Option<u64>,
    /// Always `upload`.
    pub source: &'static str,
    pub workspace_id: String,
    pub folder_id: Option<String>,
    /// Only when the file is in a folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub folder: Option<FolderRef>,
    /// For JPEG, PNG, WebP and GIF files: a signed, expiring thumbnail URL (longest edge 256 px)
    /// that needs no key; null for other types.
    pub thumbnail_url: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    pub is_favorite: bool,
    #[serde(serialize_with = "crate::timestamps::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::timestamps::serialize")]
    pub updated_at: DateTime<Utc>,
}

/// The folder a file is in.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FolderRef {
    pub id: String,
    pub name: String,
}

/// A folder (Mavera's Folder object, plus `parent_id`).
#[derive(Debug, Serialize, ToSchema)]
pub struct FolderObject {
    #[schema(example = "fld_01jdq4x7m2c8v5n3k9w6r1t0ya")]
    pub id: String,
    /// Always `folder`.
    pub object: &'static str,
    pub name: String,
    pub workspace_id: String,
    /// Cabinet's folders nest; null at the top.
    pub parent_id: Option<String>,
    /// Live files directly in the folder.
    pub file_count: u64,
    /// Shared with every member of the workspace, as set by create or update.
    pub is_shared: bool,
    pub is_favorite: bool,
    #[serde(serialize_with = "crate::timestamps::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::timestamps::serialize")]
    pub updated_at: DateTime<Utc>,
    /// `GET /folders/{id}` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<FileList>,
}

/// A page of files.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileList {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<FileObject>,
    pub has_more: bool,
    /// The id of the last file of this page: pass it as `cursor` for the next.
    pub next_cursor: Option<String>,
}

/// A page of folders.
#[derive(Debug, Serialize, ToSchema)]
pub struct FolderList {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<FolderObject>,
    pub has_more: bool,
    /// The id of the last folder of this page: pass it as `cursor` for the next.
    pub next_cursor: Option<String>,
}

/// What a delete answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    pub id: String,
    /// `file` or `folder`.
    pub object: &'static str,
    pub deleted: bool,
}

/// Where to PUT the bytes, and what to send afterwards.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadUrlObject {
    /// Always `upload_url`.
    pub object: &'static str,
    pub upload_url: String,
    /// The lasting URL of the file the upload makes (404 until `POST /files` records it); it
    /// names the upload: send it as `url` to `POST /files`.
    pub public_url: String,
    /// The upload's id (`upl_…`); `POST /files` also accepts it in `url`.
    pub key: String,
    pub expires_in: i64,
    /// Always `PUT`.
    pub method: &'static str,
    /// Send these headers with the PUT.
    pub headers: BTreeMap<String, String>,
    #[schema(value_type = Object)]
    pub next_step: Value,
}

/// Renders files, looking each folder up once; each file's `url` is its permalink (clients keep
/// it), which works while the file lives.
pub async fn render_files(
    state: &AppState,
    caller: &Caller,
    files: Vec<FileRecord>,
) -> MaveraResult<Vec<FileObject>> {
    let mut folders: HashMap<FolderId, FolderRef> = HashMap::new();
    let mut urls = state.cabinet.permalinks_of(caller, &files).await?;
    let links = state.cabinet.links_for(&caller.workspace_id, &files).await?;
    let mut rendered = Vec::with_capacity(files.len());
    for file in files {
        let folder = match &file.folder_id {
            Some(id) => match folders.get(id) {
                Some(found) => Some(found.clone()),
                None => {
                    let details = state.cabinet.get_folder(caller, id).await?;
                    let found = FolderRef { id: id.to_string(), name: details.folder.name };
                    folders.insert(id.clone(), found.clone());
                    Some(found)
                }
            },
            None => None,
        };
        // A file in the trash has no URL.
        let url = urls.remove(&file.id).unwrap_or_default();
        let thumbnail_url = state.cabinet.thumbnail_url(&file);
        rendered.push(FileObject {
            id: file.id.to_string(),
            object: "file",
            public_url: links.public_url(&file),
            name: file.name,
            url,
            mime_type: file.mime_type,
            size: Some(file.size),
            source: "upload",
            workspace_id: file.workspace_id.to_string(),
            folder_id: file.folder_id.map(|id| id.to_string()),
            folder,
            thumbnail_url,
            metadata: file.metadata,
            is_favorite: file.is_favorite,
            created_at: file.created_at,
            updated_at: file.updated_at,
        });
    }
    Ok(rendered)
}

/// Renders one file.
pub async fn render_file(state: &AppState, caller: &Caller, file: FileRecord) -> MaveraResult<FileObject> {
    Ok(render_files(state, caller, vec![file]).await?.remove(0))
}

/// Renders a folder with its file count.
pub async fn render_folder(state: &AppState, caller: &Caller, folder: Folder) -> MaveraResult<FolderObject> {
    let filter = FileFilter { folder: FolderScope::In(folder.id.clone()), ..Default::default() };
    let paging = Paging::parse(Some(1), None, None, Sort::NEWEST_FIRST)?;
    let count = state.cabinet.list_files(caller, filter, Sort::NEWEST_FIRST, paging).await?.total;
    Ok(FolderObject {
        id: folder.id.to_string(),
        object: "folder",
        name: folder.name,
        workspace_id: folder.workspace_id.to_string(),
        parent_id: folder.parent_id.map(|id| id.to_string()),
        file_count: count,
        is_shared: folder.is_shared,
        is_favorite: folder.is_favorite,
        created_at: folder.created_at,
        updated_at: folder.updated_at,
        files: None,
    })
}
