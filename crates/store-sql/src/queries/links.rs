//! Signing keys and link generations: what lasting URLs are checked against.

use cabinet_core::signing::SigningKeyRecord;
use cabinet_core::{Code, Error, Result, WorkspaceId};
use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, Type};

use crate::dialect::{Dialect, SqlStore, Value};
use crate::errors::db_error;
use crate::rows::{from_millis, millis};

#[async_trait::async_trait]
impl<D: Dialect> cabinet_core::LinkStore for SqlStore<D>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    for<'q> <D::Db as Database>::Arguments<'q>: IntoArguments<'q, D::Db>,
    for<'q> &'q str: Encode<'q, D::Db> + Type<D::Db> + ColumnIndex<<D::Db as Database>::Row>,
    usize: ColumnIndex<<D::Db as Database>::Row>,
    i64: Value<D::Db>,
    String: Value<D::Db>,
    Option<i64>: Value<D::Db>,
{
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        let rows: Vec<(i64, String, i64, Option<i64>)> =
            sqlx::query_as("SELECT id, salt, created_at, retired_at FROM signing_keys ORDER BY id")
                .fetch_all(self.read_pool())
                .await
                .map_err(db_error)?;
        rows.into_iter()
            .map(|(id, salt, created_at, retired_at)| {
                Ok(SigningKeyRecord {
                    id: u32::try_from(id)
                        .map_err(|_| Error::internal("a stored signing key id is out of range"))?,
                    salt,
                    created_at: from_millis(created_at)?,
                    retired_at: retired_at.map(from_millis).transpose()?,
                })
            })
            .collect()
    }

    async fn add_signing_key(&self, salt: &str, at: DateTime<Utc>) -> Result<u32> {
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO signing_keys (id, salt, created_at) \
             SELECT COALESCE(MAX(id), 0) + 1, $1, $2 FROM signing_keys RETURNING id",
        )
        .bind(salt)
        .bind(millis(at))
        .fetch_one(self.write_pool())
        .await
        .map_err(|err| match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                Error::conflict(Code::AlreadyExists, "another signing key was added at the same moment")
            }
            _ => db_error(err),
        })?;
        u32::try_from(id).map_err(|_| Error::internal("a stored signing key id is out of range"))
    }

    async fn retire_signing_keys_before(&self, id: u32, at: DateTime<Utc>) -> Result<u64> {
        let done =
            sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE id < $2 AND retired_at IS NULL")
                .bind(millis(at))
                .bind(i64::from(id))
                .execute(self.write_pool())
                .await
                .map_err(db_error)?;
        Ok(D::rows_affected(&done))
    }

    async fn link_generation(&self, ws: &WorkspaceId) -> Result<u64> {
        let row: Option<(i64,)> = sqlx::query_as("SELECT link_generation FROM workspaces WHERE id = $1")
            .bind(ws.as_str())
            .fetch_optional(self.read_pool())
            .await
            .map_err(db_error)?;
        let (generation,) = row.ok_or(Error::NotFound("workspace"))?;
        Ok(generation.max(0) as u64)
    }

    async fn advance_link_generation(&self, ws: &WorkspaceId) -> Result<u64> {
        let row: Option<(i64,)> = sqlx::query_as(
            "UPDATE workspaces SET link_generation = link_generation + 1 WHERE id = $1 RETURNING link_generation",
        )
        .bind(ws.as_str())
        .fetch_optional(self.write_pool())
        .await
        .map_err(db_error)?;
        let (generation,) = row.ok_or(Error::NotFound("workspace"))?;
        Ok(generation.max(0) as u64)
    }
}
