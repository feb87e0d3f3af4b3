//! Operator actions: workspaces and API keys. Secrets are generated here, returned once, and
//! stored only as their hash.

use rand::distributions::Alphanumeric;
use rand::Rng;

use crate::access::{hash_secret, KEY_PREFIX};
use crate::error::{Error, Result};
use crate::ids::{ApiKeyId, WorkspaceId};
use crate::model::{ApiKey, Role, Workspace};
use crate::names::validate_name;
use crate::{Cabinet, Code};

/// The name of the workspace created on first start.
pub const DEFAULT_WORKSPACE: &str = "default";

/// What an operator sets when creating a workspace.
#[derive(Debug, Clone, Default)]
pub struct NewWorkspace {
    pub name: String,
    pub limit_bytes: Option<u64>,
    pub max_file_bytes: Option<u64>,
}

/// A key and its secret, which exists only in this value.
#[derive(Debug, Clone)]
pub struct IssuedKey {
    pub key: ApiKey,
    pub secret: String,
}

/// What the first start creates.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    pub workspace: Workspace,
    pub key: IssuedKey,
}

impl Cabinet {
    /// Creates a workspace.
    pub async fn create_workspace(&self, request: NewWorkspace) -> Result<Workspace> {
        let name = validate_name(&request.name)?;
        let workspace = Workspace {
            id: WorkspaceId::generate(),
            name,
            limit_bytes: request.limit_bytes,
            max_file_bytes: request.max_file_bytes,
            used_bytes: 0,
            reserved_bytes: 0,
            created_at: self.clock.now(),
        };
        self.store.create_workspace(&workspace).await?;
        Ok(workspace)
    }

    /// Every workspace.
    pub async fn list_workspaces(&self) -> Result<Vec<Workspace>> {
        self.store.list_workspaces().await
    }

    /// One workspace with its ledger.
    pub async fn workspace(&self, id: &WorkspaceId) -> Result<Workspace> {
        self.store.get_workspace(id).await
    }

    /// Deletes a workspace and everything of its own. Refused (`workspace_not_empty`) while it
    /// holds a file or folder out of the trash, as S3 refuses to delete a bucket with objects in
    /// it; what is in its trash is purged first (deleted things are on their way out, and S3
    /// deletes through Cabinet go to the trash), then its uploads in progress end with it, its
    /// keys lose it (a key of no other workspace is revoked) and its S3 keys, webhooks, events,
    /// rules and ledger go, in one transaction. The bytes of those uploads are removed after it;
    /// what arrives for them later is left to the orphan sweep. The audit log keeps its records.
    pub async fn delete_workspace(&self, id: &WorkspaceId) -> Result<Workspace> {
        let workspace = self.store.get_workspace(id).await?;
        if self.store.workspace_has_live_items(id).await? {
            return Err(Error::conflict(
                Code::WorkspaceNotEmpty,
                "the workspace holds files or folders; delete them first",
            ));
        }
        self.purge_trash_of(id).await?;
        let uploads = self.store.delete_workspace(id, self.clock.now()).await?;
        self.hot.forget_workspace(id);
        for upload in &uploads {
            self.remove_parts_quietly(upload).await;
            self.remove_segments(upload).await;
            self.delete_blob_quietly(&upload.blob_key).await;
        }
        tracing::info!(workspace = %id, name = %workspace.name, uploads_ended = uploads.len(), "workspace deleted");
        Ok(workspace)
    }

    /// Issues a key for one or more workspaces; the secret is in the result and nowhere else.
    pub async fn create_api_key(
        &self,
        workspaces: Vec<WorkspaceId>,
        role: Role,
        name: Option<String>,
    ) -> Result<IssuedKey> {
        if workspaces.is_empty() {
            return Err(Error::bad_request(Code::WorkspaceRequired, "a key needs at least one workspace"));
        }
        for ws in &workspaces {
            self.store.get_workspace(ws).await?;
        }
        let name = name.map(|name| validate_name(&name)).transpose()?;
        let random: String = rand::rngs::OsRng.sample_iter(&Alphanumeric).take(40).map(char::from).collect();
        let secret = format!("{KEY_PREFIX}{random}");
        let key = ApiKey {
            id: ApiKeyId::generate(),
            name,
            role,
            workspaces,
            hint: secret[secret.len() - 4..].to_owned(),
            created_at: self.clock.now(),
            revoked_at: None,
        };
        self.store.create_api_key(&key, &hash_secret(&secret)).await?;
        Ok(IssuedKey { key, secret })
    }

    /// The keys of a workspace (never their secrets).
    pub async fn list_api_keys(&self, workspace: &WorkspaceId) -> Result<Vec<ApiKey>> {
        self.store.get_workspace(workspace).await?;
        self.store.list_api_keys(workspace).await
    }

    /// Revokes a key; requests with it fail from now on.
    pub async fn revoke_api_key(&self, id: &ApiKeyId) -> Result<()> {
        self.store.revoke_api_key(id, self.clock.now()).await
    }

    /// On a store with no workspace, creates `default` and an admin key for it.
    pub async fn bootstrap_if_empty(&self) -> Result<Option<Bootstrap>> {
        if !self.store.list_workspaces().await?.is_empty() {
            return Ok(None);
        }
        let workspace = self
            .create_workspace(NewWorkspace { name: DEFAULT_WORKSPACE.to_owned(), ..Default::default() })
            .await?;
        let key = self
            .create_api_key(vec![workspace.id.clone()], Role::Admin, Some("bootstrap admin".to_owned()))
            .await?;
        Ok(Some(Bootstrap { workspace, key }))
    }
}
