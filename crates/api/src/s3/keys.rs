//! The secrets SigV4 checks signatures with: the S3 key's, unsealed by the core.

use s3s::auth::{S3Auth, SecretKey};
use s3s::{s3_error, S3Result};

use super::{s3_error_of, S3Surface};

/// Looks up the secret of an access key (unknown and revoked keys answer alike).
pub(super) struct KeyLookup(pub(super) S3Surface);

#[async_trait::async_trait]
impl S3Auth for KeyLookup {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.0.cabinet.s3_key_with_secret(&self.0.sealer, access_key).await {
            Ok((_, secret)) => Ok(SecretKey::from(secret)),
            Err(cabinet_core::Error::Unauthenticated(_)) => {
                Err(s3_error!(InvalidAccessKeyId, "the access key id does not exist or was revoked"))
            }
            Err(err) => Err(s3_error_of(err)),
        }
    }
}
