//! Access keys of the S3 surface. Unlike API keys, whose secrets are stored as hashes, an S3 key's
//! secret must be recoverable: SigV4 signs with it, so the server recomputes each signature. It is
//! kept sealed (XChaCha20-Poly1305, the access key id as associated data, so a sealed secret
//! cannot be moved to another key's row) with a server key that never enters the database.
//!
//! A key belongs to one workspace (its bucket) with a role, or is an operator key (no workspace):
//! it reaches every bucket and may create and delete buckets.

use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use chrono::{DateTime, Utc};
use rand::distributions::Alphanumeric;
use rand::Rng;

use crate::error::{Error, Result};
use crate::ids::{ApiKeyId, WorkspaceId};
use crate::model::Role;
use crate::names::validate_name;
use crate::Cabinet;

/// Every access key id starts with this, so they are recognisable (AWS's start with `AKIA`).
pub const ACCESS_KEY_PREFIX: &str = "CAB";
const ACCESS_KEY_LEN: usize = 20;
const SECRET_LEN: usize = 40;

/// An S3 access key (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Key {
    /// What clients send as `aws_access_key_id`.
    pub access_key_id: String,
    /// The id the key acts under (per-key upload slots, logs), in the API key id space.
    pub id: ApiKeyId,
    /// The key's one workspace; `None` for an operator key.
    pub workspace_id: Option<WorkspaceId>,
    pub role: Role,
    pub name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl S3Key {
    /// Whether this is an operator key (every bucket, bucket creation and deletion).
    pub fn is_operator(&self) -> bool {
        self.workspace_id.is_none()
    }
}

/// A new key and its secret, which exists only in this value (and sealed in the store).
#[derive(Debug, Clone)]
pub struct IssuedS3Key {
    pub key: S3Key,
    pub secret: String,
}

/// The server key that seals the secrets the server must recover at rest (S3 secrets, webhook
/// signing secrets): 32 random bytes, kept outside the database (a file in the data folder, or
/// given to every node of a cluster).
#[derive(Clone)]
pub struct SecretSealer(Key);

impl std::fmt::Debug for SecretSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretSealer(..)")
    }
}

impl SecretSealer {
    /// A new random server key, as hex to be stored.
    pub fn generate_hex() -> String {
        hex::encode(XChaCha20Poly1305::generate_key(&mut OsRng))
    }

    /// The sealer of a server key given as 64 hexadecimal characters.
    pub fn from_hex(raw: &str) -> std::result::Result<Self, String> {
        let bytes =
            hex::decode(raw.trim()).map_err(|_| "the S3 secret key must be hexadecimal".to_owned())?;
        if bytes.len() != 32 {
            return Err("the S3 secret key must be 32 bytes (64 hexadecimal characters)".to_owned());
        }
        Ok(Self(*Key::from_slice(&bytes)))
    }

    /// Seals `secret` to the row it belongs to: `owner` (an access key id, a webhook id) is the
    /// associated data, so a sealed secret moved to another row does not open.
    pub(crate) fn seal(&self, owner: &str, secret: &str) -> Result<String> {
        let cipher = XChaCha20Poly1305::new(&self.0);
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = cipher
            .encrypt(&nonce, Payload { msg: secret.as_bytes(), aad: owner.as_bytes() })
            .map_err(|_| Error::internal("could not seal a secret"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(base64::engine::general_purpose::STANDARD.encode(out))
    }

    pub(crate) fn open(&self, owner: &str, sealed: &str) -> Result<String> {
        // A secret that does not open was sealed with another server key (or tampered with).
        let wrong_key = || {
            Error::internal("a sealed secret does not open with this server's secret key (--s3-secret-key)")
        };
        let raw = base64::engine::general_purpose::STANDARD.decode(sealed).map_err(|_| wrong_key())?;
        if raw.len() < 24 {
            return Err(wrong_key());
        }
        let (nonce, sealed) = raw.split_at(24);
        let cipher = XChaCha20Poly1305::new(&self.0);
        let secret = cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: owner.as_bytes() })
            .map_err(|_| wrong_key())?;
        String::from_utf8(secret).map_err(|_| wrong_key())
    }
}

fn random_text(len: usize, upper: bool) -> String {
    let text: String = rand::rngs::OsRng.sample_iter(&Alphanumeric).take(len).map(char::from).collect();
    if upper {
        text.to_ascii_uppercase()
    } else {
        text
    }
}

impl Cabinet {
    /// Issues an S3 key for one workspace (`Some`) or an operator key (`None`); the secret is in
    /// the result and, sealed, in the store.
    pub async fn create_s3_key(
        &self,
        sealer: &SecretSealer,
        workspace: Option<WorkspaceId>,
        role: Role,
        name: Option<String>,
    ) -> Result<IssuedS3Key> {
        if let Some(ws) = &workspace {
            self.store.get_workspace(ws).await?;
        }
        let name = name.map(|name| validate_name(&name)).transpose()?;
        let access_key_id =
            format!("{ACCESS_KEY_PREFIX}{}", random_text(ACCESS_KEY_LEN - ACCESS_KEY_PREFIX.len(), true));
        let secret = random_text(SECRET_LEN, false);
        let key = S3Key {
            access_key_id,
            id: ApiKeyId::generate(),
            // An operator key manages buckets: it acts as admin wherever it goes.
            role: if workspace.is_none() { Role::Admin } else { role },
            workspace_id: workspace,
            name,
            created_at: self.clock.now(),
            revoked_at: None,
        };
        let sealed = sealer.seal(&key.access_key_id, &secret)?;
        self.store.create_s3_key(&key, &sealed).await?;
        Ok(IssuedS3Key { key, secret })
    }

    /// The S3 keys of a workspace, or the operator keys (`None`); never their secrets.
    pub async fn list_s3_keys(&self, workspace: Option<&WorkspaceId>) -> Result<Vec<S3Key>> {
        if let Some(ws) = workspace {
            self.store.get_workspace(ws).await?;
        }
        self.store.list_s3_keys(workspace).await
    }

    /// Revokes an S3 key; requests signed with it fail from now on.
    pub async fn revoke_s3_key(&self, access_key_id: &str) -> Result<()> {
        self.store.revoke_s3_key(access_key_id, self.clock.now()).await
    }

    /// A live key and its secret, for verifying a signature. Unknown and revoked keys are one
    /// error, so a request cannot tell them apart.
    pub async fn s3_key_with_secret(
        &self,
        sealer: &SecretSealer,
        access_key_id: &str,
    ) -> Result<(S3Key, String)> {
        if access_key_id.is_empty() || access_key_id.len() > 128 {
            return Err(Error::Unauthenticated("invalid S3 access key"));
        }
        let (key, sealed) = self
            .store
            .find_s3_key(access_key_id)
            .await?
            .ok_or(Error::Unauthenticated("invalid S3 access key"))?;
        if key.revoked_at.is_some() {
            return Err(Error::Unauthenticated("invalid S3 access key"));
        }
        let secret = sealer.open(&key.access_key_id, &sealed)?;
        Ok((key, secret))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_server_key_and_its_access_key_id() {
        let sealer = SecretSealer::from_hex(&SecretSealer::generate_hex()).unwrap();
        let sealed = sealer.seal("CABAAAA", "the secret").unwrap();
        assert_eq!(sealer.open("CABAAAA", &sealed).unwrap(), "the secret");
        assert!(sealer.open("CABBBBB", &sealed).is_err(), "moved to another key's row");
        let other = SecretSealer::from_hex(&SecretSealer::generate_hex()).unwrap();
        assert!(other.open("CABAAAA", &sealed).is_err(), "another server key");
        assert!(!sealed.contains("the secret"));
    }

    #[test]
    fn a_server_key_must_be_32_bytes_of_hex() {
        assert!(SecretSealer::from_hex("abcd").is_err());
        assert!(SecretSealer::from_hex(&"zz".repeat(32)).is_err());
        assert!(SecretSealer::from_hex(&"ab".repeat(32)).is_ok());
    }
}
