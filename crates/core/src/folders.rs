//! The folder tree: one per workspace, names unique among live siblings (case-insensitively),
//! never a cycle. Deleting sends a folder and everything below it to the trash as one operation;
//! restoring brings back what went with it and, where the parent chain is gone, says so.

use crate::error::{Error, Result};
use crate::ids::FolderId;
use crate::listing::{check_name_filter, into_page, FileFilter, FolderFilter, FolderScope, Paging, Sort};
use crate::model::{FileRecord, Folder, Page, Role};
use crate::names::{numbered, validate_name};
use crate::ports::FolderChange;
use crate::{Cabinet, Caller, Code};

/// How many numbered variants `on_conflict=rename` tries before giving up.
const RENAME_ATTEMPTS: u32 = 100;

/// The deepest a folder may sit: a folder at the root is at depth 1. Every walk of the tree is
/// bounded by it, so no tree (or a cycle left by an older version) can make a query run long.
pub const MAX_FOLDER_DEPTH: u32 = 100;

/// The refusal for a create, move or restore that would put a folder below `MAX_FOLDER_DEPTH`.
pub fn too_deep() -> Error {
    Error::conflict(
        Code::FolderTooDeep,
        format!("folders nest at most {MAX_FOLDER_DEPTH} levels deep; this would go deeper"),
    )
}

/// What to do when a name is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnConflict {
    /// Refuse with 409 `name_taken`.
    #[default]
    Fail,
    /// Pick the first free "name (2)", "name (3)", ….
    Rename,
}

impl OnConflict {
    /// Parses `fail` or `rename`.
    pub fn parse(raw: Option<&str>) -> Result<Self> {
        match raw {
            None | Some("fail") => Ok(OnConflict::Fail),
            Some("rename") => Ok(OnConflict::Rename),
            Some(_) => Err(Error::bad_request(Code::InvalidOnConflict, "on_conflict must be fail or rename")),
        }
    }
}

/// A folder with where it is.
#[derive(Debug, Clone)]
pub struct FolderDetails {
    pub folder: Folder,
    /// From the root down to the folder itself.
    pub path: Vec<Folder>,
}

/// What a folder holds, one page of each.
#[derive(Debug, Clone)]
pub struct FolderContents {
    pub folders: Page<Folder>,
    pub files: Page<FileRecord>,
}

/// Where a restore put things.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreNote {
    /// The original parent was purged, so it went to the root.
    pub restored_to_root: bool,
    /// Trashed ancestors that were brought back to give it a place.
    pub recreated_folders: Vec<FolderId>,
    /// Its name was taken meanwhile, so it was renamed to this.
    pub renamed_to: Option<String>,
}

fn is_name_taken(err: &Error) -> bool {
    err.code() == Code::NameTaken
}

impl Cabinet {
    /// Creates a folder at the root or under a live parent.
    pub async fn create_folder(
        &self,
        caller: &Caller,
        name: &str,
        parent: Option<FolderId>,
        on_conflict: OnConflict,
    ) -> Result<Folder> {
        self.create_folder_marked(caller, name, parent, on_conflict, false).await
    }

    /// Creates a folder, marked shared with every member of the workspace or not.
    pub async fn create_folder_marked(
        &self,
        caller: &Caller,
        name: &str,
        parent: Option<FolderId>,
        on_conflict: OnConflict,
        is_shared: bool,
    ) -> Result<Folder> {
        caller.require(Role::Write)?;
        let ws = &caller.workspace_id;
        let name = validate_name(name)?;
        if let Some(parent) = &parent {
            self.live_folder(ws, parent).await?;
        }
        let now = self.clock.now();
        let mut folder = Folder {
            workspace_id: ws.clone(),
            id: FolderId::generate(),
            parent_id: parent,
            name: name.clone(),
            is_favorite: false,
            is_shared,
            trashed_at: None,
            created_at: now,
            updated_at: now,
        };
        for attempt in 1..=RENAME_ATTEMPTS {
            match self.store.insert_folder(&folder).await {
                Ok(()) => return Ok(folder),
                Err(err) if is_name_taken(&err) && on_conflict == OnConflict::Rename => {
                    folder.name = numbered(&name, attempt + 1);
                }
                Err(err) => return Err(err),
            }
        }
        Err(Error::conflict(Code::NameTaken, "no free variant of that name was found"))
    }

    /// A folder with its path from the root.
    pub async fn get_folder(&self, caller: &Caller, id: &FolderId) -> Result<FolderDetails> {
        caller.require(Role::Read)?;
        let path = self.store.folder_path(&caller.workspace_id, id).await?;
        let folder = path.last().cloned().ok_or(Error::NotFound("folder"))?;
        Ok(FolderDetails { folder, path })
    }

    /// Renames, moves (never into its own subtree) or marks a folder.
    pub async fn update_folder(
        &self,
        caller: &Caller,
        id: &FolderId,
        mut change: FolderChange,
        on_conflict: OnConflict,
    ) -> Result<Folder> {
        caller.require(Role::Write)?;
        let ws = &caller.workspace_id;
        let current = self.live_folder(ws, id).await?;
        if let Some(name) = &change.name {
            change.name = Some(validate_name(name)?);
        }
        if let Some(Some(parent)) = &change.parent {
            if parent == id {
                return Err(Error::conflict(Code::FolderCycle, "a folder cannot be moved into itself"));
            }
            self.live_folder(ws, parent).await?;
        }
        let base = change.name.clone().unwrap_or(current.name.clone());
        for attempt in 1..=RENAME_ATTEMPTS {
            match self.store.update_folder(ws, id, &change, self.clock.now()).await {
                Err(err) if is_name_taken(&err) && on_conflict == OnConflict::Rename => {
                    change.name = Some(numbered(&base, attempt + 1));
                }
                other => return other,
            }
        }
        Err(Error::conflict(Code::NameTaken, "no free variant of that name was found"))
    }

    /// Flips a folder's favorite mark; returns the new state.
    pub async fn toggle_folder_favorite(&self, caller: &Caller, id: &FolderId) -> Result<Folder> {
        caller.require(Role::Write)?;
        let current = self.live_folder(&caller.workspace_id, id).await?;
        let change = FolderChange { is_favorite: Some(!current.is_favorite), ..Default::default() };
        self.store.update_folder(&caller.workspace_id, id, &change, self.clock.now()).await
    }

    /// Folders, filtered and paged.
    pub async fn list_folders(
        &self,
        caller: &Caller,
        filter: FolderFilter,
        sort: Sort,
        paging: Paging,
    ) -> Result<Page<Folder>> {
        caller.require(Role::Read)?;
        check_name_filter(filter.name_contains.as_deref())?;
        self.check_scope(&caller.workspace_id, &filter.parent).await?;
        let mut fetch = paging.clone();
        fetch.limit += 1;
        let (items, total) = self.store.list_folders(&caller.workspace_id, &filter, sort, &fetch).await?;
        Ok(into_page(items, &paging, sort, total))
    }

    /// A folder's direct children: folders and files, each sorted and paged alike.
    pub async fn folder_contents(
        &self,
        caller: &Caller,
        id: Option<&FolderId>,
        sort: Sort,
        paging: Paging,
    ) -> Result<FolderContents> {
        caller.require(Role::Read)?;
        let scope = match id {
            Some(id) => {
                self.live_folder(&caller.workspace_id, id).await?;
                FolderScope::In(id.clone())
            }
            None => FolderScope::Root,
        };
        let folders = self
            .list_folders(
                caller,
                FolderFilter { parent: scope.clone(), ..Default::default() },
                sort,
                paging.clone(),
            )
            .await?;
        let files =
            self.list_files(caller, FileFilter { folder: scope, ..Default::default() }, sort, paging).await?;
        Ok(FolderContents { folders, files })
    }

    /// Deletes a folder: to the trash with everything below it. A folder that holds anything
    /// needs `recursive`; one whose files are in use needs `force`; `permanent` purges at once.
    pub async fn delete_folder(
        &self,
        caller: &Caller,
        id: &FolderId,
        recursive: bool,
        force: bool,
        permanent: bool,
    ) -> Result<Folder> {
        caller.require(Role::Write)?;
        let ws = &caller.workspace_id;
        let folder = self.store.get_folder(ws, id).await?;
        if folder.trashed_at.is_none() {
            if !recursive && !self.store.folder_is_empty(ws, id).await? {
                return Err(Error::conflict(
                    Code::FolderNotEmpty,
                    "the folder is not empty; pass recursive=true to delete it with its contents",
                ));
            }
            if !force {
                let used = self.store.references_in_folder(ws, id).await?;
                if !used.is_empty() {
                    return Err(Error::conflict(
                        Code::FileInUse,
                        format!(
                            "{} file(s) in this folder are in use; pass force=true to delete anyway",
                            used.len()
                        ),
                    ));
                }
            }
        } else if !permanent {
            return Err(Error::NotFound("folder"));
        }
        if permanent {
            let purged = self.store.purge_folder(ws, id, self.clock.now()).await?;
            self.hot.forget_workspace(ws);
            for file in &purged {
                self.delete_blob_quietly(&file.blob_key).await;
            }
            tracing::info!(workspace = %ws, folder = %id, files = purged.len(), "folder purged");
            return Ok(folder);
        }
        let trashed = self.store.trash_folder(ws, id, self.clock.now()).await?;
        self.hot.forget_workspace(ws);
        tracing::info!(workspace = %ws, folder = %id, "folder trashed");
        Ok(trashed)
    }

    /// Brings a trashed folder back with what was trashed along with it.
    pub async fn restore_folder(&self, caller: &Caller, id: &FolderId) -> Result<(Folder, RestoreNote)> {
        caller.require(Role::Write)?;
        let ws = &caller.workspace_id;
        let folder = self.store.get_folder(ws, id).await?;
        if folder.trashed_at.is_none() {
            return Err(Error::conflict(Code::NotInTrash, "the folder is not in the trash"));
        }
        let mut note = RestoreNote::default();
        let parent = self.make_place(ws, folder.parent_id.as_ref(), &mut note).await?;
        let restored = match self.restore_named(ws, &folder, parent.as_ref(), true, &mut note).await {
            // Its old parent went deeper meanwhile, so it would no longer fit below it.
            Err(err) if parent.is_some() && err.code() == Code::FolderTooDeep => {
                note.restored_to_root = true;
                self.restore_named(ws, &folder, None, true, &mut note).await?
            }
            other => other?,
        };
        Ok((restored, note))
    }

    /// Restores one folder under `parent`, renaming it if its name was taken meanwhile.
    async fn restore_named(
        &self,
        ws: &crate::WorkspaceId,
        folder: &Folder,
        parent: Option<&FolderId>,
        with_contents: bool,
        note: &mut RestoreNote,
    ) -> Result<Folder> {
        let mut name = folder.name.clone();
        for attempt in 1..=RENAME_ATTEMPTS {
            match self
                .store
                .restore_folder(ws, &folder.id, parent, &name, with_contents, self.clock.now())
                .await
            {
                Ok(restored) => {
                    if name != folder.name {
                        note.renamed_to = Some(name);
                    }
                    return Ok(restored);
                }
                Err(err) if is_name_taken(&err) => name = numbered(&folder.name, attempt + 1),
                Err(err) => return Err(err),
            }
        }
        Err(Error::conflict(Code::NameTaken, "no free variant of the folder's name was found"))
    }

    /// Makes sure `parent` is a live folder to restore into: trashed ancestors are brought back
    /// (alone, not their other contents); a purged one means the root. Returns where to restore.
    pub(crate) async fn make_place(
        &self,
        ws: &crate::WorkspaceId,
        parent: Option<&FolderId>,
        note: &mut RestoreNote,
    ) -> Result<Option<FolderId>> {
        let Some(parent) = parent else { return Ok(None) };
        let path = match self.store.folder_path(ws, parent).await {
            Ok(path) => path,
            Err(err) if matches!(err, Error::NotFound(_)) || err.code() == Code::FolderTooDeep => {
                note.restored_to_root = true;
                return Ok(None);
            }
            Err(err) => return Err(err),
        };
        // A chain whose top lost its own parent cannot be rebuilt above that point.
        if path.first().is_some_and(|top| top.parent_id.is_some()) {
            note.restored_to_root = true;
            return Ok(None);
        }
        let mut above: Option<FolderId> = None;
        for folder in &path {
            if folder.trashed_at.is_some() {
                let mut inner = RestoreNote::default();
                self.restore_named(ws, folder, above.as_ref(), false, &mut inner).await?;
                note.recreated_folders.push(folder.id.clone());
            }
            above = Some(folder.id.clone());
        }
        Ok(Some(parent.clone()))
    }

    /// A folder that exists and is not in the trash.
    pub(crate) async fn live_folder(&self, ws: &crate::WorkspaceId, id: &FolderId) -> Result<Folder> {
        let folder = self.store.get_folder(ws, id).await?;
        if folder.trashed_at.is_some() {
            return Err(Error::NotFound("folder"));
        }
        Ok(folder)
    }
}
