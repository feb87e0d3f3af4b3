//! The `cabinet` binary as a child process, the way an operator runs it: `serve` on a data
//! folder (waiting for its `--ready-file`, see `cabinet_harness`), SIGTERM for a graceful stop,
//! SIGKILL to stop it like a crash would, and the `admin` commands against the same folder.
//!
//! A server's stdout and stderr are drained on background threads so a full pipe can never stall
//! it; the last lines of its log are printed when a test fails while it runs.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cabinet_harness::ReadyFile;
use serde_json::Value;

/// How long a server may take to write its ready file (a debug build, a busy machine).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How many lines of a server's log are kept to show when a test fails.
const LOG_TAIL_LINES: usize = 200;
/// How the line a server prints once it listens begins.
const LISTENING: &str = "Cabinet listening on ";

/// The binary under test.
pub fn cabinet_binary() -> &'static str {
    env!("CARGO_BIN_EXE_cabinet")
}

/// A `cabinet --data-dir DIR` command that sees none of the developer's `CABINET_*` settings, so
/// only the flags a test passes decide how it runs.
fn hermetic_command(data_dir: &Path) -> Command {
    let mut command = cabinet_harness::cabinet_command(cabinet_binary());
    command.env("RUST_BACKTRACE", "0").arg("--data-dir").arg(data_dir);
    command
}

/// An HTTP client for talking to a test server: no proxy from the environment, generous timeouts.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(600))
        .build()
        .expect("an HTTP client")
}

/// A running `cabinet serve`; killed (and reaped) when dropped.
pub struct ServerProcess {
    child: Child,
    /// The base URL, from the ready file.
    pub url: String,
    /// The admin key made on first start of empty stores (from the ready file).
    pub bootstrap_key: Option<String>,
    /// The workspace made on first start of empty stores (from the ready file).
    pub bootstrap_workspace: Option<String>,
    stdout: Arc<Mutex<Vec<String>>>,
    log: Arc<Mutex<ServerLog>>,
}

/// What the server wrote to stderr: every line, and the first that reports a panic.
#[derive(Default)]
struct ServerLog {
    lines: Vec<String>,
    first_panic: Option<String>,
}

impl ServerProcess {
    /// Starts `cabinet serve` on `data_dir` and a free loopback port, and waits until it is ready.
    pub fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &[])
    }

    /// Like [`ServerProcess::start`], with more `serve` flags (`--sweep-interval 1`, ...).
    pub fn start_with(data_dir: &Path, extra_args: &[&str]) -> Self {
        Self::start_with_env(data_dir, extra_args, &[])
    }

    /// Like [`ServerProcess::start_with`], with environment variables set for the server only
    /// (the AWS credentials of a test's own S3 server, `RUST_LOG`, ...).
    pub fn start_with_env(data_dir: &Path, extra_args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_command(hermetic_command(data_dir), extra_args, env)
    }

    /// Like [`ServerProcess::start_with`], with the open-file limit the server starts with
    /// (`soft`, `hard`), as a service manager would set it (util-linux's `prlimit`, which execs
    /// the server in its place).
    pub fn start_with_open_files(data_dir: &Path, extra_args: &[&str], soft: u64, hard: u64) -> Self {
        let mut command = cabinet_harness::cabinet_command("prlimit");
        command
            .arg(format!("--nofile={soft}:{hard}"))
            .arg("--")
            .arg(cabinet_binary())
            .env("RUST_BACKTRACE", "0")
            .arg("--data-dir")
            .arg(data_dir);
        Self::start_command(command, extra_args, &[])
    }

    fn start_command(mut command: Command, extra_args: &[&str], env: &[(&str, &str)]) -> Self {
        let ready_file = ReadyFile::new().expect("a folder for the ready file");
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra_args)
            .env("RUST_LOG", "info,sqlx=warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        ready_file.pass_to(&mut command);
        let mut child = command.spawn().expect("spawning cabinet serve");

        let log = Arc::new(Mutex::new(ServerLog::default()));
        let stderr = child.stderr.take().expect("piped stderr");
        std::thread::spawn({
            let log = log.clone();
            move || keep_log_of(stderr, &log)
        });
        let stdout_lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn({
            let stdout_lines = stdout_lines.clone();
            move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    stdout_lines.lock().unwrap().push(line);
                }
            }
        });

        let mut server = ServerProcess {
            child,
            url: String::new(),
            bootstrap_key: None,
            bootstrap_workspace: None,
            stdout: stdout_lines,
            log,
        };
        match ready_file.wait(&mut server.child, START_TIMEOUT) {
            Ok(ready) => {
                server.url = ready.url;
                server.bootstrap_key = ready.key;
                server.bootstrap_workspace = ready.workspace;
                server
            }
            Err(not_ready) => {
                let _ = server.child.kill();
                let _ = server.child.wait();
                // The log threads end with the process; give them a moment to read its last words.
                std::thread::sleep(Duration::from_millis(100));
                panic!("{not_ready}; its log:\n{}", server.log_tail())
            }
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A URL on this server.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Uploads a small file named `name` with `key` (`POST /v1/files`); its id.
    pub async fn upload_small_file(&self, key: &str, name: &str) -> String {
        self.upload_file(key, name, b"small".to_vec()).await
    }

    /// Uploads `bytes` as a file named `name` with `key` (`POST /v1/files`); its id.
    pub async fn upload_file(&self, key: &str, name: &str, bytes: Vec<u8>) -> String {
        let part = reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned());
        let response = http_client()
            .post(self.at("/v1/files"))
            .bearer_auth(key)
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send()
            .await
            .expect("POST /v1/files");
        assert_eq!(response.status(), reqwest::StatusCode::CREATED);
        let file: Value = response.json().await.expect("a file's JSON");
        file["id"].as_str().expect("a file id").to_owned()
    }

    /// `GET /v1/files/{id}` with `key`: its status and body (null when the body is not JSON).
    pub async fn file_details(&self, key: &str, id: &str) -> (reqwest::StatusCode, Value) {
        let response = http_client()
            .get(self.at(&format!("/v1/files/{id}")))
            .bearer_auth(key)
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .expect("GET /v1/files/{id}");
        (response.status(), response.json().await.unwrap_or_default())
    }

    /// Every line the server printed to stdout so far, at least up to its "listening on" line
    /// (printed before the ready file is written, but read on another thread).
    pub fn stdout_lines(&self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines = self.stdout.lock().unwrap().clone();
            if Instant::now() >= deadline || lines.iter().any(|line| line.starts_with(LISTENING)) {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The last lines of the server's log (stderr).
    pub fn log_tail(&self) -> String {
        let log = self.log.lock().unwrap();
        log.lines[log.lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }

    /// Whether the server logs a line containing `text` within 5 s (its log is written in batches).
    pub async fn logged(&self, text: &str) -> bool {
        for _ in 0..50 {
            if self.log.lock().unwrap().lines.iter().any(|line| line.contains(text)) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// Everything the server logged (stderr) so far.
    pub fn logs(&self) -> String {
        let log = self.log.lock().unwrap();
        let mut text = log.lines.join("\n");
        text.push('\n');
        text
    }

    /// The first line of the server's log that reports a panic, if any did (the log tail may
    /// have moved past it).
    pub fn first_panic(&self) -> Option<String> {
        self.log.lock().unwrap().first_panic.clone()
    }

    /// Asks the server to stop, gracefully: SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status().expect("kill");
        assert!(status.success(), "kill -TERM {} failed", self.pid());
    }

    /// Waits up to `limit` for the server to exit.
    pub fn wait_for_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Stops the server the way a crash or the OOM killer would: SIGKILL, no shutdown code runs.
    /// (`Child::kill` sends SIGKILL on Unix.)
    pub fn kill(mut self) -> ExitStatus {
        self.child.kill().expect("killing cabinet serve");
        self.child.wait().expect("reaping cabinet serve")
    }

    /// The most resident memory the server has used so far (`VmHWM`), in bytes.
    pub fn peak_resident_bytes(&self) -> u64 {
        self.memory_status("VmHWM")
    }

    /// The resident memory the server uses now (`VmRSS`), in bytes.
    pub fn resident_bytes(&self) -> u64 {
        self.memory_status("VmRSS")
    }

    /// A `kB` line of `/proc/<pid>/status`, in bytes.
    fn memory_status(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("reading /proc/<pid>/status (Linux only)");
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|value| value.trim().strip_suffix("kB"))
            .and_then(|kib| kib.trim().parse().ok())
            .unwrap_or_else(|| panic!("a {field} line in /proc/<pid>/status"));
        kib * 1024
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- last lines of the cabinet serve log ({}) ---\n{}", self.url, self.log_tail());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keep_log_of(stream: impl Read, log: &Mutex<ServerLog>) {
    for line in BufReader::new(stream).lines().map_while(Result::ok) {
        let mut log = log.lock().unwrap();
        if line.contains("panicked") && log.first_panic.is_none() {
            log.first_panic = Some(line.clone());
        }
        log.lines.push(line);
    }
}

/// The first API key (`cab_…`) in a line of text.
pub fn api_key_in(line: &str) -> Option<String> {
    let start = line.find("cab_")?;
    let key: String = line[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    (key.len() > "cab_".len()).then_some(key)
}

/// What an `admin` command did.
#[derive(Debug)]
pub struct AdminRun {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cabinet --data-dir DIR admin ARGS…` to completion.
pub fn admin(data_dir: &Path, args: &[&str]) -> AdminRun {
    admin_with_env(data_dir, args, &[])
}

/// Like [`admin`], with environment variables set for the command only.
pub fn admin_with_env(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> AdminRun {
    let output = hermetic_command(data_dir)
        .arg("admin")
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("running cabinet admin");
    AdminRun {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs an `admin … --json` command that must succeed, and parses what it printed.
pub fn admin_json(data_dir: &Path, args: &[&str]) -> Value {
    admin_json_with_env(data_dir, args, &[])
}

/// Like [`admin_json`], with environment variables set for the command only.
pub fn admin_json_with_env(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Value {
    let run = admin_with_env(data_dir, args, env);
    assert!(run.status.success(), "cabinet admin {args:?} failed ({}):\n{}", run.status, run.stderr);
    serde_json::from_str(run.stdout.trim())
        .unwrap_or_else(|err| panic!("cabinet admin {args:?} printed no JSON ({err}):\n{}", run.stdout))
}

/// A workspace and a key for it, made with the admin CLI.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub workspace_id: String,
    pub key_id: String,
    pub key: String,
}

impl Tenant {
    /// Creates a workspace (with an optional quota) and a key of `role` for it.
    pub fn create(data_dir: &Path, name: &str, quota_bytes: Option<u64>, role: &str) -> Tenant {
        let quota = quota_bytes.map(|bytes| bytes.to_string());
        let mut args = vec!["create-workspace", "--name", name, "--json"];
        if let Some(quota) = &quota {
            args.extend(["--quota-bytes", quota]);
        }
        let workspace = admin_json(data_dir, &args);
        let workspace_id = workspace["id"].as_str().expect("a workspace id").to_owned();
        let key =
            admin_json(data_dir, &["create-key", "--workspace", &workspace_id, "--role", role, "--json"]);
        Tenant {
            workspace_id,
            key_id: key["id"].as_str().expect("a key id").to_owned(),
            key: key["key"].as_str().expect("a key secret").to_owned(),
        }
    }
}

/// Renames file `id`, then adds and removes a reference to it, each by `statement` (SQL with `$1`
/// the file's id, run on a connection of the test's own as another process would), and checks that
/// `details` (the body of `GET /v1/files/{id}`) shows each change on the very next request.
pub async fn changes_to_a_file_are_seen_at_once(
    mut statement: impl AsyncFnMut(&'static str),
    details: impl AsyncFn() -> Value,
) {
    // The file's own row.
    statement("UPDATE files SET name = 'renamed.txt' WHERE id = $1").await;
    let file = details().await;
    assert_eq!(file["name"], "renamed.txt", "{file}");
    // Its references, added and removed.
    statement(
        "INSERT INTO file_references (workspace_id, file_id, kind, ref_id, created_at) \
         SELECT workspace_id, id, 'post', 'p1', 0 FROM files WHERE id = $1",
    )
    .await;
    let file = details().await;
    assert_eq!(file["references"][0]["id"], "p1", "{file}");
    statement("DELETE FROM file_references WHERE file_id = $1").await;
    let file = details().await;
    assert_eq!(file["references"], serde_json::json!([]), "{file}");
}

/// The regular files under a folder, recursively (an absent folder has none).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return found };
    for entry in entries.map(|entry| entry.expect("a directory entry")) {
        let file_type = entry.file_type().expect("a file type");
        if file_type.is_dir() {
            found.extend(files_under(&entry.path()));
        } else if file_type.is_file() {
            found.push(entry.path());
        }
    }
    found
}
