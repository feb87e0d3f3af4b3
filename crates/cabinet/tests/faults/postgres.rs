//! 2. PostgreSQL restarted mid-traffic: a private cluster, stopped and started under the clients.

use super::*;

/// A PostgreSQL cluster of the test's own, made by `dev/postgres`, so that it can be stopped and
/// started again without disturbing the tests that share `dev/test`'s cluster.
struct PrivatePostgres {
    dir: String,
    url: String,
    port: String,
    bin: PathBuf,
}

impl PrivatePostgres {
    fn start() -> Option<PrivatePostgres> {
        let must = must_have_faults() || std::env::var("CABINET_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
        let output = Command::new(dev_script("postgres")).arg("start").output();
        let exports = match output {
            Ok(output) if output.status.success() => String::from_utf8(output.stdout).unwrap(),
            Ok(output) => {
                let why = format!("dev/postgres start failed: {}", String::from_utf8_lossy(&output.stderr));
                assert!(!must, "{why}");
                eprintln!("SKIPPED: {why}");
                return None;
            }
            Err(err) => {
                assert!(!must, "running dev/postgres failed: {err}");
                eprintln!("SKIPPED: running dev/postgres failed: {err}");
                return None;
            }
        };
        let export = |name: &str| {
            exports
                .lines()
                .find_map(|line| line.strip_prefix(&format!("export {name}=")))
                .unwrap_or_else(|| panic!("dev/postgres printed no {name}: {exports}"))
                .to_owned()
        };
        let url = export("CABINET_TEST_DATABASE_URL");
        let port =
            url.rsplit_once(':').and_then(|(_, rest)| rest.split('/').next()).expect("a port").to_owned();
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .expect("dev/postgres installed PostgreSQL under /usr/lib/postgresql")
            .map(|entry| entry.unwrap().path())
            .collect();
        versions.sort_by_key(|path| path.file_name().unwrap().to_string_lossy().parse::<u32>().unwrap_or(0));
        let bin = versions.pop().expect("a PostgreSQL version").join("bin");
        let postgres = PrivatePostgres { dir: export("CABINET_PG_DIR"), url, port, bin };
        // dev/postgres commits asynchronously, for speed: a crash of PostgreSQL itself then loses
        // the last commits, files included. This cluster is to be crashed, so it commits durably.
        postgres.pg_ctl(&["-D", &format!("{}/data", postgres.dir), "-m", "fast", "-w", "stop"]);
        postgres.start_again();
        Some(postgres)
    }

    /// `pg_ctl` as the cluster's owner (`dev/postgres` runs it as `postgres` when root).
    fn pg_ctl(&self, args: &[&str]) {
        let pg_ctl = self.bin.join("pg_ctl");
        let root = Command::new("id").arg("-u").output().is_ok_and(|id| id.stdout.trim_ascii() == b"0");
        let mut command = if root {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(pg_ctl);
            command
        } else {
            Command::new(pg_ctl)
        };
        let output = command.args(args).output().expect("running pg_ctl");
        assert!(output.status.success(), "pg_ctl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    }

    /// Stops the cluster: `fast` terminates its sessions and checkpoints; `immediate` stops it
    /// the way a crash would, with no checkpoint.
    fn stop(&self, shutdown: &str) {
        self.pg_ctl(&["-D", &format!("{}/data", self.dir), "-m", shutdown, "-w", "stop"]);
    }

    /// Starts the stopped cluster on its port (after a crash it first recovers from its log), with
    /// synchronous commits: a commit is in the log before it is acknowledged. (`fsync=off` stays:
    /// the machine does not crash, only PostgreSQL, and the log's writes are in the OS's cache.)
    fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=on -c max_connections=100",
            self.port, self.dir
        );
        let log = format!("{}/server.log", self.dir);
        self.pg_ctl(&[
            "-D",
            &format!("{}/data", self.dir),
            "-l",
            &log,
            "-w",
            "-t",
            "60",
            "-o",
            &options,
            "start",
        ]);
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = Command::new(dev_script("postgres")).args(["stop", &self.dir]).status();
    }
}

/// How long the clients may take to see a fault, and to see the server recover from it. A request
/// waiting for a database connection gives up after the pool's 30 s acquire timeout.
const FAULT_SEEN_WITHIN: Duration = Duration::from_secs(90);

/// 2. PostgreSQL stopped and started again while clients upload, list and download, twice: a
/// fast shutdown (sessions terminated) and an immediate one (as in a crash; it recovers from its
/// log). Meanwhile clients are told 503 `unavailable`, and the server recovers by itself, without
/// a restart, as its pool reconnects.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restarted_mid_traffic_is_answered_unavailable_and_the_server_recovers_by_itself() {
    let Some(postgres) = PrivatePostgres::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let flags = ["--database-url", postgres.url.as_str()];
    let key = tenant_on(&data_dir, &flags, &[], "postgres-restart");
    let server = ServerProcess::start_with(&data_dir, &flags);
    let client = Arc::new(Client::new(&server, &key));

    let traffic = Traffic::start(&client);
    traffic
        .wait_for("uploads succeed before the fault", FAULT_SEEN_WITHIN, |told| {
            told.ok(BEFORE, "uploads") >= 6
        })
        .await;
    // After a fast shutdown PostgreSQL is started again as soon as a client was refused; after the
    // immediate one it stays down until every client was, so that requests also wait out the
    // pool's acquire timeout (answered 503 too) rather than only fail on a cut session.
    for (fault, shutdown, refusals) in [(0, "fast", 1), (1, "immediate", CLIENTS)] {
        traffic.enter(during(fault));
        postgres.stop(shutdown);
        traffic
            .wait_for("clients are told PostgreSQL is gone", FAULT_SEEN_WITHIN, |told| {
                told.refused(during(fault)) >= refusals
            })
            .await;
        postgres.start_again();
        traffic.enter(after(fault));
        traffic
            .wait_for("every operation succeeds again without a server restart", FAULT_SEEN_WITHIN, |told| {
                ["uploads", "lists", "downloads"]
                    .iter()
                    .all(|operation| told.ok(after(fault), operation) >= 2)
            })
            .await;
    }
    let (mut stored, refused_uploads, told) = traffic.stop().await;

    stored.extend(settle_refused_uploads(&client, refused_uploads).await);
    let files = assert_nothing_lost(&client, &stored).await;
    let temporaries = files_under(&data_dir.join("blobs").join("tmp"));
    assert!(temporaries.is_empty(), "no temporary outlives its upload: {temporaries:?}");
    println!(
        "postgres restarted mid-traffic (fast, then immediate shutdown): {}; {} files stored, all \
         whole; recovered both times without a restart",
        told.summary(),
        files
    );
    let first_panic = server.first_panic();
    let log = server.log_tail();
    server.kill();
    assert!(first_panic.is_none(), "the server panicked: {first_panic:?}; its log:\n{log}");
    assert_check_clean_on(&data_dir, &flags, &[]);
}

/// 2b. Connections left idle in the pool while PostgreSQL restarts are dead once it is back: each
/// is found so (pinged, having been idle) and replaced before a statement runs on it, so no
/// request fails after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_left_idle_across_a_postgres_restart_fail_no_request_once_it_is_back() {
    let Some(postgres) = PrivatePostgres::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let flags = ["--database-url", postgres.url.as_str()];
    let key = tenant_on(&data_dir, &flags, &[], "postgres-idle");
    let server = ServerProcess::start_with(&data_dir, &flags);
    let client = Client::new(&server, &key);
    // As many requests at once as the pool holds connections, and more: it opens all it may.
    let burst = || {
        futures::future::join_all((0..32).map(|_| {
            client.send(client.http.get(format!("{}/v1/files", client.base)).bearer_auth(&client.key))
        }))
    };
    for (status, body) in burst().await {
        assert_eq!(status, StatusCode::OK, "before the restart: {body}");
    }
    postgres.stop("fast");
    postgres.start_again();
    // At once, before the server's background work (which looks for due webhooks every 100 ms)
    // has met and dropped the dead connections itself.
    let failed: Vec<String> = burst()
        .await
        .into_iter()
        .filter(|(status, _)| *status != StatusCode::OK)
        .map(|(status, body)| format!("{status}: {body}"))
        .collect();
    assert!(failed.is_empty(), "requests failed on connections left from before the restart: {failed:?}");
    let first_panic = server.first_panic();
    server.kill();
    assert!(first_panic.is_none(), "the server panicked: {first_panic:?}");
}

/// Where a `CommitCutter` cuts the connection of the first transaction that inserts a file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// Once its `COMMIT` reached PostgreSQL, before the answer comes back: the commit happened,
    /// and its client cannot know.
    AfterCommit,
    /// Instead of relaying its `COMMIT`: the transaction is rolled back, nothing was made.
    BeforeCommit,
}

/// A TCP proxy in front of PostgreSQL that, once armed, cuts the connection of the first
/// transaction that inserts a file where its `Cut` says.
struct CommitCutter {
    port: u16,
    armed: Arc<AtomicBool>,
    cuts: Arc<AtomicUsize>,
    accepting: tokio::task::JoinHandle<()>,
}

impl CommitCutter {
    async fn start(upstream_port: &str, at: Cut) -> CommitCutter {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = format!("127.0.0.1:{upstream_port}");
        let (armed, cuts) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
        let accepting = tokio::spawn({
            let (armed, cuts) = (armed.clone(), cuts.clone());
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else { continue };
                    tokio::spawn(relay_cutting_a_commit(client, server, at, armed.clone(), cuts.clone()));
                }
            }
        });
        CommitCutter { port, armed, cuts, accepting }
    }
}

impl Drop for CommitCutter {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// Relays one connection both ways. What the client sends is searched for the SQL of a file's
/// insert (in the extended protocol's `Parse`, which carries a statement's text the first time a
/// connection runs it) and then for `COMMIT` (sent as a simple query): that chunk is relayed, and
/// once PostgreSQL has had time to run it both sides are closed, its answer unread (`AfterCommit`),
/// or both are closed without it (`BeforeCommit`).
async fn relay_cutting_a_commit(
    client: tokio::net::TcpStream,
    server: tokio::net::TcpStream,
    at: Cut,
    armed: Arc<AtomicBool>,
    cuts: Arc<AtomicUsize>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let find = |haystack: &[u8], needle: &[u8]| haystack.windows(needle.len()).position(|w| w == needle);
    // Ends with whether the connection is to be cut.
    let requests = async {
        let mut chunk = vec![0u8; 64 * 1024];
        // The end of the previous chunk, so that a marker split between two reads is found.
        let mut tail: Vec<u8> = Vec::new();
        let mut inserted_a_file = false;
        loop {
            let read = match client_read.read(&mut chunk).await {
                Ok(0) | Err(_) => return false,
                Ok(read) => read,
            };
            let seen = [&tail[..], &chunk[..read]].concat();
            // Only a `COMMIT` after the file's insert: the bytes new in this read (and a marker
            // split by it), or those after the insert when it is in this read.
            let commit_from = if inserted_a_file {
                Some(tail.len().saturating_sub(b"COMMIT".len() - 1))
            } else if armed.load(Ordering::SeqCst) {
                find(&seen, b"INSERT INTO files (")
            } else {
                None
            };
            inserted_a_file |= commit_from.is_some();
            let cut = commit_from.is_some_and(|from| find(&seen[from..], b"COMMIT").is_some())
                && armed.swap(false, Ordering::SeqCst);
            if cut && at == Cut::BeforeCommit {
                return true;
            }
            if server_write.write_all(&chunk[..read]).await.is_err() || cut {
                return cut;
            }
            tail = seen[seen.len().saturating_sub(32)..].to_vec();
        }
    };
    let answers = tokio::io::copy(&mut server_read, &mut client_write);
    // Whichever direction ends first ends the connection. A cut stops relaying answers at once;
    // PostgreSQL is given time to run the `COMMIT` it was sent before its connection closes.
    let cut = tokio::select! {
        cut = requests => cut,
        _ = answers => false,
    };
    if cut {
        tokio::time::sleep(Duration::from_millis(500)).await;
        cuts.fetch_add(1, Ordering::SeqCst);
    }
}

/// 2c. An upload whose finishing transaction committed while the answer to its `COMMIT` was lost
/// (the connection cut just after): its client is told the upload failed, but the file was made,
/// so its bytes must stay with it. They used to be deleted as for an upload that failed, leaving
/// a listed file that could not be read.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_file_committed_with_its_answer_lost_keeps_its_bytes() {
    let Some(postgres) = PrivatePostgres::start() else { return };
    let cutter = CommitCutter::start(&postgres.port, Cut::AfterCommit).await;
    let url = postgres.url.replacen(&format!(":{}/", postgres.port), &format!(":{}/", cutter.port), 1);
    assert_ne!(url, postgres.url, "the server is to reach PostgreSQL through the proxy");
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let flags = ["--database-url", url.as_str()];
    let key = tenant_on(&data_dir, &flags, &[], "commit-answer-lost");
    let server = ServerProcess::start_with(&data_dir, &flags);
    let client = Client::new(&server, &key);

    cutter.armed.store(true, Ordering::SeqCst);
    let bytes = content(11, 300_000);
    let attempt = client.direct_upload("answer-lost.bin", bytes.clone()).await;
    assert_eq!(
        cutter.cuts.load(Ordering::SeqCst),
        1,
        "the file's COMMIT went through and its answer was cut"
    );
    let told = match &attempt {
        Attempt::Refused { status, code, .. } if status.is_server_error() => format!("{status} {code}"),
        _ => panic!("the answer to the file's commit never came, yet: {attempt:?}"),
    };
    // The commit happened: the file is there, and reads back as the bytes sent.
    let files = assert_nothing_lost(&client, &[]).await;
    assert_eq!(files, 1, "the committed file is listed");
    let listed = client.all_files().await;
    let id = listed[0]["id"].as_str().expect("a file id");
    assert_eq!(client.read(id).await.expect("the file reads back"), bytes);
    println!(
        "postgres answer to a file's COMMIT lost: the client was told {told}; the file is listed and whole"
    );

    let first_panic = server.first_panic();
    let log = server.log_tail();
    server.kill();
    assert!(first_panic.is_none(), "the server panicked: {first_panic:?}; its log:\n{log}");
    assert_check_clean_on(&data_dir, &flags, &[]);
}

/// 2d. A signed upload whose finishing transaction never committed (its connection cut instead of
/// the `COMMIT` being sent): its client is told 503, which says to retry, and the upload waits for
/// its bytes again, so the same URL sent again makes the file, whole. It used to be failed, as
/// when the commit may have happened, and the URL sent again was refused with 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_signed_upload_whose_commit_never_happened_takes_its_url_sent_again() {
    let Some(postgres) = PrivatePostgres::start() else { return };
    let cutter = CommitCutter::start(&postgres.port, Cut::BeforeCommit).await;
    let url = postgres.url.replacen(&format!(":{}/", postgres.port), &format!(":{}/", cutter.port), 1);
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let flags = ["--database-url", url.as_str()];
    let key = tenant_on(&data_dir, &flags, &[], "commit-never-sent");
    let server = ServerProcess::start_with(&data_dir, &flags);
    let client = Client::new(&server, &key);

    // Two signed uploads, each cut so, before any file is made: the proxy finds a file's insert by
    // its text, which a connection sends only the first time it runs it.
    let mut refused = Vec::new();
    for (i, name) in ["never-committed.bin", "never-committed-then-cancelled.bin"].into_iter().enumerate() {
        cutter.armed.store(true, Ordering::SeqCst);
        let attempt = client.signed_upload(name, content(12 + i as u8, 300_000)).await;
        assert_eq!(
            cutter.cuts.load(Ordering::SeqCst),
            i + 1,
            "{name}: its transaction was cut before its COMMIT"
        );
        match attempt {
            Attempt::Refused { upload: Some(upload), status, code } => {
                assert_unavailable("signed upload whose commit never happened", status, &code);
                refused.push(upload);
            }
            other => panic!("{name}: its commit never happened, yet: {other:?}"),
        }
    }
    for upload in &refused {
        let upload = status_once_settled(&client, &upload.id).await;
        assert_eq!(upload["status"], "WAITING", "it waits for its bytes again: {upload}");
    }
    assert_eq!(client.all_files().await.len(), 0, "no file was made");
    // The second is cancelled: what its attempt left at the file's key goes with it (`admin check`
    // below finds no orphan). The first's URL, sent again, makes its file.
    let cancelled = refused.pop().expect("two refused uploads");
    client.cancel_upload(&cancelled.id).await;
    let stored = settle_refused_uploads(&client, refused).await;
    assert_eq!(stored.len(), 1, "the URL sent again made the file");
    assert_eq!(assert_nothing_lost(&client, &stored).await, 1, "only that file is listed");
    println!("postgres COMMIT never sent: the client was told 503 and its URL, sent again, made the file");

    let first_panic = server.first_panic();
    let log = server.log_tail();
    server.kill();
    assert!(first_panic.is_none(), "the server panicked: {first_panic:?}; its log:\n{log}");
    assert_check_clean_on(&data_dir, &flags, &[]);
}
