//! The client as a user runs it: a home folder of their own (config and state), the real
//! `cabinet` binary, a real server on loopback, and what each command printed.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

use crate::process::{cabinet_binary, ServerProcess, Tenant};

/// A user of the client: a home folder of their own (config and state), a server and a key.
pub struct User {
    pub home: TempDir,
    pub url: String,
    pub key: String,
}

/// What one client command did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        assert_eq!(self.code, 0, "the command failed:\n{}", self.stderr);
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|err| panic!("no JSON on stdout ({err}):\n{}", self.stdout))
    }

    pub fn error_json(&self) -> Value {
        serde_json::from_str(self.stderr.trim())
            .unwrap_or_else(|err| panic!("no JSON error on stderr ({err}):\n{}", self.stderr))
    }
}

impl User {
    pub fn new(url: &str, key: &str) -> Self {
        User { home: tempfile::tempdir().unwrap(), url: url.to_owned(), key: key.to_owned() }
    }

    /// The command, with only this user's settings in its environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(cabinet_binary());
        for (name, _) in std::env::vars_os() {
            let name_text = name.to_string_lossy();
            if name_text.starts_with("CABINET_") || name_text.starts_with("XDG_") {
                command.env_remove(name);
            }
        }
        command
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join("config"))
            .env("XDG_STATE_HOME", self.home.path().join("state"))
            .env("NO_PROXY", "*")
            .env("RUST_BACKTRACE", "0")
            .args(args)
            .stdin(Stdio::null());
        command
    }

    /// Runs with CABINET_URL and CABINET_KEY set.
    pub fn run(&self, args: &[&str]) -> Run {
        let mut command = self.command(args);
        command.env("CABINET_URL", &self.url).env("CABINET_KEY", &self.key);
        finish(command.output().expect("running the cabinet client"))
    }

    /// Runs a `--json` command that must succeed and parses its output.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let run = self.run(&all);
        assert_eq!(run.code, 0, "cabinet {args:?} exited {}:\n{}", run.code, run.stderr);
        run.json()
    }

    pub fn write(&self, relative: &str, bytes: &[u8]) -> PathBuf {
        let path = self.home.path().join("files").join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

pub fn finish(output: Output) -> Run {
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub fn random_bytes(len: usize) -> Vec<u8> {
    use rand::RngCore;
    let mut bytes = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// A server with one workspace (optionally with a quota) and a write key for it.
pub fn server_and_user(quota: Option<u64>) -> (TempDir, ServerProcess, User) {
    let dir = tempfile::tempdir().unwrap();
    let tenant = Tenant::create(dir.path(), "acme", quota, "write");
    let server = ServerProcess::start(dir.path());
    let user = User::new(&server.url, &tenant.key);
    (dir, server, user)
}

pub fn names(items: &Value) -> Vec<String> {
    let mut names: Vec<String> =
        items.as_array().expect("an array").iter().map(|i| i["name"].as_str().unwrap().to_owned()).collect();
    names.sort();
    names
}
