//! Starting the real `cabinet serve` as a child process, for the tests and the benchmarks alike:
//! a command that sees none of the caller's `CABINET_*` settings, and the wait for the server's
//! `--ready-file` (its address and, on a first start, its bootstrap key) with a deadline, failing
//! at once if the server exits instead. Nothing here reads the server's stdout.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// How often the ready file is looked for while a server starts.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// A `cabinet` command without the caller's `CABINET_*` environment, so only the flags a test or
/// benchmark passes decide how it runs.
pub fn cabinet_command(binary: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new(binary);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("CABINET_") {
            command.env_remove(name);
        }
    }
    command
}

/// What a started server wrote to its ready file (see `cabinet serve --help`, `--ready-file`).
#[derive(Debug, Clone, Deserialize)]
pub struct Ready {
    /// `http://127.0.0.1:PORT`: where the server listens.
    pub url: String,
    /// The base URL the server puts in signed URLs.
    pub public_url: String,
    /// The workspace this start created in empty stores.
    pub workspace: Option<String>,
    /// The admin key this start created in empty stores (its secret is shown only then).
    pub key: Option<String>,
    /// Where the S3 surface listens, with `--s3-listen`.
    #[serde(default)]
    pub s3_url: Option<String>,
}

/// Why a server never became ready.
#[derive(Debug)]
pub enum NotReady {
    /// The server exited first (a bad flag, a store it could not open, ...).
    Exited(ExitStatus),
    /// The deadline passed.
    TimedOut(Duration),
    /// The ready file could not be read or was not the expected JSON.
    Unreadable(String),
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotReady::Exited(status) => write!(f, "cabinet serve exited ({status}) before it was ready"),
            NotReady::TimedOut(limit) => write!(f, "cabinet serve was not ready within {limit:?}"),
            NotReady::Unreadable(why) => write!(f, "cabinet serve's ready file: {why}"),
        }
    }
}

impl std::error::Error for NotReady {}

/// A place for one server's ready file, in a folder of its own that is removed on drop.
pub struct ReadyFile {
    _folder: tempfile::TempDir,
    path: PathBuf,
}

impl ReadyFile {
    /// A fresh, absent ready file.
    pub fn new() -> std::io::Result<Self> {
        let folder = tempfile::Builder::new().prefix("cabinet-ready").tempdir()?;
        let path = folder.path().join("ready.json");
        Ok(Self { _folder: folder, path })
    }

    /// Where the server is told to write it.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds `--ready-file PATH` to a `cabinet … serve …` command (after its other `serve` flags).
    pub fn pass_to(&self, command: &mut Command) {
        command.arg("--ready-file").arg(&self.path);
    }

    /// Waits until `server` has written the file, and reads it; fails as soon as the server
    /// exits, or when `limit` passes.
    pub fn wait(&self, server: &mut Child, limit: Duration) -> Result<Ready, NotReady> {
        let deadline = Instant::now() + limit;
        loop {
            // The server renames a complete file into place: once it exists, it is whole.
            match std::fs::read(&self.path) {
                Ok(bytes) => {
                    return serde_json::from_slice(&bytes)
                        .map_err(|err| NotReady::Unreadable(err.to_string()))
                }
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(NotReady::Unreadable(err.to_string())),
            }
            match server.try_wait() {
                Ok(Some(status)) => return Err(NotReady::Exited(status)),
                Ok(None) => {}
                Err(err) => return Err(NotReady::Unreadable(format!("waiting for the server: {err}"))),
            }
            if Instant::now() >= deadline {
                return Err(NotReady::TimedOut(limit));
            }
            std::thread::sleep(POLL_EVERY);
        }
    }
}
