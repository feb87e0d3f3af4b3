//! Cabinet behind a real nginx reverse proxy, as the README's snippet sets it up: a 1 GiB upload
//! and its download through the proxy (streamed both ways, bytes verified), signed URLs that name
//! the proxy, and the rate limit counting each real client (from `X-Forwarded-For`, trusted
//! because it comes from the proxy's address) rather than the proxy.

use crate::process;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use process::ServerProcess;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const GIB: u64 = 1 << 30;
const CHUNK: usize = 1 << 20;

/// Debian's nginx, or `None` (with a notice) where it is missing, unless `CABINET_REQUIRE_NGINX=1`
/// (dev/test installs it): then the test fails.
fn nginx_or_skip() -> Option<PathBuf> {
    let found =
        ["/usr/sbin/nginx", "/usr/bin/nginx"].into_iter().map(PathBuf::from).find(|path| path.exists());
    if found.is_none() {
        assert!(
            std::env::var("CABINET_REQUIRE_NGINX").as_deref() != Ok("1"),
            "CABINET_REQUIRE_NGINX=1 but nginx is not installed (dev/test installs it)"
        );
        eprintln!("skipping: nginx is not installed (dev/test installs it)");
    }
    found
}

/// nginx in the foreground, proxying everything to `upstream` the way the README says to.
struct Proxy(Child);

impl Proxy {
    fn start(binary: &Path, dir: &Path, port: u16, upstream: &str) -> Self {
        let user = if Command::new("id").arg("-u").output().is_ok_and(|out| out.stdout == b"0\n") {
            "user root;"
        } else {
            ""
        };
        let config = format!(
            "daemon off;\n{user}\npid {dir}/nginx.pid;\nerror_log {dir}/error.log warn;\nevents {{ worker_connections 512; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n\
             upstream cabinet {{ server {upstream}; keepalive 16; }}\n\
             server {{\n    listen 127.0.0.1:{port};\n\
             {snippet}\n  }}\n}}\n",
            dir = dir.display(),
            upstream = upstream.trim_start_matches("http://"),
            snippet = README_SNIPPET,
        );
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("nginx.conf"), config).unwrap();
        let proxy = Self(
            Command::new(binary)
                .arg("-c")
                .arg(dir.join("nginx.conf"))
                .arg("-p")
                .arg(dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start nginx"),
        );
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return proxy;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!(
            "nginx did not listen: {}",
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        );
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-QUIT").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

/// The `location` block the README gives for nginx (kept the same: the README quotes this test).
const README_SNIPPET: &str = "    client_max_body_size 0;           # Cabinet enforces its own limits
    location / {
        proxy_pass http://cabinet;
        proxy_http_version 1.1;
        proxy_set_header Connection \"\";
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Forwarded-Host $http_host;
        proxy_request_buffering off;      # stream uploads to Cabinet as they arrive
        proxy_buffering off;              # and downloads to the client
        proxy_read_timeout 300s;
        proxy_send_timeout 300s;
    }";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// 1 GiB of a pattern, streamed in 1 MiB chunks, and its sha256.
fn pattern_chunk(n: u64) -> Bytes {
    Bytes::from((0..CHUNK).map(|i| ((i as u64 * 7 + n * 13) % 251) as u8).collect::<Vec<_>>())
}

fn pattern_sha256() -> String {
    let mut hasher = Sha256::new();
    for n in 0..GIB / CHUNK as u64 {
        hasher.update(pattern_chunk(n));
    }
    hex::encode(hasher.finalize())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_nginx_a_gib_goes_up_and_down_intact_and_each_real_client_has_its_own_allowance() {
    let Some(nginx) = nginx_or_skip() else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let server = ServerProcess::start_with(
        &dir.path().join("data"),
        // No --public-url: the URLs handed out name the proxy because nginx says that is where the
        // client is.
        &["--trusted-proxies", "127.0.0.1", "--rate-limit-per-minute", "60"],
    );
    let _proxy = Proxy::start(&nginx, &dir.path().join("nginx"), port, &server.url);
    let key = server.bootstrap_key.clone().unwrap();
    let http = process::http_client();

    // A 1 GiB upload and download, both streamed through the proxy.
    let expected = tokio::task::spawn_blocking(pattern_sha256).await.unwrap();
    // A client's own X-Forwarded-Host is replaced by the proxy's, and a request that skips the
    // proxy gets the server's own address.
    let spoofed: Value = http
        .post(format!("{public}/v1/uploads"))
        .bearer_auth(&key)
        .header("x-forwarded-host", "evil.example")
        .json(&json!({"name": "small.bin", "size": 1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(spoofed["upload_url"].as_str().unwrap().starts_with(&format!("{public}/")), "{spoofed}");
    let direct: Value = http
        .post(format!("{}/v1/uploads", server.url))
        .bearer_auth(&key)
        .json(&json!({"name": "small.bin", "size": 1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(direct["upload_url"].as_str().unwrap().starts_with(&format!("{}/", server.url)), "{direct}");
    let ticket: Value = http
        .post(format!("{public}/v1/uploads"))
        .bearer_auth(&key)
        .json(&json!({"name": "big.bin", "size": GIB}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let upload_url = ticket["upload_url"].as_str().unwrap_or_else(|| panic!("{ticket}"));
    assert!(upload_url.starts_with(&public), "the signed URL names the proxy: {upload_url}");
    let body =
        futures::stream::iter(0..GIB / CHUNK as u64).map(|n| Ok::<_, std::io::Error>(pattern_chunk(n)));
    let done: Value = http
        .put(upload_url)
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(done["status"], "SUCCESS", "{done}");
    assert_eq!(done["file"]["sha256"], expected.as_str());
    let id = done["file"]["id"].as_str().unwrap();
    let link: Value = http
        .get(format!("{public}/v1/files/{id}/download-url"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = link["url"].as_str().unwrap();
    assert!(url.starts_with(&public), "{url}");
    let response = http.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let (mut hasher, mut size) = (Sha256::new(), 0u64);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        size += chunk.len() as u64;
        hasher.update(&chunk);
    }
    assert_eq!(size, GIB);
    assert_eq!(hex::encode(hasher.finalize()), expected);

    // Requests without a credential count against the real client's address, which nginx
    // forwards: one client spending its allowance leaves another's whole.
    let client_at = |address: [u8; 4]| {
        reqwest::Client::builder().no_proxy().local_address(std::net::IpAddr::from(address)).build().unwrap()
    };
    let (greedy, other) = (client_at([127, 0, 0, 2]), client_at([127, 0, 0, 3]));
    let mut statuses = Vec::new();
    for _ in 0..61 {
        statuses.push(greedy.get(format!("{public}/v1/quota")).send().await.unwrap().status().as_u16());
    }
    assert!(statuses[..60].iter().all(|status| *status == 401), "{statuses:?}");
    assert_eq!(statuses[60], 429);
    assert_eq!(other.get(format!("{public}/v1/quota")).send().await.unwrap().status(), 401);
    // The log names the real client too (written in batches: wait for the last lines).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !server.logs().contains("client=127.0.0.3") {
        assert!(std::time::Instant::now() < deadline, "{}", server.log_tail());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(server.logs().contains("client=127.0.0.2"));
}
