//! `cabinet admin migrate-store`: moves a deployment from the embedded store (SQLite and a local
//! folder) to PostgreSQL and S3, keeping every id, so the new deployment serves the same files,
//! keys and signed URLs.
//!
//! It copies from a snapshot of the database (SQLite's online backup), so it may run while the old
//! server serves; what changes after the snapshot is carried by running it again, which is also
//! how a run cut short is finished: each run makes the target equal to the snapshot
//! (`cabinet_store_sql::copy_sqlite_to_postgres`) and copies only the objects the bucket lacks.
//! Every object is read back from the bucket and its SHA-256 compared with the file's; an object
//! whose source bytes do not match is an error, never copied. Thumbnails are not copied (they are
//! made again when asked for), nor uploads in progress (they fail when the new server starts,
//! releasing what they reserved).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use cabinet_blob::{LocalBlobStore, S3BlobStore, S3Config};
use cabinet_core::BlobStore;
use cabinet_store_sql::{StoredObject, TableCopy};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::{BlobConfig, StoreConfig};

/// Objects copied at once.
const CONCURRENT_OBJECTS: usize = 4;
const SNAPSHOT_FILE: &str = "migrate-store.snapshot.db";
/// The data folder's secrets the stored data is only good with: the URL signing key, and the key
/// that seals S3 access keys' secrets.
const KEY_FILES: [&str; 2] = ["signing.key", crate::server::S3_SECRET_KEY_FILE];

/// Where to move to.
#[derive(Debug, Clone)]
pub struct Target {
    pub database_url: String,
    pub storage: String,
    /// The new deployment's data folder, to receive the key files (when it is not this one).
    pub data_dir: Option<PathBuf>,
}

/// What a migration did.
#[derive(Debug, Serialize)]
pub struct MigrationReport {
    pub tables: Vec<TableCopy>,
    pub objects: u64,
    pub objects_copied: u64,
    pub objects_already_there: u64,
    pub bytes_copied: u64,
    /// The key files copied into the new data folder.
    pub key_files: Vec<PathBuf>,
}

/// Runs one migration; `progress` hears a line of each step.
pub async fn migrate(
    source: &StoreConfig,
    target: &Target,
    progress: impl Fn(String) + Send + Sync,
) -> anyhow::Result<MigrationReport> {
    if cabinet_store_sql::is_postgres_url(&source.database_url) {
        bail!("migrate-store moves the embedded store (SQLite and a local folder); this one is already on PostgreSQL");
    }
    let BlobConfig::Local(blob_root) = &source.blobs else {
        bail!("migrate-store moves the embedded store (SQLite and a local folder); this one keeps its files in S3");
    };
    if !cabinet_store_sql::is_postgres_url(&target.database_url) {
        bail!("--to-database-url: a postgres:// URL (migrate-store moves to PostgreSQL and S3)");
    }
    let s3 = S3Config::from_url(&target.storage).map_err(|err| anyhow::anyhow!("--to-storage: {err}"))?;
    let database =
        cabinet_store_sql::database_path(&source.database_url).map_err(|err| anyhow::anyhow!("{err}"))?;
    if !database.exists() {
        bail!("no database at {}: nothing to migrate", database.display());
    }
    let key_files = match target.data_dir.as_deref() {
        Some(to_dir) => KEY_FILES
            .iter()
            .map(|name| copy_key_file(&source.data_dir, to_dir, name))
            .collect::<anyhow::Result<Vec<_>>>()?
            .into_iter()
            .flatten()
            .collect(),
        None => Vec::new(),
    };

    let snapshot = source.data_dir.join(SNAPSHOT_FILE);
    let _ = std::fs::remove_file(&snapshot);
    {
        let (from, to) = (database.clone(), snapshot.clone());
        tokio::task::spawn_blocking(move || cabinet_store_sql::snapshot(&from, &to))
            .await?
            .map_err(|err| anyhow::anyhow!("taking a snapshot of the database: {err}"))?;
    }
    progress(format!("snapshot of {} taken", database.display()));
    let result = copy(&snapshot, blob_root, target, s3, &progress).await;
    let _ = std::fs::remove_file(&snapshot);
    let (tables, objects) = result?;
    Ok(MigrationReport {
        tables,
        objects: objects.total,
        objects_copied: objects.copied.load(Ordering::Relaxed),
        objects_already_there: objects.already_there.load(Ordering::Relaxed),
        bytes_copied: objects.bytes_copied.load(Ordering::Relaxed),
        key_files,
    })
}

#[derive(Default)]
struct ObjectCounts {
    total: u64,
    done: AtomicU64,
    copied: AtomicU64,
    already_there: AtomicU64,
    bytes_copied: AtomicU64,
}

async fn copy(
    snapshot: &Path,
    blob_root: &Path,
    target: &Target,
    s3: S3Config,
    progress: &(impl Fn(String) + Send + Sync),
) -> anyhow::Result<(Vec<TableCopy>, ObjectCounts)> {
    // The metadata first: it is quick, and it refuses a target that is another deployment before
    // any byte moves.
    let tables = cabinet_store_sql::copy_sqlite_to_postgres(snapshot, &target.database_url, |table| {
        progress(format!(
            "table {}: {} rows verified ({} written, {} deleted)",
            table.table, table.rows, table.written, table.deleted
        ))
    })
    .await
    .context("copying the database")?;

    let objects = {
        let snapshot = snapshot.to_owned();
        tokio::task::spawn_blocking(move || cabinet_store_sql::stored_objects(&snapshot)).await??
    };
    let from: Arc<dyn BlobStore> = Arc::new(
        LocalBlobStore::open(blob_root)
            .with_context(|| format!("opening blob storage at {}", blob_root.display()))?,
    );
    let to: Arc<dyn BlobStore> =
        Arc::new(S3BlobStore::new(&s3).map_err(|err| anyhow::anyhow!("opening S3 storage: {err:?}"))?);
    to.ping().await.map_err(|err| anyhow::anyhow!("writing to {}: {err}", target.storage))?;

    let counts = ObjectCounts { total: objects.len() as u64, ..ObjectCounts::default() };
    let every = (counts.total / 20).max(1);
    futures::stream::iter(objects.into_iter().map(Ok::<_, anyhow::Error>))
        .try_for_each_concurrent(CONCURRENT_OBJECTS, |object| {
            let (from, to, counts) = (from.clone(), to.clone(), &counts);
            async move {
                let copied = copy_object(&*from, &*to, &object).await?;
                if copied {
                    counts.copied.fetch_add(1, Ordering::Relaxed);
                    counts.bytes_copied.fetch_add(object.size, Ordering::Relaxed);
                } else {
                    counts.already_there.fetch_add(1, Ordering::Relaxed);
                }
                let done = counts.done.fetch_add(1, Ordering::Relaxed) + 1;
                if done % every == 0 || done == counts.total {
                    progress(format!("objects: {done}/{} verified in the bucket", counts.total));
                }
                Ok(())
            }
        })
        .await?;
    Ok((tables, counts))
}

/// Makes `object` present and verified in `to`; whether it had to be copied.
async fn copy_object(
    from: &dyn BlobStore,
    to: &dyn BlobStore,
    object: &StoredObject,
) -> anyhow::Result<bool> {
    if let Some(there) = to.head(&object.key).await.map_err(|err| anyhow::anyhow!("{}: {err}", object.key))? {
        if there.size == object.size && sha256_of(to, &object.key).await? == object.sha256 {
            return Ok(false);
        }
    }
    let body =
        from.open(&object.key, None).await.map_err(|err| anyhow::anyhow!("reading {}: {err}", object.key))?;
    let staged =
        to.stage(body, object.size).await.map_err(|err| anyhow::anyhow!("copying {}: {err}", object.key))?;
    if staged.sha256 != object.sha256 || staged.size != object.size {
        to.discard(&staged.temp_key).await;
        bail!(
            "{}: the local copy has {} bytes hashing to {}, but the database records {} bytes hashing to {}; \
             `cabinet admin check` on the old deployment names what is damaged",
            object.key,
            staged.size,
            staged.sha256,
            object.size,
            object.sha256
        );
    }
    to.commit(&staged, &object.key).await.map_err(|err| anyhow::anyhow!("storing {}: {err}", object.key))?;
    let far = sha256_of(to, &object.key).await?;
    if far != object.sha256 {
        bail!("{}: read back from the bucket it hashes to {far}, not {}", object.key, object.sha256);
    }
    Ok(true)
}

async fn sha256_of(store: &dyn BlobStore, key: &str) -> anyhow::Result<String> {
    let mut body = store.open(key, None).await.map_err(|err| anyhow::anyhow!("reading {key} back: {err}"))?;
    let mut hasher = Sha256::new();
    while let Some(chunk) = body.next().await {
        hasher.update(&chunk.with_context(|| format!("reading {key} back"))?);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Puts one of the data folder's key files into the new data folder, refusing to replace another;
/// `None` when this data folder has none (a deployment given the secret by flag: the new one
/// takes the same flag).
fn copy_key_file(from_dir: &Path, to_dir: &Path, name: &str) -> anyhow::Result<Option<PathBuf>> {
    let from = from_dir.join(name);
    let key = match std::fs::read(&from) {
        Ok(key) => key,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("reading {}", from.display())),
    };
    let to = to_dir.join(name);
    match std::fs::read(&to) {
        Ok(existing) if existing == key => return Ok(Some(to)),
        Ok(_) => bail!(
            "{} holds another key: the new deployment must use this one's, or what was signed or sealed with it \
             (signed URLs, permalinks, S3 access keys) stops working",
            to.display()
        ),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err).with_context(|| format!("reading {}", to.display())),
    }
    std::fs::create_dir_all(to_dir).with_context(|| format!("creating {}", to_dir.display()))?;
    let partial = to_dir.join(format!("{name}.partial"));
    std::fs::write(&partial, &key).with_context(|| format!("writing {}", partial.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::File::open(&partial)?.sync_all()?;
    std::fs::rename(&partial, &to).with_context(|| format!("writing {}", to.display()))?;
    Ok(Some(to))
}
