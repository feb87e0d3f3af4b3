//! The record of multipart uploads in progress, so that running the same `cabinet upload` again
//! after an interruption finishes the upload instead of starting over. One JSON file under
//! `$XDG_STATE_HOME/cabinet/uploads.json`; a record is only trusted while the local file's size
//! and modification time are what they were when it was written.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::error::{CliError, CliResult};

/// One upload that may be resumed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRecord {
    pub upload_id: String,
    /// The server's base URL: an upload id means nothing on another server.
    pub server: String,
    /// The local file, canonical.
    pub path: PathBuf,
    pub folder_id: Option<String>,
    pub name: String,
    pub size: u64,
    /// Modification time, nanoseconds since the epoch (as text: JSON numbers are not that big).
    pub mtime_ns: String,
    pub part_size: u64,
    /// The SHA-256 declared when the upload started.
    pub sha256: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    #[serde(default)]
    uploads: Vec<UploadRecord>,
}

/// A file's modification time, as recorded.
pub fn mtime_of(path: &Path) -> CliResult<String> {
    let modified = std::fs::metadata(path)
        .and_then(|meta| meta.modified())
        .map_err(|err| CliError::io(path.display(), err))?;
    Ok(modified.duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0).to_string())
}

/// The state file, read and rewritten under a lock (uploads run in parallel).
pub struct ResumeBook {
    path: Option<PathBuf>,
    lock: Mutex<()>,
}

impl ResumeBook {
    /// The book at its usual place; without a home folder nothing is remembered.
    pub fn open() -> Self {
        ResumeBook {
            path: super::profile::state_dir().map(|dir| dir.join("uploads.json")),
            lock: Mutex::new(()),
        }
    }

    /// A book in a given file.
    pub fn at(path: PathBuf) -> Self {
        ResumeBook { path: Some(path), lock: Mutex::new(()) }
    }

    fn read(path: &Path) -> StateFile {
        std::fs::read(path).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).unwrap_or_default()
    }

    fn write(path: &Path, state: &StateFile) -> CliResult<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|err| CliError::io(dir.display(), err))?;
        }
        let temp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(state).expect("the state serializes");
        std::fs::write(&temp, bytes).map_err(|err| CliError::io(temp.display(), err))?;
        std::fs::rename(&temp, path).map_err(|err| CliError::io(path.display(), err))
    }

    /// The record for this file, server, folder and name, if any.
    pub async fn find(
        &self,
        server: &str,
        path: &Path,
        folder_id: Option<&str>,
        name: &str,
    ) -> Option<UploadRecord> {
        let file = self.path.as_ref()?;
        let _guard = self.lock.lock().await;
        Self::read(file).uploads.into_iter().find(|r| {
            r.server == server && r.path == path && r.folder_id.as_deref() == folder_id && r.name == name
        })
    }

    /// Adds (or replaces) a record.
    pub async fn put(&self, record: UploadRecord) -> CliResult<()> {
        let Some(file) = &self.path else { return Ok(()) };
        let _guard = self.lock.lock().await;
        let mut state = Self::read(file);
        state.uploads.retain(|r| {
            r.upload_id != record.upload_id
                && !(r.server == record.server
                    && r.path == record.path
                    && r.folder_id == record.folder_id
                    && r.name == record.name)
        });
        state.uploads.push(record);
        Self::write(file, &state)
    }

    /// Forgets an upload (finished, or not resumable any more).
    pub async fn remove(&self, upload_id: &str) -> CliResult<()> {
        let Some(file) = &self.path else { return Ok(()) };
        let _guard = self.lock.lock().await;
        let mut state = Self::read(file);
        let before = state.uploads.len();
        state.uploads.retain(|r| r.upload_id != upload_id);
        if state.uploads.len() == before {
            return Ok(());
        }
        Self::write(file, &state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, name: &str) -> UploadRecord {
        UploadRecord {
            upload_id: id.into(),
            server: "http://s".into(),
            path: PathBuf::from("/data/big.bin"),
            folder_id: None,
            name: name.into(),
            size: 10,
            mtime_ns: "1".into(),
            part_size: 5,
            sha256: "ab".into(),
        }
    }

    #[tokio::test]
    async fn records_are_found_replaced_and_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let book = ResumeBook::at(dir.path().join("state/uploads.json"));
        let path = Path::new("/data/big.bin");
        assert_eq!(book.find("http://s", path, None, "big.bin").await, None);
        book.put(record("upl_1", "big.bin")).await.unwrap();
        book.put(record("upl_2", "other.bin")).await.unwrap();
        assert_eq!(book.find("http://s", path, None, "big.bin").await.unwrap().upload_id, "upl_1");
        assert_eq!(book.find("http://elsewhere", path, None, "big.bin").await, None, "per server");
        // A new session for the same file replaces the old record.
        book.put(record("upl_3", "big.bin")).await.unwrap();
        assert_eq!(book.find("http://s", path, None, "big.bin").await.unwrap().upload_id, "upl_3");
        book.remove("upl_3").await.unwrap();
        assert_eq!(book.find("http://s", path, None, "big.bin").await, None);
        assert_eq!(book.find("http://s", path, None, "other.bin").await.unwrap().upload_id, "upl_2");
    }
}
