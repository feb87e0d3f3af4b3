//! Who is calling: API keys are looked up by the hash of their secret, end users carry a short-lived
//! token an app's backend minted for them, and a caller acts on exactly one workspace. Key roles
//! are checked here; what end users may do with files is decided by the access rules (`rules`).

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::ids::{ApiKeyId, WorkspaceId};
use crate::model::Role;
use crate::{Cabinet, Code};

/// The prefix of every API key secret, so leaked keys are recognisable by secret scanners.
pub const KEY_PREFIX: &str = "cab_";
const MAX_SECRET_LEN: usize = 256;

/// Who is behind a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// An API key: the app itself, with a role.
    Key { id: ApiKeyId, role: Role },
    /// One of the app's users, by the `sub` its backend gave them.
    EndUser { sub: String },
    /// Nobody: only what is public.
    Anonymous,
}

/// A caller acting on one workspace.
#[derive(Debug, Clone)]
pub struct Caller {
    pub workspace_id: WorkspaceId,
    pub actor: Actor,
}

impl Caller {
    /// Refuses with 403 unless the caller is a key whose role includes `needed`. End users and
    /// anonymous callers only reach files, through the access rules.
    pub fn require(&self, needed: Role) -> Result<()> {
        match &self.actor {
            Actor::Key { role, .. } if *role >= needed => Ok(()),
            Actor::Key { role, .. } => Err(Error::Forbidden(format!(
                "this key has the {} role; this needs {}",
                role.as_str(),
                needed.as_str()
            ))),
            Actor::EndUser { .. } | Actor::Anonymous => {
                Err(Error::Forbidden("this needs an API key; end-user tokens reach files only".to_owned()))
            }
        }
    }

    /// The end user's `sub`, when an end user is calling.
    pub fn end_user(&self) -> Option<&str> {
        match &self.actor {
            Actor::EndUser { sub } => Some(sub),
            _ => None,
        }
    }
}

/// The stored form of a secret.
pub fn hash_secret(secret: &str) -> String {
    // Into a buffer: `hex::encode` collects its digits a `char` at a time, ~2,000 instructions on
    // every keyed request.
    let mut digits = [0u8; 64];
    hex::encode_to_slice(Sha256::digest(secret.as_bytes()), &mut digits).expect("64 digits for 32 bytes");
    String::from_utf8(digits.to_vec()).expect("hex digits are ASCII")
}

/// A secret that checked out, before the request has said which workspace it acts on: a surface
/// whose workspace is named in the body checks the key with this first, and reads the body only
/// then.
#[derive(Debug, Clone)]
pub struct Credential(CredentialKind);

#[derive(Debug, Clone)]
enum CredentialKind {
    Key {
        id: ApiKeyId,
        role: Role,
        workspaces: Vec<WorkspaceId>,
    },
    /// An end-user token names its one workspace itself.
    EndUser(Caller),
}

impl Credential {
    /// The caller acting on the workspace the request names (or the key's only one). A workspace
    /// outside the key's scope is 404, exactly as an unknown one.
    pub fn caller(self, requested: Option<&str>) -> Result<Caller> {
        match self.0 {
            CredentialKind::EndUser(caller) => {
                if requested.is_some_and(|ws| ws != caller.workspace_id.as_str()) {
                    return Err(Error::NotFound("workspace"));
                }
                crate::audit::note_caller(&caller);
                Ok(caller)
            }
            CredentialKind::Key { id, role, workspaces } => {
                let workspace_id = match requested {
                    Some(raw) => {
                        let id = WorkspaceId::parse(raw)?;
                        if !workspaces.contains(&id) {
                            return Err(Error::NotFound("workspace"));
                        }
                        id
                    }
                    None => match workspaces.as_slice() {
                        [only] => only.clone(),
                        _ => {
                            return Err(Error::bad_request(
                                Code::WorkspaceRequired,
                                "this key can act on several workspaces; name one with workspace_id",
                            ))
                        }
                    },
                };
                let caller = Caller { workspace_id, actor: Actor::Key { id, role } };
                crate::audit::note_caller(&caller);
                Ok(caller)
            }
        }
    }
}

impl Cabinet {
    /// Checks a bearer secret (an API key or an end-user token) without choosing a workspace.
    /// Any failure is 401.
    pub async fn check_secret(&self, secret: &str) -> Result<Credential> {
        if secret.starts_with(crate::rules::TOKEN_PREFIX) {
            return Ok(Credential(CredentialKind::EndUser(self.verify_end_user_token(secret).await?)));
        }
        if secret.is_empty() || secret.len() > MAX_SECRET_LEN {
            return Err(Error::Unauthenticated("invalid API key"));
        }
        let key = self
            .store
            .find_api_key(&hash_secret(secret))
            .await?
            .ok_or(Error::Unauthenticated("invalid API key"))?;
        if key.revoked_at.is_some() {
            return Err(Error::KeyRevoked);
        }
        Ok(Credential(CredentialKind::Key { id: key.id, role: key.role, workspaces: key.workspaces }))
    }

    /// Who presents `secret`, as far as can be told without a lookup: a signed, unexpired end-user
    /// token is its end user (workspace and `sub`), any other secret the key it would be (by its
    /// hash, so every spelling of one key is one holder). `None` for what cannot be a credential (a
    /// token that fails its signature, an over-long secret).
    pub fn holder_of(&self, secret: &str) -> Option<String> {
        if secret.starts_with(crate::rules::TOKEN_PREFIX) {
            let caller = self.end_user_of_token(secret)?;
            return Some(format!("user:{}:{}", caller.workspace_id, caller.end_user().unwrap_or_default()));
        }
        (!secret.is_empty() && secret.len() <= MAX_SECRET_LEN).then(|| format!("key:{}", hash_secret(secret)))
    }

    /// Resolves a bearer secret and the workspace the request names (or the key's only one).
    /// Any failure about the key is 401; a workspace outside the key's scope is 404, exactly as
    /// an unknown one.
    pub async fn authenticate(&self, secret: &str, requested: Option<&str>) -> Result<Caller> {
        self.check_secret(secret).await?.caller(requested)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_stored_as_its_sha256_in_lowercase_hex() {
        assert_eq!(hash_secret("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(hash_secret(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
}
