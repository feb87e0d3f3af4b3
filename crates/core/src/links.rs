//! URLs that clients keep: public URLs of files anyone may read, permalinks of private files, and
//! the signing keys and link generations that decide how long either works.
//!
//! - A **public URL** names the file and its content version; it needs no signature (the file's
//!   read rule is `public`), so it is served as immutable and answers 404 once the file is trashed,
//!   its rule closes, or the version it names is not the file's.
//! - A **permalink** is a signed download URL without an expiry: it names the file's content
//!   version and its workspace's link generation, and works while the file is live, the version is
//!   the file's, the generation is the workspace's current one and its signing key is not retired.
//!   Revoking a workspace's links moves the generation on and ends every permalink it had.
//! - **Signing keys** rotate: a new key signs from then on, older ones keep verifying until they are
//!   retired. Nodes read the keys at start, every `signing_key_refresh`, and when a URL names a key
//!   they do not hold (at most once a second, so unknown key ids cannot make each request a read).

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use rand::RngCore;

use crate::error::{Error, Result};
use crate::ids::{FileId, FolderId, UploadId, WorkspaceId};
use crate::model::{FileRecord, Role, Upload, UploadStatus};
use crate::rules::{resolve, AccessRules, Audience, RuleTarget};
use crate::signing::{
    content_version, is_permalink_query, PermalinkParams, SignedOperation, SigningKeyRecord,
};
use crate::{Cabinet, Caller, STORAGE_FILE_PREFIX};

/// Where files anyone may read are served, by version: `{prefix}/{ws}/{file}/{version}`.
pub const PUBLIC_FILE_PREFIX: &str = "/public/v1/files";

/// The shortest time between two reads of the signing keys caused by URLs naming unknown keys.
const UNKNOWN_KEY_REFRESH_GAP: std::time::Duration = std::time::Duration::from_secs(1);

/// How a response to a URL may be cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caching {
    /// An expiring URL: privately, for as long as the URL still works (seconds).
    PrivateFor(u64),
    /// A permalink: privately, revalidated each time (it ends when the file or its links do).
    PrivateRevalidated,
    /// A versioned public URL: by anyone, for a year; its bytes never change.
    PublicImmutable,
    /// The unversioned public URL: by anyone, revalidated each time (the rule may close).
    PublicRevalidated,
}

impl Caching {
    /// The `Cache-Control` value.
    pub fn header_value(self) -> String {
        match self {
            Caching::PrivateFor(secs) => format!("private, max-age={secs}"),
            Caching::PrivateRevalidated => "private, no-cache".to_owned(),
            Caching::PublicImmutable => "public, max-age=31536000, immutable".to_owned(),
            Caching::PublicRevalidated => "public, no-cache".to_owned(),
        }
    }
}

/// A file read at a signed URL: the file, whether to serve it as an attachment, and its caching.
#[derive(Debug, Clone)]
pub struct SignedRead {
    pub file: FileRecord,
    pub attachment: bool,
    pub caching: Caching,
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The new key, which signs from now on.
    pub key_id: u32,
    /// How many older keys were retired with it.
    pub retired: u64,
}

/// The state of a node's key reads.
#[derive(Debug)]
pub(crate) struct KeyReads {
    last_unknown_key_read: std::sync::Mutex<Option<Instant>>,
}

impl Default for KeyReads {
    fn default() -> Self {
        Self { last_unknown_key_read: std::sync::Mutex::new(None) }
    }
}

/// Which of a set of files anyone may read, with the service to build their URLs: what a surface
/// needs to render files with their links.
#[derive(Clone)]
pub struct FileLinks {
    cabinet: Cabinet,
    public: HashSet<FileId>,
}

impl FileLinks {
    /// The public URL of a file anyone may read, or `None`.
    pub fn public_url(&self, file: &FileRecord) -> Option<String> {
        self.public.contains(&file.id).then(|| self.cabinet.public_url_of(file))
    }

    /// A signed URL of the file's default thumbnail (see `Cabinet::thumbnail_url`).
    pub fn thumbnail_url(&self, file: &FileRecord) -> Option<String> {
        self.cabinet.thumbnail_url(file)
    }
}

impl Cabinet {
    /// Reads the signing keys from the store: those not retired verify, the newest signs.
    pub async fn refresh_signing_keys(&self) -> Result<()> {
        let keys = self.store.signing_keys().await?;
        self.signer.install(&keys);
        Ok(())
    }

    /// Every signing key, retired or not.
    pub async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        self.store.signing_keys().await
    }

    /// Adds a signing key, which signs from now on on every node (within `signing_key_refresh`);
    /// older keys keep verifying unless `retire`, which ends every URL they signed.
    pub async fn rotate_signing_key(&self, retire: bool) -> Result<Rotation> {
        let mut attempts = 0;
        let key_id = loop {
            let mut salt = [0u8; 16];
            rand::rngs::OsRng.fill_bytes(&mut salt);
            match self.store.add_signing_key(&hex::encode(salt), self.clock.now()).await {
                Ok(id) => break id,
                // Another node rotated at the same moment: take the next id.
                Err(Error::Conflict { .. }) if attempts < 3 => attempts += 1,
                Err(err) => return Err(err),
            }
        };
        let retired =
            if retire { self.store.retire_signing_keys_before(key_id, self.clock.now()).await? } else { 0 };
        self.refresh_signing_keys().await?;
        tracing::info!(key_id, retired, "signing key rotated");
        Ok(Rotation { key_id, retired })
    }

    /// Retires every signing key but the newest: every URL they signed stops working.
    pub async fn retire_old_signing_keys(&self) -> Result<u64> {
        let newest = self.store.signing_keys().await?.iter().map(|key| key.id).max().unwrap_or(0);
        let retired = self.store.retire_signing_keys_before(newest, self.clock.now()).await?;
        self.refresh_signing_keys().await?;
        tracing::info!(newest, retired, "older signing keys retired");
        Ok(retired)
    }

    /// When a URL names a key this node does not hold, reads the keys again (at most once a
    /// second): it may have been added on another node since.
    pub(crate) async fn learn_keys_named_by(&self, query: Option<&str>) {
        if !self.signer.names_unknown_key(query) {
            return;
        }
        {
            let mut last = self.key_reads.last_unknown_key_read.lock().expect("never poisoned");
            if last.is_some_and(|at| at.elapsed() < UNKNOWN_KEY_REFRESH_GAP) {
                return;
            }
            *last = Some(Instant::now());
        }
        if let Err(err) = self.refresh_signing_keys().await {
            tracing::warn!(error = %err, "reading the signing keys failed");
        }
    }

    /// A permalink to a file: a signed download URL that works while the file is live, has these
    /// bytes, and the workspace's links are not revoked.
    pub async fn permalink_of(&self, caller: &Caller, file: &FileRecord, attachment: bool) -> Result<String> {
        let ws = &caller.workspace_id;
        if file.workspace_id != *ws || file.trashed_at.is_some() {
            return Err(Error::NotFound("file"));
        }
        self.authorize_file(caller, file, crate::rules::Operation::Read).await?;
        let generation = self.store.link_generation(ws).await?;
        Ok(self.permalink_in_generation(file, generation, attachment))
    }

    /// A permalink to a file the caller may read, in a generation already read (for lists).
    pub(crate) fn permalink_in_generation(
        &self,
        file: &FileRecord,
        generation: u64,
        attachment: bool,
    ) -> String {
        let attachment = attachment || crate::content_type::is_active_content(&file.mime_type);
        let params = PermalinkParams {
            version: Some(content_version(&file.sha256).to_owned()),
            generation,
            attachment,
        };
        let ws = &file.workspace_id;
        let query = self.signer.sign_permalink(ws.as_str(), file.id.as_str(), &params);
        self.storage_file_url(ws, file.id.as_str(), &query)
    }

    /// Permalinks for files the caller already holds and may read (a page of a list), with one
    /// read of the workspace's link generation.
    pub async fn permalinks_of(
        &self,
        caller: &Caller,
        files: &[FileRecord],
    ) -> Result<HashMap<FileId, String>> {
        if files.is_empty() {
            return Ok(HashMap::new());
        }
        let generation = self.store.link_generation(&caller.workspace_id).await?;
        let mut links = HashMap::new();
        for file in files {
            if file.workspace_id == caller.workspace_id && file.trashed_at.is_none() {
                self.authorize_file(caller, file, crate::rules::Operation::Read).await?;
                links.insert(file.id.clone(), self.permalink_in_generation(file, generation, false));
            }
        }
        Ok(links)
    }

    /// A permalink to the file an upload will make, for clients that keep the URL they are given
    /// before the bytes arrive: 404 until the upload succeeds, then the file's bytes while it is
    /// live, until the workspace's links are revoked.
    pub async fn permalink_of_upload(&self, upload: &Upload) -> Result<String> {
        let ws = &upload.workspace_id;
        let generation = self.store.link_generation(ws).await?;
        let params = PermalinkParams { version: None, generation, attachment: false };
        let query = self.signer.sign_permalink(ws.as_str(), upload.id.as_str(), &params);
        Ok(self.storage_file_url(ws, upload.id.as_str(), &query))
    }

    /// The file an upload made, once it succeeded; `NotFound` before.
    async fn file_of_upload(&self, ws: &WorkspaceId, upload: &UploadId) -> Result<FileId> {
        let upload = self.store.get_upload(ws, upload).await?;
        if upload.status != UploadStatus::Success {
            return Err(Error::NotFound("file"));
        }
        Ok(upload.file_id)
    }

    /// A URL of Cabinet's own storage endpoint for a file (or the upload that makes one), with its
    /// signed query.
    pub(crate) fn storage_file_url(&self, ws: &WorkspaceId, object: &str, query: &str) -> String {
        format!("{}{STORAGE_FILE_PREFIX}/{ws}/{object}?{query}", self.url_base())
    }

    /// Ends every permalink of the caller's workspace (admin key only); returns the new generation.
    pub async fn revoke_links(&self, caller: &Caller) -> Result<u64> {
        caller.require(Role::Admin)?;
        self.revoke_workspace_links(&caller.workspace_id).await
    }

    /// The same, for the operator (`cabinet admin revoke-links`), who holds no key.
    pub async fn revoke_workspace_links(&self, ws: &WorkspaceId) -> Result<u64> {
        let generation = self.store.advance_link_generation(ws).await?;
        tracing::info!(workspace = %ws, generation, "links revoked");
        Ok(generation)
    }

    /// Checks a signed download URL (expiring or permalink) and returns what it reads.
    pub async fn verify_download_url(&self, ws: &str, file: &str, query: Option<&str>) -> Result<SignedRead> {
        self.learn_keys_named_by(query).await;
        if is_permalink_query(query) {
            let params = self.signer.verify_permalink(ws, file, query)?;
            let ws = WorkspaceId::parse(ws)?;
            // A permalink handed out with an upload names the upload: its file once it succeeded.
            let id = match UploadId::parse(file) {
                Ok(upload) => self.file_of_upload(&ws, &upload).await?,
                Err(_) => FileId::parse(file)?,
            };
            let record = self.live_file(&ws, &id).await?;
            let version_holds =
                params.version.as_deref().is_none_or(|version| version == content_version(&record.sha256));
            if !version_holds || self.store.link_generation(&ws).await? != params.generation {
                return Err(Error::NotFound("file"));
            }
            return Ok(SignedRead {
                file: record,
                attachment: params.attachment,
                caching: Caching::PrivateRevalidated,
            });
        }
        let now = self.clock.now();
        let params = self.signer.verify(SignedOperation::Download, ws, file, query, now)?;
        let ws = WorkspaceId::parse(ws)?;
        let id = FileId::parse(file)?;
        let record = match self.hot.record(&ws, &id) {
            Some(record) => record,
            None => {
                let record = self.live_file(&ws, &id).await?;
                self.hot.keep_record(&record);
                record
            }
        };
        // Whole seconds the URL still works: a cache never keeps it past its expiry.
        let left = ((params.expires * 1000 - now.timestamp_millis()) / 1000).max(0) as u64;
        Ok(SignedRead { file: record, attachment: params.attachment, caching: Caching::PrivateFor(left) })
    }

    /// The versioned public URL of a file (whether or not anyone may read it now).
    pub fn public_url_of(&self, file: &FileRecord) -> String {
        format!(
            "{}{PUBLIC_FILE_PREFIX}/{}/{}/{}",
            self.url_base(),
            file.workspace_id,
            file.id,
            content_version(&file.sha256)
        )
    }

    /// A file anyone may read, at the version a public URL names; `NotFound` when the file is
    /// trashed, not public, or has other bytes.
    pub async fn public_file_at_version(&self, ws: &str, file: &str, version: &str) -> Result<FileRecord> {
        let record = self.public_file(ws, file).await?;
        if content_version(&record.sha256) != version {
            return Err(Error::NotFound("file"));
        }
        Ok(record)
    }

    /// Which of these files of the caller's workspace anyone may read, with the service to build
    /// their URLs: a few reads for the whole set (the rules of the files, of their folders' paths
    /// and of the workspace).
    pub async fn links_for(&self, ws: &WorkspaceId, files: &[FileRecord]) -> Result<FileLinks> {
        let public = self.publicly_readable(ws, files).await?;
        Ok(FileLinks { cabinet: self.clone(), public })
    }

    /// The links of one file.
    pub async fn links_for_one(&self, file: &FileRecord) -> Result<FileLinks> {
        self.links_for(&file.workspace_id, std::slice::from_ref(file)).await
    }

    async fn publicly_readable(&self, ws: &WorkspaceId, files: &[FileRecord]) -> Result<HashSet<FileId>> {
        let files: Vec<&FileRecord> =
            files.iter().filter(|f| f.workspace_id == *ws && f.trashed_at.is_none()).collect();
        // One indexed probe settles most workspaces: nothing there opens reading to the public.
        if files.is_empty() || !self.store.any_public_read(ws).await? {
            return Ok(HashSet::new());
        }
        // Each folder's path, nearest first as the rules resolve; `None` where it cannot be read
        // whole (its files are then not said to be public, as reading them would be refused).
        let mut paths: HashMap<FolderId, Option<Vec<FolderId>>> = HashMap::new();
        for folder in files.iter().filter_map(|f| f.folder_id.as_ref()) {
            if paths.contains_key(folder) {
                continue;
            }
            let path = match self.store.folder_path(ws, folder).await {
                Ok(path) => Some(path.into_iter().rev().map(|f| f.id).collect()),
                // A folder that is gone has no rules.
                Err(Error::NotFound(_)) => Some(Vec::new()),
                // A path too deep to read (a cycle only a bug could leave).
                Err(Error::Conflict { .. }) => None,
                Err(err) => return Err(err),
            };
            paths.insert(folder.clone(), path);
        }
        let mut targets: Vec<RuleTarget> = files.iter().map(|f| RuleTarget::File(f.id.clone())).collect();
        let folders: HashSet<&FolderId> = paths.values().flatten().flatten().collect();
        targets.extend(folders.into_iter().map(|f| RuleTarget::Folder(f.clone())));
        targets.push(RuleTarget::Workspace);
        let set = self.store.access_rules(ws, &targets).await?;
        let rules_of = |target: RuleTarget| set.get(&target).copied().unwrap_or_default();
        let mut public = HashSet::new();
        for file in files {
            let mut layers: Vec<AccessRules> = vec![rules_of(RuleTarget::File(file.id.clone()))];
            match file.folder_id.as_ref().map(|folder| paths.get(folder)) {
                Some(Some(Some(path))) => {
                    layers.extend(path.iter().map(|folder| rules_of(RuleTarget::Folder(folder.clone()))))
                }
                Some(_) => continue,
                None => {}
            }
            layers.push(rules_of(RuleTarget::Workspace));
            if resolve(&layers).read == Audience::Public {
                public.insert(file.id.clone());
            }
        }
        Ok(public)
    }
}
