//! The S3 surface's access keys (secrets sealed by the core) and what it keeps of the files it
//! stored (ETags, headers, parts' sizes).

use std::collections::HashMap;

use cabinet_core::s3_keys::S3Key;
use cabinet_core::s3_objects::{S3Checksum, S3Headers, S3Listed, S3Object};
use cabinet_core::{Error, FileId, Result, WorkspaceId};
use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, QueryBuilder, Type};

use crate::dialect::{Dialect, SqlStore, Value};
use crate::errors::db_error;
use crate::rows::{from_millis, millis};

const S3_KEY_COLUMNS: &str =
    "access_key_id, id, workspace_id, role, name, created_at, revoked_at, sealed_secret";

#[derive(sqlx_macros::FromRow)]
struct S3ObjectRow {
    etag: String,
    cache_control: Option<String>,
    content_disposition: Option<String>,
    content_encoding: Option<String>,
    content_language: Option<String>,
    expires: Option<String>,
    part_sizes: Option<String>,
    checksum_algorithm: Option<String>,
    checksum_type: Option<String>,
    checksum: Option<String>,
    part_checksums: Option<String>,
}

#[derive(sqlx_macros::FromRow)]
struct S3KeyRow {
    access_key_id: String,
    id: String,
    workspace_id: Option<String>,
    role: String,
    name: Option<String>,
    created_at: i64,
    revoked_at: Option<i64>,
    sealed_secret: String,
}

impl S3KeyRow {
    fn into_key(self) -> Result<(S3Key, String)> {
        let key = S3Key {
            access_key_id: self.access_key_id,
            id: self.id.parse()?,
            workspace_id: self.workspace_id.map(|ws| ws.parse()).transpose()?,
            role: self.role.parse()?,
            name: self.name,
            created_at: from_millis(self.created_at)?,
            revoked_at: self.revoked_at.map(from_millis).transpose()?,
        };
        Ok((key, self.sealed_secret))
    }
}

#[async_trait::async_trait]
impl<D: Dialect> cabinet_core::S3KeyStore for SqlStore<D>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    for<'q> <D::Db as Database>::Arguments<'q>: IntoArguments<'q, D::Db>,
    for<'q> &'q str: Encode<'q, D::Db> + Type<D::Db> + ColumnIndex<<D::Db as Database>::Row>,
    usize: ColumnIndex<<D::Db as Database>::Row>,
    i64: Value<D::Db>,
    String: Value<D::Db>,
    bool: Value<D::Db>,
    Option<i64>: Value<D::Db>,
    Option<String>: Value<D::Db>,
    Option<bool>: Value<D::Db>,
    for<'q> Option<&'q str>: Encode<'q, D::Db>,
{
    async fn create_s3_key(&self, key: &S3Key, sealed_secret: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO s3_keys (access_key_id, id, workspace_id, role, sealed_secret, name, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(key.access_key_id.as_str())
        .bind(key.id.as_str())
        .bind(key.workspace_id.as_ref().map(|ws| ws.to_string()))
        .bind(key.role.as_str())
        .bind(sealed_secret)
        .bind(key.name.clone())
        .bind(millis(key.created_at))
        .execute(self.write_pool())
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn find_s3_key(&self, access_key_id: &str) -> Result<Option<(S3Key, String)>> {
        sqlx::query_as::<_, S3KeyRow>(&format!(
            "SELECT {S3_KEY_COLUMNS} FROM s3_keys WHERE access_key_id = $1"
        ))
        .bind(access_key_id)
        .fetch_optional(self.read_pool())
        .await
        .map_err(db_error)?
        .map(S3KeyRow::into_key)
        .transpose()
    }

    async fn list_s3_keys(&self, workspace: Option<&WorkspaceId>) -> Result<Vec<S3Key>> {
        let rows = match workspace {
            Some(ws) => {
                sqlx::query_as::<_, S3KeyRow>(&format!(
                    "SELECT {S3_KEY_COLUMNS} FROM s3_keys WHERE workspace_id = $1 ORDER BY created_at, id"
                ))
                .bind(ws.as_str())
                .fetch_all(self.read_pool())
                .await
            }
            None => {
                sqlx::query_as::<_, S3KeyRow>(&format!(
                    "SELECT {S3_KEY_COLUMNS} FROM s3_keys WHERE workspace_id IS NULL ORDER BY created_at, id"
                ))
                .fetch_all(self.read_pool())
                .await
            }
        }
        .map_err(db_error)?;
        rows.into_iter().map(|row| row.into_key().map(|(key, _)| key)).collect()
    }

    async fn revoke_s3_key(&self, access_key_id: &str, at: DateTime<Utc>) -> Result<()> {
        let done =
            sqlx::query("UPDATE s3_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE access_key_id = $2")
                .bind(millis(at))
                .bind(access_key_id)
                .execute(self.write_pool())
                .await
                .map_err(db_error)?;
        if D::rows_affected(&done) == 0 {
            return Err(Error::NotFound("S3 key"));
        }
        Ok(())
    }

    async fn set_s3_object(&self, workspace: &WorkspaceId, file: &FileId, object: &S3Object) -> Result<()> {
        let headers = &object.headers;
        let part_sizes = (!object.part_sizes.is_empty())
            .then(|| object.part_sizes.iter().map(u64::to_string).collect::<Vec<_>>().join(","));
        sqlx::query(
            "INSERT INTO s3_objects (workspace_id, file_id, etag, cache_control, content_disposition, \
             content_encoding, content_language, expires, part_sizes, checksum_algorithm, checksum_type, checksum, \
             part_checksums) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (workspace_id, file_id) DO UPDATE SET etag = excluded.etag, \
             cache_control = excluded.cache_control, content_disposition = excluded.content_disposition, \
             content_encoding = excluded.content_encoding, content_language = excluded.content_language, \
             expires = excluded.expires, part_sizes = excluded.part_sizes, \
             checksum_algorithm = excluded.checksum_algorithm, checksum_type = excluded.checksum_type, \
             checksum = excluded.checksum, part_checksums = excluded.part_checksums",
        )
        .bind(workspace.as_str())
        .bind(file.as_str())
        .bind(object.etag.as_str())
        .bind(headers.cache_control.clone())
        .bind(headers.content_disposition.clone())
        .bind(headers.content_encoding.clone())
        .bind(headers.content_language.clone())
        .bind(headers.expires.clone())
        .bind(part_sizes)
        .bind(object.checksum.as_ref().map(|checksum| checksum.algorithm.clone()))
        .bind(object.checksum.as_ref().map(|checksum| checksum.kind.clone()))
        .bind(object.checksum.as_ref().map(|checksum| checksum.value.clone()))
        .bind((!object.part_checksums.is_empty()).then(|| object.part_checksums.join(",")))
        .execute(self.write_pool())
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn s3_object(&self, workspace: &WorkspaceId, file: &FileId) -> Result<Option<S3Object>> {
        let Some(row) = sqlx::query_as::<_, S3ObjectRow>(
            "SELECT etag, cache_control, content_disposition, content_encoding, content_language, expires, \
             part_sizes, checksum_algorithm, checksum_type, checksum, part_checksums FROM s3_objects WHERE workspace_id = $1 AND file_id = $2",
        )
        .bind(workspace.as_str())
        .bind(file.as_str())
        .fetch_optional(self.read_pool())
        .await
        .map_err(db_error)?
        else {
            return Ok(None);
        };
        let part_sizes = match row.part_sizes.as_deref() {
            None | Some("") => Vec::new(),
            Some(sizes) => sizes
                .split(',')
                .map(|size| size.parse().map_err(|_| Error::internal(format!("a part size of {size:?}"))))
                .collect::<Result<_>>()?,
        };
        Ok(Some(S3Object {
            etag: row.etag,
            headers: S3Headers {
                cache_control: row.cache_control,
                content_disposition: row.content_disposition,
                content_encoding: row.content_encoding,
                content_language: row.content_language,
                expires: row.expires,
            },
            part_sizes,
            checksum: match (row.checksum_algorithm, row.checksum_type, row.checksum) {
                (Some(algorithm), Some(kind), Some(value)) => Some(S3Checksum { algorithm, kind, value }),
                _ => None,
            },
            part_checksums: match row.part_checksums.as_deref() {
                None | Some("") => Vec::new(),
                Some(sums) => sums.split(',').map(str::to_owned).collect(),
            },
        }))
    }

    async fn s3_listed(
        &self,
        workspace: &WorkspaceId,
        files: &[FileId],
    ) -> Result<HashMap<FileId, S3Listed>> {
        let mut found = HashMap::new();
        // Bound the parameters of one statement (SQLite allows 32,766).
        for chunk in files.chunks(500) {
            let mut qb =
                QueryBuilder::<D::Db>::new(
                "SELECT file_id, etag, checksum_algorithm, checksum_type FROM s3_objects WHERE workspace_id = ",
            );
            qb.push_bind(workspace.to_string());
            qb.push(" AND file_id IN (");
            let mut ids = qb.separated(", ");
            for id in chunk {
                ids.push_bind(id.to_string());
            }
            qb.push(")");
            let rows: Vec<(String, String, Option<String>, Option<String>)> =
                D::fetch_built(&mut qb, self.read_pool()).await.map_err(db_error)?;
            for (id, etag, algorithm, kind) in rows {
                found.insert(id.parse()?, S3Listed { etag, checksum: algorithm.zip(kind) });
            }
        }
        Ok(found)
    }
}
