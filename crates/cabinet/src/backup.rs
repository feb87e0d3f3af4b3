//! `cabinet admin backup --to DIR` and `cabinet admin restore --from DIR`, for the embedded store
//! (SQLite and a local folder), online: the server may go on serving and uploading meanwhile.
//!
//! A backup folder holds, for each backup, `snapshots/<UTC time>/` with `cabinet.db` (SQLite's
//! online backup: a consistent copy, page for page), `signing.key` and `s3-secret.key` (when the
//! data folder has them: without the latter the S3 keys' sealed secrets cannot be opened) and `manifest.json` (every file's object key, sha256 and size in that copy); and, shared
//! by every backup, `objects/<sha256[..2]>/<sha256>`, each object once, checked against its
//! sha256 as it is copied. So a backup copies only what no earlier one holds (incremental by
//! content), and `latest` names the newest complete snapshot: a snapshot is written beside its
//! place and renamed there last. Uploads in progress are not in it (they fail when the restored
//! server starts, releasing what they reserved); nor are thumbnails (made again when asked for).

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use cabinet_store_sql::StoredObject;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{BlobConfig, StoreConfig};

/// The data folder's signing secret (see `server::signing_secret_from`).
const SIGNING_KEY_FILE: &str = "signing.key";
/// The keys a backup carries: the signing secret and the key sealing S3 secrets.
const KEY_FILES: [&str; 2] = [SIGNING_KEY_FILE, crate::server::S3_SECRET_KEY_FILE];
const MANIFEST_FILE: &str = "manifest.json";
const DATABASE_FILE: &str = "cabinet.db";
const LATEST_FILE: &str = "latest";

/// One backup's list of what it holds.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    created_at: String,
    objects: Vec<ManifestObject>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ManifestObject {
    key: String,
    sha256: String,
    size: u64,
}

/// What a backup did.
#[derive(Debug, Serialize)]
pub struct BackupReport {
    pub snapshot: String,
    pub files: usize,
    pub objects_copied: u64,
    pub objects_already_there: u64,
    pub bytes_copied: u64,
}

/// What a restore did.
#[derive(Debug, Serialize)]
pub struct RestoreReport {
    pub snapshot: String,
    pub files: usize,
    pub bytes_restored: u64,
}

/// The database file and the objects folder of an embedded store; anything else is refused with
/// where to look instead.
fn embedded(store: &StoreConfig) -> anyhow::Result<(PathBuf, PathBuf)> {
    if cabinet_store_sql::is_postgres_url(&store.database_url) {
        bail!(
            "backup and restore copy the embedded store (SQLite and a local folder); back up PostgreSQL \
             with pg_dump and the bucket with its versioning (README: \"Back it up\")"
        );
    }
    let BlobConfig::Local(blobs) = &store.blobs else {
        bail!("backup and restore copy a local blob folder; back up a bucket with its versioning (README: \"Back it up\")");
    };
    let database =
        cabinet_store_sql::database_path(&store.database_url).map_err(|err| anyhow::anyhow!("{err}"))?;
    Ok((database, blobs.join("objects")))
}

fn object_path(objects: &Path, key: &str) -> anyhow::Result<PathBuf> {
    // Keys are `ws_…/file_…`, written by Cabinet; a manifest is read back, so never trust one.
    if key.split('/').any(|part| part.is_empty() || part == "." || part == "..") || key.starts_with('/') {
        bail!("an object key that is not a relative path: {key:?}");
    }
    Ok(objects.join(key))
}

fn stored_copy(backup: &Path, sha256: &str) -> anyhow::Result<PathBuf> {
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("not a sha256: {sha256:?}");
    }
    Ok(backup.join("objects").join(&sha256[..2]).join(sha256))
}

/// Copies `from` to `to` (written beside it, made durable, then renamed), returning the sha256 of
/// what was copied; a copy whose sha256 is not `expected` is removed and refused.
fn copy_verified(from: &Path, to: &Path, expected: &str) -> anyhow::Result<u64> {
    let parent = to.parent().context("an object path has a parent")?;
    fs::create_dir_all(parent)?;
    let partial = to.with_extension("partial");
    let mut source = fs::File::open(from).with_context(|| format!("opening {}", from.display()))?;
    let mut out = fs::File::create(&partial).with_context(|| format!("creating {}", partial.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let read = source.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        out.write_all(&buffer[..read])?;
        size += read as u64;
    }
    out.sync_all()?;
    drop(out);
    let sha256 = hex::encode(hasher.finalize());
    if sha256 != expected {
        let _ = fs::remove_file(&partial);
        bail!(
            "{} hashes to {sha256}, not the {expected} its file records: the copy is refused",
            from.display()
        );
    }
    fs::rename(&partial, to)?;
    Ok(size)
}

/// `cabinet admin backup --to DIR`.
pub fn backup(store: &StoreConfig, to: &Path) -> anyhow::Result<BackupReport> {
    let (database, objects) = embedded(store)?;
    if !database.is_file() {
        bail!("no database at {}: nothing to back up", database.display());
    }
    fs::create_dir_all(to.join("snapshots")).with_context(|| format!("creating {}", to.display()))?;
    let created = chrono::Utc::now();
    let name = created.format("%Y%m%dT%H%M%S%.3fZ").to_string();
    let partial = to.join("snapshots").join(format!("{name}.partial"));
    fs::create_dir_all(&partial)?;
    // A file purged between the snapshot and its object's copy leaves the snapshot naming an
    // object that is gone: take the snapshot again (a purge is rare; twice in a row, rarer).
    let mut attempt = 0;
    let (listed, report) = loop {
        attempt += 1;
        cabinet_store_sql::snapshot(&database, &partial.join(DATABASE_FILE))
            .map_err(|err| anyhow::anyhow!("{err}"))?;
        let listed = cabinet_store_sql::stored_objects(&partial.join(DATABASE_FILE))
            .map_err(|err| anyhow::anyhow!("{err}"))?;
        match copy_objects(&listed, &objects, to) {
            Ok(report) => break (listed, report),
            Err(err) if attempt < 3 && is_not_found(&err) => {
                fs::remove_file(partial.join(DATABASE_FILE))?;
                continue;
            }
            Err(err) => return Err(err).context("copying the objects"),
        }
    };
    for name in KEY_FILES {
        let secret = store.data_dir.join(name);
        if secret.is_file() {
            fs::copy(&secret, partial.join(name))?;
            restrict_to_owner(&partial.join(name))?;
        }
    }
    let manifest = Manifest {
        created_at: created.to_rfc3339(),
        objects: listed
            .iter()
            .map(|object| ManifestObject {
                key: object.key.clone(),
                sha256: object.sha256.clone(),
                size: object.size,
            })
            .collect(),
    };
    fs::write(partial.join(MANIFEST_FILE), serde_json::to_vec_pretty(&manifest)?)?;
    sync_folder(&partial)?;
    fs::rename(&partial, to.join("snapshots").join(&name))?;
    write_atomically(&to.join(LATEST_FILE), name.as_bytes())?;
    let (copied, already_there, bytes) = report;
    Ok(BackupReport {
        snapshot: name,
        files: listed.len(),
        objects_copied: copied,
        objects_already_there: already_there,
        bytes_copied: bytes,
    })
}

/// Copies each listed object the backup does not hold yet; (copied, already there, bytes). An
/// object gone from the store is `NotFound`, so the caller can take the snapshot again.
fn copy_objects(
    listed: &[StoredObject],
    objects: &Path,
    to: &Path,
) -> Result<(u64, u64, u64), anyhow::Error> {
    let (mut copied, mut already_there, mut bytes) = (0, 0, 0);
    for object in listed {
        let stored = stored_copy(to, &object.sha256)?;
        if stored.is_file() {
            already_there += 1;
            continue;
        }
        let source = object_path(objects, &object.key)?;
        if !source.is_file() {
            return Err(
                io::Error::new(io::ErrorKind::NotFound, format!("{} is gone", source.display())).into()
            );
        }
        bytes += copy_verified(&source, &stored, &object.sha256)?;
        copied += 1;
    }
    Ok((copied, already_there, bytes))
}

fn is_not_found(err: &anyhow::Error) -> bool {
    err.downcast_ref::<io::Error>().is_some_and(|err| err.kind() == io::ErrorKind::NotFound)
}

/// `cabinet admin restore --from DIR [--snapshot NAME]`, into an empty data folder.
pub fn restore(store: &StoreConfig, from: &Path, snapshot: Option<&str>) -> anyhow::Result<RestoreReport> {
    let (database, objects) = embedded(store)?;
    let name = match snapshot {
        Some(name) => name.to_owned(),
        None => fs::read_to_string(from.join(LATEST_FILE))
            .with_context(|| format!("{} holds no complete backup (no `latest`)", from.display()))?
            .trim()
            .to_owned(),
    };
    if name.is_empty() || name.contains('/') || name.contains("..") {
        bail!("not a snapshot name: {name:?}");
    }
    let snapshot_dir = from.join("snapshots").join(&name);
    let manifest: Manifest = serde_json::from_slice(
        &fs::read(snapshot_dir.join(MANIFEST_FILE))
            .with_context(|| format!("reading {}", snapshot_dir.display()))?,
    )
    .context("reading the snapshot's manifest")?;
    let occupied = database.exists()
        || KEY_FILES.iter().any(|name| store.data_dir.join(name).exists())
        || fs::read_dir(&objects).is_ok_and(|mut entries| entries.next().is_some());
    if occupied {
        bail!(
            "{} already holds a Cabinet (a database, a signing key or objects): restore only into an empty data folder",
            store.data_dir.display()
        );
    }
    // Every object first, verified; the database last, so a restore cut short is not a store.
    let mut bytes = 0;
    for object in &manifest.objects {
        let stored = stored_copy(from, &object.sha256)?;
        bytes += copy_verified(&stored, &object_path(&objects, &object.key)?, &object.sha256)
            .with_context(|| format!("restoring the object of {}", object.key))?;
    }
    fs::create_dir_all(&store.data_dir)?;
    for name in KEY_FILES {
        let secret = snapshot_dir.join(name);
        if secret.is_file() {
            fs::copy(&secret, store.data_dir.join(name))?;
            restrict_to_owner(&store.data_dir.join(name))?;
        }
    }
    if let Some(parent) = database.parent() {
        fs::create_dir_all(parent)?;
    }
    let partial = database.with_extension("db.partial");
    fs::copy(snapshot_dir.join(DATABASE_FILE), &partial)?;
    fs::File::open(&partial)?.sync_all()?;
    fs::rename(&partial, &database)?;
    Ok(RestoreReport { snapshot: name, files: manifest.objects.len(), bytes_restored: bytes })
}

fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let partial = path.with_extension("partial");
    let mut file = fs::File::create(&partial)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&partial, path)?;
    Ok(())
}

fn sync_folder(path: &Path) -> io::Result<()> {
    for entry in fs::read_dir(path)? {
        fs::File::open(entry?.path())?.sync_all()?;
    }
    fs::File::open(path)?.sync_all()
}

#[cfg(unix)]
fn restrict_to_owner(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn restrict_to_owner(_: &Path) -> io::Result<()> {
    Ok(())
}
