//! Files and folders addressed by path (`a/b/c.txt`), for surfaces whose clients name things by
//! path rather than by id (the S3 surface). A path is folder names from the root, then a file
//! name; folders are matched as names are compared everywhere (`names::fold`, so one folder
//! answers `Docs/` and `docs/`), files by their exact name. Every lookup is scoped to the
//! caller's workspace and checked against its role like any other call.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::folders::OnConflict;
use crate::ids::{FileId, FolderId};
use crate::listing::{FileFilter, FolderFilter, FolderScope, Paging, Sort, SortKey, Start};
use crate::model::{FileRecord, Folder, Role};
use crate::names::fold;
use crate::{Cabinet, Caller, Code};

/// A place in the tree: a folder, or the root (`None`).
pub type Place = Option<FolderId>;

/// The most entries one folder may hold for a listing by path: a listing reads a folder's
/// entries whole to order them as S3 does (by bytes), so this bounds its memory.
pub const MAX_FOLDER_ENTRIES: u64 = 100_000;

const PAGE: u32 = 1000;

fn scope(place: &Place) -> FolderScope {
    match place {
        None => FolderScope::Root,
        Some(id) => FolderScope::In(id.clone()),
    }
}

const BY_NAME: Sort = Sort { key: SortKey::Name, descending: false };

impl Cabinet {
    /// The live folder a path of folder names leads to, `Some(None)` for the root (an empty
    /// path), `None` when a folder on the way does not exist.
    pub async fn folder_at(&self, caller: &Caller, names: &[&str]) -> Result<Option<Place>> {
        caller.require(Role::Read)?;
        let mut place: Place = None;
        for name in names {
            match self.child_folder(caller, &place, name).await? {
                Some(folder) => place = Some(folder.id),
                None => return Ok(None),
            }
        }
        Ok(Some(place))
    }

    /// The folder a path of folder names leads to, creating those missing (`mkdir -p`).
    pub async fn make_folders(&self, caller: &Caller, names: &[&str]) -> Result<Place> {
        caller.require(Role::Write)?;
        let mut place: Place = None;
        for name in names {
            let folder = match self.child_folder(caller, &place, name).await? {
                Some(folder) => folder,
                None => match self.create_folder(caller, name, place.clone(), OnConflict::Fail).await {
                    Ok(folder) => folder,
                    // Another request made it meanwhile.
                    Err(Error::Conflict { code: Code::NameTaken, .. }) => {
                        self.child_folder(caller, &place, name).await?.ok_or(Error::NotFound("folder"))?
                    }
                    Err(err) => return Err(err),
                },
            };
            place = Some(folder.id);
        }
        Ok(place)
    }

    /// The live subfolder of `place` with this name (as names compare), if any.
    async fn child_folder(&self, caller: &Caller, place: &Place, name: &str) -> Result<Option<Folder>> {
        let folded = fold(name);
        let filter =
            FolderFilter { parent: scope(place), name_contains: Some(folded.clone()), ..Default::default() };
        let mut offset = 0;
        loop {
            let paging = Paging { limit: PAGE, start: Start::Offset(offset) };
            let (folders, _) =
                self.store.list_folders(&caller.workspace_id, &filter, BY_NAME, &paging).await?;
            let count = folders.len() as u64;
            if let Some(found) = folders.into_iter().find(|folder| fold(&folder.name) == folded) {
                return Ok(Some(found));
            }
            if count < u64::from(PAGE) {
                return Ok(None);
            }
            offset += count;
        }
    }

    /// The live files of `place` with exactly this name, oldest first.
    pub async fn files_named(&self, caller: &Caller, place: &Place, name: &str) -> Result<Vec<FileRecord>> {
        caller.require(Role::Read)?;
        let filter =
            FileFilter { folder: scope(place), name_contains: Some(fold(name)), ..Default::default() };
        let mut found = Vec::new();
        let mut offset = 0;
        loop {
            let paging = Paging { limit: PAGE, start: Start::Offset(offset) };
            let (files, _) = self.store.list_files(&caller.workspace_id, &filter, BY_NAME, &paging).await?;
            let count = files.len() as u64;
            found.extend(files.into_iter().filter(|file| file.name == name));
            if count < u64::from(PAGE) {
                break;
            }
            offset += count;
        }
        found.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(found)
    }

    /// Everything live directly in `place`: its folders and its files. Refused beyond
    /// `MAX_FOLDER_ENTRIES`.
    pub async fn folder_entries(
        &self,
        caller: &Caller,
        place: &Place,
    ) -> Result<(Vec<Folder>, Vec<FileRecord>)> {
        caller.require(Role::Read)?;
        let ws = &caller.workspace_id;
        let too_many = || {
            Error::bad_request(
                Code::InvalidPaging,
                format!("a folder with more than {MAX_FOLDER_ENTRIES} entries cannot be listed by path"),
            )
        };
        let mut folders = Vec::new();
        let filter = FolderFilter { parent: scope(place), ..Default::default() };
        loop {
            let paging = Paging { limit: PAGE, start: Start::Offset(folders.len() as u64) };
            let (page, _) = self.store.list_folders(ws, &filter, BY_NAME, &paging).await?;
            let count = page.len();
            folders.extend(page);
            if folders.len() as u64 > MAX_FOLDER_ENTRIES {
                return Err(too_many());
            }
            if count < PAGE as usize {
                break;
            }
        }
        let mut files = Vec::new();
        let filter = FileFilter { folder: scope(place), ..Default::default() };
        loop {
            let paging = Paging { limit: PAGE, start: Start::Offset(files.len() as u64) };
            let (page, _) = self.store.list_files(ws, &filter, BY_NAME, &paging).await?;
            let count = page.len();
            files.extend(page);
            if (folders.len() + files.len()) as u64 > MAX_FOLDER_ENTRIES {
                return Err(too_many());
            }
            if count < PAGE as usize {
                break;
            }
        }
        Ok((folders, files))
    }

    /// Whether a folder holds no live files or folders.
    pub async fn folder_is_empty(&self, caller: &Caller, id: &FolderId) -> Result<bool> {
        caller.require(Role::Read)?;
        self.store.folder_is_empty(&caller.workspace_id, id).await
    }

    /// Records what the S3 surface keeps of a file it stored: the ETag S3 tools know it by (the
    /// MD5 of its bytes as they arrived, or S3's multipart form), its headers, its parts' sizes.
    pub async fn set_s3_object(
        &self,
        caller: &Caller,
        file: &FileId,
        object: &crate::s3_objects::S3Object,
    ) -> Result<()> {
        caller.require(Role::Write)?;
        self.store.set_s3_object(&caller.workspace_id, file, object).await
    }

    /// What the S3 surface kept of a file, if it stored it.
    pub async fn s3_object(
        &self,
        caller: &Caller,
        file: &FileId,
    ) -> Result<Option<crate::s3_objects::S3Object>> {
        caller.require(Role::Read)?;
        self.store.s3_object(&caller.workspace_id, file).await
    }

    /// What a listing names of these files (those the S3 surface stored): ETags and checksums'
    /// algorithms.
    pub async fn s3_listed(
        &self,
        caller: &Caller,
        files: &[FileId],
    ) -> Result<HashMap<FileId, crate::s3_objects::S3Listed>> {
        caller.require(Role::Read)?;
        if files.is_empty() {
            return Ok(HashMap::new());
        }
        self.store.s3_listed(&caller.workspace_id, files).await
    }
}
