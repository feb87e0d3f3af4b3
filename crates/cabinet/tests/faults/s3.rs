//! 3. S3 failing (a private s3s-fs behind a fault-injecting proxy) and killed mid-upload.

use super::*;

/// The credentials and bucket of the test's own S3 server (as `dev/s3-server` uses).
const S3_ACCESS_KEY: &str = "cabinet-test-key";
const S3_SECRET_KEY: &str = "cabinet-test-secret";
const S3_BUCKET: &str = "cabinet-test";

/// An s3s-fs of the test's own, on a data folder that outlives it, so that it can be killed and
/// started again (on another port: the proxy in front of it hides that) without disturbing the
/// tests that share `dev/test`'s.
struct PrivateS3 {
    binary: PathBuf,
    data: tempfile::TempDir,
    server: std::process::Child,
    address: std::net::SocketAddr,
}

impl PrivateS3 {
    fn start() -> Option<PrivateS3> {
        let must = must_have_faults() || std::env::var("CABINET_REQUIRE_S3").is_ok_and(|v| v == "1");
        let tools = std::env::var("CABINET_TOOLS_DIR").map(PathBuf::from).unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/cabinet-tools")
        });
        let binary = tools.join("bin/s3s-fs");
        if !binary.exists() {
            let why = format!("no s3s-fs at {} (dev/s3-server installs it)", binary.display());
            assert!(!must, "{why}");
            eprintln!("SKIPPED: {why}");
            return None;
        }
        let data = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(data.path().join("objects").join(S3_BUCKET)).unwrap();
        let (server, address) = Self::launch(&binary, data.path());
        Some(PrivateS3 { binary, data, server, address })
    }

    /// Starts s3s-fs on a free port and waits (bounded) for the address it logs.
    // The child is handed to `PrivateS3`, whose `kill` and `Drop` reap it.
    #[allow(clippy::zombie_processes)]
    fn launch(binary: &Path, data: &Path) -> (std::process::Child, std::net::SocketAddr) {
        let log_path = data.join(format!("server-{}.log", ulid::Ulid::new()));
        let log = std::fs::File::create(&log_path).unwrap();
        let mut server = Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", "0", "--access-key", S3_ACCESS_KEY])
            .args(["--secret-key", S3_SECRET_KEY])
            .arg(data.join("objects"))
            .env("RUST_LOG", "s3s_fs=info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting s3s-fs");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let logged = std::fs::read_to_string(&log_path).unwrap_or_default();
            let address = logged
                .split("server is running at http://")
                .nth(1)
                .and_then(|rest| rest.split(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':')).next())
                .and_then(|address| address.parse().ok());
            if let Some(address) = address {
                return (server, address);
            }
            if Instant::now() >= deadline {
                let _ = server.kill();
                let _ = server.wait();
                panic!("s3s-fs logged no address within 30 s:\n{logged}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: whatever it was receiving is cut off.
    fn kill(&mut self) {
        self.server.kill().expect("killing s3s-fs");
        self.server.wait().expect("reaping s3s-fs");
    }

    /// Starts it again on the same data folder; returns its new address.
    fn start_again(&mut self) -> std::net::SocketAddr {
        let (server, address) = Self::launch(&self.binary, self.data.path());
        (self.server, self.address) = (server, address);
        address
    }
}

impl Drop for PrivateS3 {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// What the proxy in front of S3 does to each new connection.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ProxyFault {
    /// Relays bytes both ways.
    Pass,
    /// Accepts, then closes at once, as a server going away does.
    Refuse,
    /// Answers this share of new connections' first request with a 503 or a 500 (at random), in
    /// S3's XML error shape, and relays the others.
    FailShare(f64),
    /// Relays, but cuts the connection once this many bytes of the request went through.
    CutAfter(u64),
}

/// A TCP proxy in front of S3 that injects faults. A change of fault closes every open
/// connection, so that the clients' pooled connections meet the new fault at once.
struct FaultyProxy {
    address: std::net::SocketAddr,
    upstream: Arc<Mutex<std::net::SocketAddr>>,
    fault: Arc<Mutex<ProxyFault>>,
    generation: tokio::sync::watch::Sender<u64>,
    /// Request bytes relayed to S3 so far.
    relayed: Arc<std::sync::atomic::AtomicU64>,
    accepting: tokio::task::JoinHandle<()>,
}

impl FaultyProxy {
    async fn start(upstream: std::net::SocketAddr) -> FaultyProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let upstream = Arc::new(Mutex::new(upstream));
        let fault = Arc::new(Mutex::new(ProxyFault::Pass));
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let relayed = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let accepting = tokio::spawn({
            let (upstream, fault, relayed) = (upstream.clone(), fault.clone(), relayed.clone());
            let generation = generation.subscribe();
            async move {
                let mut accepted = 0usize;
                while let Ok((client, _)) = listener.accept().await {
                    accepted += 1;
                    let to = *upstream.lock().unwrap();
                    let fault = *fault.lock().unwrap();
                    let generation = generation.clone();
                    tokio::spawn(serve_connection(client, to, fault, accepted, generation, relayed.clone()));
                }
            }
        });
        FaultyProxy { address, upstream, fault, generation, relayed, accepting }
    }

    fn set(&self, fault: ProxyFault) {
        *self.fault.lock().unwrap() = fault;
        self.generation.send_modify(|generation| *generation += 1);
    }

    fn point_at(&self, upstream: std::net::SocketAddr) {
        *self.upstream.lock().unwrap() = upstream;
        self.generation.send_modify(|generation| *generation += 1);
    }

    fn relayed(&self) -> u64 {
        self.relayed.load(Ordering::SeqCst)
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

async fn serve_connection(
    mut client: tokio::net::TcpStream,
    upstream: std::net::SocketAddr,
    fault: ProxyFault,
    accepted: usize,
    mut generation: tokio::sync::watch::Receiver<u64>,
    relayed: Arc<std::sync::atomic::AtomicU64>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Only a change of fault after this connection was accepted closes it.
    generation.borrow_and_update();
    let limit = match fault {
        ProxyFault::Refuse => return,
        ProxyFault::FailShare(share) if rand::random::<f64>() < share => {
            // Read the request's head (its body, if any, is left unread: the connection closes).
            let mut head = Vec::new();
            let mut chunk = [0u8; 4096];
            while !head.windows(4).any(|window| window == b"\r\n\r\n") && head.len() < 64 * 1024 {
                match tokio::time::timeout(Duration::from_secs(10), client.read(&mut chunk)).await {
                    Ok(Ok(read)) if read > 0 => head.extend_from_slice(&chunk[..read]),
                    _ => return,
                }
            }
            let (status, code) = if accepted.is_multiple_of(2) {
                ("503 Slow Down", "SlowDown")
            } else {
                ("500 Internal Server Error", "InternalError")
            };
            let body = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected by the test</Message></Error>");
            let answer = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = client.write_all(answer.as_bytes()).await;
            return;
        }
        ProxyFault::CutAfter(bytes) => bytes,
        ProxyFault::Pass | ProxyFault::FailShare(_) => u64::MAX,
    };
    // S3 itself down: the client sees its connection closed, as if refused.
    let Ok(server) = tokio::net::TcpStream::connect(upstream).await else { return };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let request = async {
        let mut sent = 0u64;
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let read = match client_read.read(&mut chunk).await {
                Ok(0) | Err(_) => return true,
                Ok(read) => read,
            };
            let take = (read as u64).min(limit - sent) as usize;
            if server_write.write_all(&chunk[..take]).await.is_err() {
                return false;
            }
            sent += take as u64;
            relayed.fetch_add(take as u64, Ordering::SeqCst);
            if sent == limit {
                return false;
            }
        }
    };
    let answer = tokio::io::copy(&mut server_read, &mut client_write);
    tokio::pin!(request, answer);
    let mut request_ended = false;
    loop {
        tokio::select! {
            ended_whole = &mut request, if !request_ended => {
                if !ended_whole {
                    return; // cut: both connections close as this returns
                }
                request_ended = true;
            }
            _ = &mut answer => return,
            _ = generation.changed() => return,
        }
    }
}

/// A signed upload on S3 that has not succeeded yet: its ticket and its bytes, and whether they
/// reached the bucket.
#[derive(Debug)]
struct PendingUpload {
    id: String,
    url: String,
    headers: Vec<(String, String)>,
    bytes: Vec<u8>,
    bytes_in_bucket: bool,
}

impl Client {
    /// `POST /v1/uploads` on S3: the ticket of a signed PUT straight to the bucket.
    async fn start_s3_upload(&self, name: &str, bytes: Vec<u8>) -> PendingUpload {
        let request = json!({"name": name, "size": bytes.len(), "sha256": sha256_hex(&bytes)});
        let (status, ticket) = self
            .send(self.http.post(format!("{}/v1/uploads", self.base)).bearer_auth(&self.key).json(&request))
            .await;
        assert_eq!(status, StatusCode::CREATED, "starting an upload needs no S3: {ticket}");
        let headers = ticket["headers"].as_object().expect("the ticket's headers");
        PendingUpload {
            id: ticket["id"].as_str().expect("an upload id").to_owned(),
            url: ticket["upload_url"].as_str().expect("an upload URL").to_owned(),
            headers: headers
                .iter()
                .map(|(name, value)| (name.clone(), value.as_str().unwrap().to_owned()))
                .collect(),
            bytes,
            bytes_in_bucket: false,
        }
    }

    /// The client's own PUT to the bucket (through the proxy): whether S3 took the bytes.
    async fn put_to_bucket(&self, upload: &mut PendingUpload, told: &Told) {
        let mut request = self.http.put(&upload.url).body(upload.bytes.clone());
        for (name, value) in &upload.headers {
            request = request.header(name, value);
        }
        let sent = tokio::time::timeout(BOUNDED_WAIT, request.send())
            .await
            .expect("S3 answers within the bounded wait");
        upload.bytes_in_bucket = sent.is_ok_and(|response| response.status().is_success());
        told.record(
            "PUTs straight to S3 (not Cabinet)",
            if upload.bytes_in_bucket { "ok" } else { "failed" }.to_owned(),
        );
    }

    /// `complete` through Cabinet, which verifies the bytes in the bucket: the stored file, or the
    /// status and code it was refused with.
    async fn complete(&self, upload: &PendingUpload) -> Result<StoredFile, (StatusCode, String)> {
        let url = format!("{}/v1/uploads/{}/complete", self.base, upload.id);
        let (status, body) = self.send(self.http.post(url).bearer_auth(&self.key)).await;
        if status != StatusCode::OK {
            return Err((status, error_code(status, &body)));
        }
        assert_eq!(body["status"], "SUCCESS", "{body}");
        let sha256 = sha256_hex(&upload.bytes);
        assert_eq!(body["file"]["sha256"], sha256, "{body}");
        Ok((body["file"]["id"].as_str().expect("a file id").to_owned(), sha256, upload.bytes.clone()))
    }
}

/// An answer to a client while S3 fails: success, or the documented error with 503 (or 502:
/// the gateway's trouble), never a 500.
fn assert_unavailable_or_bad_gateway(operation: &str, status: StatusCode, code: &str) {
    assert!(
        matches!(
            (status, code),
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable") | (StatusCode::BAD_GATEWAY, _)
        ),
        "a {operation} while S3 fails is answered 503 unavailable (or 502), not {status} {code}"
    );
}

/// What one step of the S3 scenario did: direct uploads, uploads sent to the bucket and
/// completed, downloads; every answer counted, every file stored kept.
struct S3Step<'a> {
    client: &'a Client,
    told: &'a Told,
    stored: Vec<StoredFile>,
    pending: Vec<PendingUpload>,
}

impl S3Step<'_> {
    async fn direct_upload(&mut self, name: &str, bytes: Vec<u8>) -> bool {
        match self.client.direct_upload(name, bytes).await {
            Attempt::Stored { id, sha256, bytes } => {
                self.told.record("direct uploads", "ok".to_owned());
                self.stored.push((id, sha256, bytes));
                true
            }
            Attempt::Refused { status, code, .. } => {
                assert_unavailable_or_bad_gateway("direct upload", status, &code);
                self.told.record("direct uploads", format!("{} {code}", status.as_u16()));
                false
            }
        }
    }

    /// Completes an upload whose bytes are in the bucket; one refused is kept to complete later.
    async fn complete(&mut self, upload: PendingUpload) -> bool {
        match self.client.complete(&upload).await {
            Ok(file) => {
                self.told.record("completes", "ok".to_owned());
                self.stored.push(file);
                true
            }
            Err((status, code)) => {
                assert_unavailable_or_bad_gateway("complete", status, &code);
                self.told.record("completes", format!("{} {code}", status.as_u16()));
                self.pending.push(upload);
                false
            }
        }
    }

    async fn signed_upload(&mut self, name: &str, bytes: Vec<u8>) {
        let mut upload = self.client.start_s3_upload(name, bytes).await;
        self.client.put_to_bucket(&mut upload, self.told).await;
        if upload.bytes_in_bucket {
            self.complete(upload).await;
        } else {
            self.pending.push(upload);
        }
    }

    async fn download(&mut self, id: &str, bytes: &[u8]) -> bool {
        match self.client.read(id).await {
            Ok(read) => {
                assert!(read == bytes, "{id} reads back byte for byte");
                self.told.record("downloads", "ok".to_owned());
                true
            }
            Err((status, code)) => {
                assert_unavailable_or_bad_gateway("download", status, &code);
                self.told.record("downloads", format!("{} {code}", status.as_u16()));
                false
            }
        }
    }
}

/// 3. S3 failing under the server: answering a share of requests 503/500, refusing connections,
/// cutting them mid-body, and killed mid-upload then started again. Meanwhile clients are told
/// 503 `unavailable` (or 502) in the JSON error shape within the bounded wait; once S3 is back,
/// every upload the client retries succeeds, and nothing stored before is harmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_failing_or_killed_mid_upload_is_answered_unavailable_and_uploads_succeed_once_it_is_back() {
    let Some(mut s3) = PrivateS3::start() else { return };
    let proxy = FaultyProxy::start(s3.address).await;
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let storage = format!("s3://{S3_BUCKET}?endpoint=http://{}&region=us-east-1", proxy.address);
    let flags = ["--storage", storage.as_str()];
    let env = [("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY), ("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY)];
    let key = tenant_on(&data_dir, &flags, &env, "s3-faults");
    let server = ServerProcess::start_with_env(&data_dir, &flags, &env);
    let client = Client::new(&server, &key);
    let told = Told::default();
    let mut step = S3Step { client: &client, told: &told, stored: Vec::new(), pending: Vec::new() };
    let mut seed = 0u8;
    let mut next_bytes = |size: usize| {
        seed = seed.wrapping_add(1);
        content(seed, size)
    };

    // Before any fault, both routes work.
    for i in 0..2 {
        assert!(step.direct_upload(&format!("before-direct-{i}.bin"), next_bytes(300_000)).await);
        step.signed_upload(&format!("before-signed-{i}.bin"), next_bytes(300_000)).await;
    }
    assert_eq!((step.stored.len(), step.pending.len()), (4, 0), "with S3 healthy every upload succeeds");

    // A third of new connections answered 503 or 500: the server's retries may get past them,
    // and what they do not is answered 503.
    told.phase.store(during(0), Ordering::SeqCst);
    proxy.set(ProxyFault::FailShare(1.0 / 3.0));
    for i in 0..4 {
        step.direct_upload(&format!("flaky-direct-{i}.bin"), next_bytes(200_000)).await;
        step.signed_upload(&format!("flaky-signed-{i}.bin"), next_bytes(200_000)).await;
    }
    for (id, _, bytes) in step.stored.clone() {
        step.download(&id, &bytes).await;
    }

    // Connections refused: a direct upload, a `complete` of bytes already in the bucket and a
    // download are each answered 503, within the bounded wait.
    told.phase.store(during(1), Ordering::SeqCst);
    proxy.set(ProxyFault::Pass);
    let mut landed = client.start_s3_upload("landed-before-refusal.bin", next_bytes(150_000)).await;
    client.put_to_bucket(&mut landed, &told).await;
    assert!(landed.bytes_in_bucket, "S3 takes bytes while it is healthy");
    proxy.set(ProxyFault::Refuse);
    assert!(!step.direct_upload("refused-direct.bin", next_bytes(150_000)).await, "stored with S3 refusing");
    assert!(!step.complete(landed).await, "completed with S3 refusing");
    let (id, _, bytes) = step.stored[0].clone();
    assert!(!step.download(&id, &bytes).await, "downloaded with S3 refusing");

    // Every connection cut after 64 KiB of its request: a 1 MiB direct upload cannot get through.
    told.phase.store(during(2), Ordering::SeqCst);
    proxy.set(ProxyFault::CutAfter(64 * 1024));
    assert!(
        !step.direct_upload("cut-direct.bin", next_bytes(1024 * 1024)).await,
        "stored through cut connections"
    );

    // s3s-fs killed while a direct upload streams into it, then started again.
    told.phase.store(during(3), Ordering::SeqCst);
    proxy.set(ProxyFault::Pass);
    let killed_mid_upload = {
        let relayed_before = proxy.relayed();
        let bytes = next_bytes(32 * 1024 * 1024);
        let upload = step.client.direct_upload("killed-mid-upload.bin", bytes);
        tokio::pin!(upload);
        let deadline = Instant::now() + BOUNDED_WAIT;
        // Kill once the upload's bytes are flowing into S3 (polled; the upload runs meanwhile).
        let attempt = loop {
            tokio::select! {
                attempt = &mut upload => break Some(attempt),
                () = tokio::time::sleep(Duration::from_millis(1)) => {}
            }
            if proxy.relayed() >= relayed_before + 1024 * 1024 {
                break None;
            }
            assert!(Instant::now() < deadline, "the upload's bytes reach S3 within the bounded wait");
        };
        assert!(attempt.is_none(), "32 MiB streamed through before 1 MiB reached S3: {attempt:?}");
        s3.kill();
        upload.await
    };
    match killed_mid_upload {
        Attempt::Refused { status, code, .. } => {
            assert_unavailable_or_bad_gateway("direct upload", status, &code);
            told.record("direct uploads", format!("{} {code}", status.as_u16()));
        }
        Attempt::Stored { id, .. } => panic!("an upload whose S3 was killed mid-stream was stored as {id}"),
    }
    proxy.point_at(s3.start_again());

    // S3 back: every upload a client retries succeeds, new ones too, and nothing stored before
    // was harmed.
    told.phase.store(after(3), Ordering::SeqCst);
    for mut upload in std::mem::take(&mut step.pending) {
        if !upload.bytes_in_bucket {
            client.put_to_bucket(&mut upload, &told).await;
            assert!(upload.bytes_in_bucket, "S3 takes a retried PUT once it is back");
        }
        assert!(step.complete(upload).await, "a retried complete succeeds once S3 is back");
    }
    for i in 0..2 {
        assert!(step.direct_upload(&format!("after-direct-{i}.bin"), next_bytes(300_000)).await);
        step.signed_upload(&format!("after-signed-{i}.bin"), next_bytes(300_000)).await;
    }
    assert!(step.pending.is_empty(), "with S3 back every upload succeeds: {:?}", step.pending);
    for (id, _, bytes) in step.stored.clone() {
        assert!(step.download(&id, &bytes).await, "{id} downloads once S3 is back");
    }
    let files = assert_nothing_lost(&client, &step.stored).await;
    // Nothing temporary is left in the bucket: no staged object, no unverified arrival.
    let bucket = s3.data.path().join("objects").join(S3_BUCKET);
    for leftovers in ["tmp", "incoming"] {
        let found = files_under(&bucket.join(leftovers));
        assert!(found.is_empty(), "objects left under {leftovers}/ after the faults: {found:?}");
    }
    println!("s3 failing or killed mid-upload: {}; {} files stored, all whole", told.summary(), files);
    let first_panic = server.first_panic();
    let log = server.log_tail();
    server.kill();
    assert!(first_panic.is_none(), "the server panicked: {first_panic:?}; its log:\n{log}");
    assert_check_clean_on(&data_dir, &flags, &env);
}
