//! Who is calling: API keys are looked up by the hash of their secret, and a caller acts on exactly
//! one workspace that its key is scoped to. Roles are checked here, nowhere else.

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::ids::{ApiKeyId, WorkspaceId};
use crate::model::Role;
use crate::Cabinet;

/// The prefix of every API key secret, so leaked keys are recognisable by secret scanners.
pub const KEY_PREFIX: &str = "cab_";
const MAX_SECRET_LEN: usize = 256;

/// An authenticated caller acting on one workspace.
#[derive(Debug, Clone)]
pub struct Caller {
    pub workspace_id: WorkspaceId,
    pub role: Role,
    pub key_id: ApiKeyId,
}

impl Caller {
    /// Refuses with 403 unless the caller's role includes `needed`.
    pub fn require(&self, needed: Role) -> Result<()> {
        if self.role >= needed {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "this key has the {} role; this needs {}",
                self.role.as_str(),
                needed.as_str()
            )))
        }
    }
}

/// The stored form of a secret.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl Cabinet {
    /// Resolves a bearer secret and the workspace the request names (or the key's only one).
    /// Any failure about the key is 401; a workspace outside the key's scope is 404, exactly as
    /// an unknown one.
    pub async fn authenticate(&self, secret: &str, requested: Option<&str>) -> Result<Caller> {
        if secret.is_empty() || secret.len() > MAX_SECRET_LEN {
            return Err(Error::Unauthenticated("invalid API key"));
        }
        let key = self
            .store
            .find_api_key(&hash_secret(secret))
            .await?
            .ok_or(Error::Unauthenticated("invalid API key"))?;
        if key.revoked_at.is_some() {
            return Err(Error::Unauthenticated("this API key has been revoked"));
        }
        let workspace_id = match requested {
            Some(raw) => {
                let id = WorkspaceId::parse(raw)?;
                if !key.workspaces.contains(&id) {
                    return Err(Error::NotFound("workspace"));
                }
                id
            }
            None => match key.workspaces.as_slice() {
                [only] => only.clone(),
                _ => {
                    return Err(Error::bad_request(
                        "workspace_required",
                        "this key can act on several workspaces; name one with workspace_id",
                    ))
                }
            },
        };
        Ok(Caller { workspace_id, role: key.role, key_id: key.id })
    }
}
