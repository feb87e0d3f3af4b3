//! The processes a benchmark drives, each owned by the harness and stopped when dropped: the
//! real `cabinet serve` release binary, nginx (Debian's `nginx-light`, dav module) as the
//! baseline, and the clients both are measured with (curl for whole transfers, wrk for rates).

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use cabinet_harness::ReadyFile;
use serde_json::Value;

/// How long a release build may take to write its ready file (migrations on a busy machine).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A free loopback port (bound, read and released; nothing else on this machine races us for it
/// within the next few milliseconds).
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A `cabinet` command with none of the caller's `CABINET_*` settings.
fn cabinet_command(binary: &Path, data_dir: &Path, database_url: Option<&str>) -> Command {
    let mut command = cabinet_harness::cabinet_command(binary);
    command.arg("--data-dir").arg(data_dir);
    if let Some(url) = database_url {
        command.arg("--database-url").arg(url);
    }
    command
}

/// Runs `cabinet admin …` and parses its `--json` output.
pub fn admin(binary: &Path, data_dir: &Path, database_url: Option<&str>, args: &[&str]) -> Result<Value> {
    let output = cabinet_command(binary, data_dir, database_url)
        .arg("admin")
        .args(args)
        .arg("--json")
        .stderr(Stdio::inherit())
        .output()
        .context("running cabinet admin")?;
    if !output.status.success() {
        bail!("cabinet admin {args:?} failed: {}", output.status);
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// A running `cabinet serve`.
pub struct Cabinet {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// The bootstrap admin key (on a fresh data folder).
    pub key: Option<String>,
    /// The bootstrap workspace (on a fresh data folder).
    pub workspace: Option<String>,
    /// Where the S3 surface listens (with `--s3-listen`).
    pub s3_url: Option<String>,
    /// What the server writes to stderr.
    log: PathBuf,
}

impl Cabinet {
    /// Starts the server on `data_dir` (a fresh folder gets a bootstrap key), logging to
    /// `<data_dir>.log`. Rate limiting is off unless `extra` sets it.
    pub fn start(binary: &Path, data_dir: &Path, extra: &[&str]) -> Result<Self> {
        std::fs::create_dir_all(data_dir)?;
        let log_path = data_dir.with_extension("log");
        let log = std::fs::File::create(&log_path)?;
        let rate_limit_off: &[&str] =
            if extra.contains(&"--rate-limit-per-minute") { &[] } else { &["--rate-limit-per-minute", "0"] };
        let ready_file = ReadyFile::new()?;
        let mut command = cabinet_command(binary, data_dir, None);
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(rate_limit_off)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        ready_file.pass_to(&mut command);
        let mut child = command.spawn().with_context(|| format!("starting {}", binary.display()))?;
        match ready_file.wait(&mut child, START_TIMEOUT) {
            Ok(ready) => Ok(Cabinet {
                child,
                url: ready.url,
                key: ready.key,
                workspace: ready.workspace,
                s3_url: ready.s3_url,
                log: log_path,
            }),
            Err(not_ready) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{not_ready}; see {}", data_dir.with_extension("log").display())
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last `lines` lines of the server's log, to explain a failure before the harness
    /// removes its work folder.
    pub fn log_tail(&self, lines: usize) -> String {
        match std::fs::read_to_string(&self.log) {
            Ok(log) => {
                let all: Vec<&str> = log.lines().collect();
                all[all.len().saturating_sub(lines)..].join("\n")
            }
            Err(err) => format!("(no log at {}: {err})", self.log.display()),
        }
    }

    /// What the server logged at WARN or ERROR (where a failed request's cause is), as
    /// `trouble_in` picks it; its last `lines` lines when it logged none.
    pub fn log_trouble(&self, lines: usize) -> String {
        let Ok(log) = std::fs::read_to_string(&self.log) else { return self.log_tail(lines) };
        trouble_in(&log, lines).unwrap_or_else(|| self.log_tail(lines))
    }

    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// The server's peak resident memory so far (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> Result<u64> {
        peak_rss_of(self.pid())
    }

    /// The CPU time the server has used so far, user and system, all its threads, in seconds.
    pub fn cpu_seconds(&self) -> Result<f64> {
        let (user, system) = cpu_times(&format!("/proc/{}/stat", self.pid()))?;
        Ok(user + system)
    }

    /// The CPU time (user and system), in seconds, of the server's threads whose name starts
    /// with `prefix` (as `/proc/PID/task/TID/comm` gives it, at most 15 bytes).
    pub fn threads_cpu_seconds(&self, prefix: &str) -> Result<f64> {
        let mut total = 0.0;
        for task in std::fs::read_dir(format!("/proc/{}/task", self.pid()))? {
            let task = task?.path();
            // A thread that ended between the listing and the read is not counted.
            let Ok(name) = std::fs::read_to_string(task.join("comm")) else { continue };
            if name.starts_with(prefix) {
                if let Ok((user, system)) = cpu_times(&task.join("stat").to_string_lossy()) {
                    total += user + system;
                }
            }
        }
        Ok(total)
    }
}

/// The user and system CPU times, in seconds, in a `/proc/…/stat` file.
fn cpu_times(stat_path: &str) -> Result<(f64, f64)> {
    let stat = std::fs::read_to_string(stat_path)?;
    // The command name (field 2) may hold spaces and parentheses; what follows its last ')'
    // starts at field 3, so utime and stime (fields 14 and 15) are the 12th and 13th there.
    let (_, fields) = stat.rsplit_once(')').ok_or_else(|| anyhow!("no command name in {stat_path}"))?;
    let ticks: Vec<u64> =
        fields.split_whitespace().skip(11).take(2).map(str::parse).collect::<Result<_, _>>()?;
    match ticks[..] {
        [user, system] => Ok((user as f64 / USER_HZ, system as f64 / USER_HZ)),
        _ => bail!("no utime and stime in {stat_path}"),
    }
}

/// The unit of /proc's CPU times: clock ticks of 1/100 s (Linux's `USER_HZ`, 100 on every
/// architecture it runs on here).
const USER_HZ: f64 = 100.0;

/// A process's peak resident memory so far (`VmHWM`), in bytes.
fn peak_rss_of(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse().ok())
        .ok_or_else(|| anyhow!("no VmHWM in /proc/{pid}/status"))?;
    Ok(kib * 1024)
}

/// Raises this process's open-file limit (soft and hard) to at least `wanted`, which the servers
/// it starts inherit; returns the soft limit now in force. Past the hard limit this needs root (or
/// CAP_SYS_RESOURCE), as a server holding that many connections would.
pub fn raise_open_files(wanted: u64) -> Result<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let now = getrlimit(Resource::Nofile);
    if now.current.is_none_or(|current| current >= wanted) {
        return Ok(now.current.unwrap_or(u64::MAX));
    }
    let maximum = now.maximum.map(|maximum| maximum.max(wanted));
    setrlimit(Resource::Nofile, Rlimit { current: Some(wanted), maximum }).with_context(|| {
        format!("raising the open-file limit to {wanted} (hard limit {:?}; root may raise it)", now.maximum)
    })?;
    Ok(wanted)
}

impl Drop for Cabinet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx in the foreground with a config of our own: loopback only, PUT/DELETE through the dav
/// module, request bodies buffered on the same filesystem as their target, sendfile on.
pub struct Nginx {
    child: Child,
    pub url: String,
    /// Where `GET /x` is served from and `PUT /x` lands.
    pub root: PathBuf,
}

impl Nginx {
    /// nginx as a static file server: `GET /x` from its root, `PUT /x` into it.
    pub fn start(dir: &Path) -> Result<Self> {
        let root = dir.join("root");
        std::fs::create_dir_all(&root)?;
        Self::launch(dir, WORKER_CONNECTIONS, "", &dav_location(&root), root, free_port()?)
    }

    /// [`Nginx::start`], able to hold `connections` more connections at once (each worker all of
    /// them: the kernel does not spread accepts evenly) and keeping an idle keep-alive connection
    /// open for `keepalive_secs`.
    pub fn start_holding(dir: &Path, connections: usize, keepalive_secs: u64) -> Result<Self> {
        let root = dir.join("root");
        std::fs::create_dir_all(&root)?;
        let http = format!("keepalive_timeout {keepalive_secs}s;");
        Self::launch(dir, WORKER_CONNECTIONS + connections, &http, &dav_location(&root), root, free_port()?)
    }

    /// nginx on `port` as a caching reverse proxy in front of `upstream`, as a CDN would stand: `/storage/`
    /// (signed GETs) cached by full URL — path and signed query — for `cache_secs`, with one request
    /// upstream per URL however many miss at once (`proxy_cache_lock`); everything else passed
    /// through. Signed GETs say `Cache-Control: private` (for browsers), so the cache is told to
    /// keep them anyway, for no longer than a URL window: within one, every URL it holds is valid.
    /// Each response says `X-Cache-Status` (HIT, MISS, …).
    pub fn caching_proxy_on(dir: &Path, upstream: &str, cache_secs: u64, port: u16) -> Result<Self> {
        let cache = dir.join("cache");
        std::fs::create_dir_all(&cache)?;
        let http = format!(
            "proxy_cache_path {cache} levels=1:2 keys_zone=files:16m max_size=1g inactive=1h use_temp_path=off;\n  \
             {upstream}",
            cache = cache.display(),
            upstream = upstream_block("cabinet", upstream),
        );
        let server = format!(
            "location /storage/ {{\n      {pass}\n      proxy_cache files;\n      \
             proxy_cache_key $scheme$proxy_host$request_uri;\n      proxy_cache_lock on;\n      \
             proxy_ignore_headers Cache-Control Expires;\n      proxy_cache_valid 200 206 {cache_secs}s;\n      \
             add_header X-Cache-Status $upstream_cache_status always;\n    }}\n    \
             location / {{ {pass} }}",
            pass = pass_to("cabinet"),
        );
        Self::launch(dir, WORKER_CONNECTIONS, &http, &server, dir.join("root"), port)
    }

    /// nginx on `port` as a reverse proxy for uploads in front of `upstream` (Cabinet), and, in
    /// the same nginx, the same front in front of a dav server block of its own (the baseline):
    /// both stream request bodies upstream as they arrive (`proxy_request_buffering off`), with no
    /// body size limit, over keep-alive upstream connections. Returns nginx (its `url` is the front
    /// for Cabinet, its `root` the dav folder) and the URL of the front for dav.
    pub fn upload_proxies_on(dir: &Path, upstream: &str, port: u16) -> Result<(Self, String)> {
        let root = dir.join("root");
        std::fs::create_dir_all(&root)?;
        let (dav_port, dav_front_port) = (free_port()?, free_port()?);
        let streaming = "proxy_request_buffering off; proxy_read_timeout 600s; proxy_send_timeout 600s;";
        let http = format!(
            "{cabinet}\n  {dav}\n  \
             server {{\n    listen 127.0.0.1:{dav_port};\n    {dav_location}\n  }}\n  \
             server {{\n    listen 127.0.0.1:{dav_front_port};\n    location / {{ {to_dav} {streaming} }}\n  }}",
            cabinet = upstream_block("cabinet", upstream),
            dav = upstream_block("dav", &format!("127.0.0.1:{dav_port}")),
            dav_location = dav_location(&root),
            to_dav = pass_to("dav"),
        );
        let server = format!("location / {{ {} {streaming} }}", pass_to("cabinet"));
        let nginx = Self::launch(dir, WORKER_CONNECTIONS, &http, &server, root, port)?;
        for port in [dav_port, dav_front_port] {
            wait_for_listener(port, dir)?;
        }
        Ok((nginx, format!("http://127.0.0.1:{dav_front_port}")))
    }

    /// The peak resident memory (`VmHWM`) of the master and each worker, summed, in bytes.
    pub fn peak_rss(&self) -> Result<u64> {
        let master = self.child.id();
        let children = std::fs::read_to_string(format!("/proc/{master}/task/{master}/children"))?;
        let mut total = peak_rss_of(master)?;
        for worker in children.split_whitespace() {
            total += peak_rss_of(worker.parse()?)?;
        }
        Ok(total)
    }

    fn launch(
        dir: &Path,
        worker_connections: usize,
        http_extra: &str,
        server: &str,
        root: PathBuf,
        port: u16,
    ) -> Result<Self> {
        let body = dir.join("body");
        std::fs::create_dir_all(&body)?;
        let running_as_root =
            Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
        // Each connection is a descriptor, and a proxied one two; past the hard limit nginx could
        // not raise it.
        let hard_limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum;
        let open_files = (2 * worker_connections as u64 + 64).min(hard_limit.unwrap_or(u64::MAX));
        let config = format!(
            "daemon off;\nmaster_process on;\nworker_processes auto;\n{user}pid {dir}/nginx.pid;\n\
             worker_rlimit_nofile {open_files};\n\
             error_log {dir}/error.log warn;\nevents {{ worker_connections {worker_connections}; }}\n\
             http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  keepalive_requests 1000000;\n\
               default_type application/octet-stream;\n  client_max_body_size 0;\n\
               client_body_temp_path {body};\n  {http_extra}\n\
               server {{\n    listen 127.0.0.1:{port} backlog={backlog};\n    {server}\n  }}\n}}\n",
            user = if running_as_root { "user root;\n" } else { "" },
            backlog = LISTEN_BACKLOG,
            dir = dir.display(),
            body = body.display(),
        );
        let config_path = dir.join("nginx.conf");
        std::fs::write(&config_path, config)?;
        let child = Command::new(nginx_binary()?)
            .arg("-c")
            .arg(&config_path)
            .arg("-p")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr.log"))?)
            .spawn()
            .context("starting nginx")?;
        let nginx = Nginx { child, url: format!("http://127.0.0.1:{port}"), root };
        wait_for_listener(port, dir)?;
        Ok(nginx)
    }
}

/// What one nginx worker may hold open when a figure asks for no more.
const WORKER_CONNECTIONS: usize = 1024;
/// nginx's listen queue: Cabinet's (`cabinet::connections::LISTEN_BACKLOG`), where nginx's own
/// default is 511, so a burst of connections waits the same on both.
const LISTEN_BACKLOG: u32 = 4096;

/// `GET /x` from `root`, `PUT /x` and `DELETE /x` into it (the dav module).
fn dav_location(root: &Path) -> String {
    format!(
        "root {root};\n    location / {{ dav_methods PUT DELETE; create_full_put_path on; dav_access user:rw; }}",
        root = root.display()
    )
}

/// An upstream group `name` of one server at `address` (`http://` or not), with idle
/// keep-alive connections kept for reuse.
fn upstream_block(name: &str, address: &str) -> String {
    format!("upstream {name} {{ server {}; keepalive 64; }}", address.trim_start_matches("http://"))
}

/// Passing requests on to the upstream group `name` over its keep-alive connections.
fn pass_to(name: &str) -> String {
    format!("proxy_pass http://{name}; proxy_http_version 1.1; proxy_set_header Connection \"\";")
}

fn wait_for_listener(port: u16, dir: &Path) -> Result<()> {
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("nginx did not listen on port {port}; see {}/error.log", dir.display())
}

fn nginx_binary() -> Result<PathBuf> {
    for candidate in ["/usr/sbin/nginx", "/usr/bin/nginx"] {
        if Path::new(candidate).exists() {
            return Ok(candidate.into());
        }
    }
    bail!("nginx is not installed (dev/bench installs Debian's nginx-light)")
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM (`kill` sends SIGKILL to the master only, leaving workers): ask it to stop.
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs curl (the same client for Cabinet and nginx) and returns the wall time, the HTTP status
/// and the body it printed.
pub fn curl(args: &[&str]) -> Result<(Duration, u16, String)> {
    let started = Instant::now();
    let output = Command::new("curl")
        .args(["-sS", "--noproxy", "*", "-H", "Expect:", "-w", "\n%{http_code}"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running curl")?;
    let elapsed = started.elapsed();
    if !output.status.success() {
        bail!("curl {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
    Ok((elapsed, code.trim().parse().unwrap_or(0), body.to_owned()))
}

/// What wrk measured.
#[derive(Debug, Clone, Copy)]
pub struct WrkResult {
    pub requests_per_second: f64,
    pub p99_ms: f64,
    pub errors: u64,
}

/// `wrk -t2 -c<connections> -d<seconds>s --latency` against `url`, with extra wrk args.
pub fn wrk(url: &str, connections: u32, seconds: u32, extra: &[&str]) -> Result<WrkResult> {
    let output = Command::new("wrk")
        .args(["-t2", &format!("-c{connections}"), &format!("-d{seconds}s"), "--latency"])
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .context("running wrk (dev/bench installs Debian's wrk)")?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!("wrk failed: {text}{}", String::from_utf8_lossy(&output.stderr));
    }
    let requests_per_second = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| anyhow!("no Requests/sec in wrk output:\n{text}"))?;
    let p99_ms = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("99%"))
        .and_then(|v| duration_ms(v.trim()))
        .ok_or_else(|| anyhow!("no 99% latency in wrk output:\n{text}"))?;
    // "Non-2xx or 3xx responses: N" and "Socket errors: connect A, read B, write C, timeout D"
    let mut errors = 0;
    for line in text.lines().map(str::trim) {
        if let Some(n) = line.strip_prefix("Non-2xx or 3xx responses:") {
            errors += n.trim().parse::<u64>().unwrap_or(0);
        }
        if let Some(rest) = line.strip_prefix("Socket errors:") {
            errors += rest
                .split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    Ok(WrkResult { requests_per_second, p99_ms, errors })
}

/// wrk prints durations as `812.00us`, `1.23ms`, `2.01s`.
fn duration_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => number / 1000.0,
        "ms" => number,
        "s" => number * 1000.0,
        "m" => number * 60_000.0,
        _ => return None,
    })
}

/// A log's first few ERROR lines, then its last `lines` WARN or ERROR lines; `None` when it has
/// none. After a failure the requests still under way go on logging (successes, slow-acquire
/// warnings), so neither the log's tail nor its last warnings alone need hold the first error.
fn trouble_in(log: &str, lines: usize) -> Option<String> {
    const FIRST_ERRORS: usize = 5;
    let trouble: Vec<&str> =
        log.lines().filter(|line| line.contains(" WARN ") || line.contains(" ERROR ")).collect();
    if trouble.is_empty() {
        return None;
    }
    let last = trouble.len().saturating_sub(lines);
    let mut shown: Vec<&str> =
        trouble[..last].iter().filter(|line| line.contains(" ERROR ")).take(FIRST_ERRORS).copied().collect();
    if !shown.is_empty() {
        shown.push("…");
    }
    shown.extend(&trouble[last..]);
    Some(shown.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::trouble_in;

    #[test]
    fn the_first_errors_are_kept_ahead_of_the_last_warnings() {
        let mut log = String::from("t  INFO started\nt ERROR first failure\nt ERROR second failure\n");
        for n in 0..10 {
            log.push_str(&format!("t  WARN slow acquire {n}\nt  INFO answered {n}\n"));
        }
        let shown = trouble_in(&log, 3).unwrap();
        assert_eq!(
            shown,
            "t ERROR first failure\nt ERROR second failure\n…\nt  WARN slow acquire 7\nt  WARN slow acquire 8\nt  WARN slow acquire 9"
        );
        assert_eq!(trouble_in("t  INFO all well\n", 3), None);
        assert_eq!(trouble_in("t  WARN once\n", 3).unwrap(), "t  WARN once");
    }
}
