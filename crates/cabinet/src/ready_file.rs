//! The readiness contract of `cabinet serve --ready-file PATH`: once the listener is bound and the
//! stores are ready (the first workspace and key exist), the server writes PATH as one JSON object,
//! `{"url", "public_url", "workspace", "key"}` (and `s3_url` with `--s3-listen`), so a script or a test waits for a file instead of
//! scraping stdout. The file appears whole or not at all: it is written beside PATH and renamed.
//!
//! `workspace` and `key` name the workspace and admin key this start created in empty stores (the
//! key's secret is shown only then, as on stdout); they are `null` when the stores already had a
//! workspace.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

/// What the ready file says.
#[derive(Debug, Serialize)]
pub struct Ready<'a> {
    /// `http://ADDRESS:PORT` the listener is bound to.
    pub url: &'a str,
    /// The base URL clients are told to use (signed URLs carry it).
    pub public_url: &'a str,
    /// The workspace this start created, if it created one.
    pub workspace: Option<&'a str>,
    /// The secret of the admin key this start created, if it created one.
    pub key: Option<&'a str>,
    /// `http://ADDRESS:PORT` the S3 surface is bound to, when `--s3-listen` is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_url: Option<&'a str>,
}

/// Removes a ready file a previous run left, so nobody mistakes it for this run's.
pub fn clear(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("removing the old ready file {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Writes `ready` to `path` atomically, readable by the owner only (it may hold a key).
pub fn write(path: &Path, ready: &Ready<'_>) -> anyhow::Result<()> {
    let temporary = temporary_beside(path);
    let written = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temporary)?;
        serde_json::to_writer(&mut file, ready)?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written.with_context(|| format!("writing the ready file {}", path.display()))
}

/// `PATH.<pid>.tmp`, in PATH's folder so the rename stays on one filesystem.
fn temporary_beside(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", std::process::id()));
    path.with_file_name(name)
}
