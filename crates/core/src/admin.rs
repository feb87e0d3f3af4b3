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
