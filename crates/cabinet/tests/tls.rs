//! The TLS listener, driven with curl as a client would: HTTPS with the given certificate, the
//! signed URLs on https, a renewed certificate served after SIGHUP without a restart, a broken
//! one refused while the one in use stays, and the flags checked at start.

use crate::process;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use process::ServerProcess;
use serde_json::Value;

/// A self-signed certificate for 127.0.0.1 and localhost: (certificate PEM, key PEM).
fn certificate() -> (String, String) {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("a self-signed certificate");
    (made.cert.pem(), made.key_pair.serialize_pem())
}

/// Runs curl trusting only `ca`; its exit status (0: the request went through, 60: the
/// certificate was not trusted, …) and what it printed.
fn curl(ca: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "20", "--cacert"])
        .arg(ca)
        .args(args)
        .output()
        .expect("curl");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

fn hang_up(server: &ServerProcess) {
    let status = Command::new("kill").arg("-HUP").arg(server.pid().to_string()).status().expect("kill");
    assert!(status.success());
}

/// Waits until curl trusting `ca` reaches the server (the reload is asynchronous to the signal).
fn wait_until_trusted(ca: &Path, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while curl(ca, &[url]).0 != 0 {
        assert!(Instant::now() < deadline, "the server never served the certificate in {}", ca.display());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn https_serves_the_api_and_signed_urls_and_a_renewed_certificate_after_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let (first_ca, second_ca) = (dir.path().join("first.pem"), dir.path().join("second.pem"));
    let (cert, key) = certificate();
    std::fs::write(&cert_file, &cert).unwrap();
    std::fs::write(&key_file, &key).unwrap();
    std::fs::write(&first_ca, &cert).unwrap();
    let data = dir.path().join("data");
    let server = ServerProcess::start_with(
        &data,
        &["--tls-cert", cert_file.to_str().unwrap(), "--tls-key", key_file.to_str().unwrap()],
    );
    assert!(server.url.starts_with("https://127.0.0.1:"), "{}", server.url);
    let key = server.bootstrap_key.clone().expect("the bootstrap key");
    let auth = format!("Authorization: Bearer {key}");

    let (status, body) = curl(&first_ca, &[&server.at("/healthz")]);
    assert_eq!(status, 0, "{body}");
    // A connection idle between requests serves the next: curl, two requests half a second apart,
    // says it connected once.
    let health = server.at("/healthz");
    let (status, body) =
        curl(&first_ca, &["--rate", "2/s", "--write-out", " connects=%{num_connects}\n", &health, &health]);
    assert_eq!(status, 0, "{body}");
    let connects: Vec<&str> = body.lines().filter_map(|line| line.split(" connects=").nth(1)).collect();
    assert_eq!(connects, ["1", "0"], "{body}");
    // Plain HTTP on the TLS port is not served.
    let plain = server.url.replacen("https://", "http://", 1);
    let out =
        Command::new("curl").args(["--silent", "--max-time", "10", &format!("{plain}/healthz")]).output();
    assert!(!out.unwrap().status.success(), "plain HTTP was answered on the TLS port");

    // The whole upload flow over HTTPS: the signed URLs the server hands out are https too.
    let (status, ticket) = curl(
        &first_ca,
        &[
            "-X",
            "POST",
            "-H",
            &auth,
            "-H",
            "Content-Type: application/json",
            "--data",
            r#"{"name":"over-tls.txt","size":11}"#,
            &server.at("/v1/uploads"),
        ],
    );
    assert_eq!(status, 0);
    let ticket: Value = serde_json::from_str(&ticket).expect("the ticket");
    let upload_url = ticket["upload_url"].as_str().expect("an upload URL");
    assert!(upload_url.starts_with("https://"), "{upload_url}");
    let (status, done) = curl(&first_ca, &["-X", "PUT", "--data-binary", "hello, tls!", upload_url]);
    assert_eq!(status, 0);
    let done: Value = serde_json::from_str(&done).expect("the finished upload");
    assert_eq!(done["status"], "SUCCESS", "{done}");
    let file = done["file"]["id"].as_str().unwrap();
    let (status, link) =
        curl(&first_ca, &["-H", &auth, &server.at(&format!("/v1/files/{file}/download-url"))]);
    assert_eq!(status, 0);
    let link: Value = serde_json::from_str(&link).unwrap();
    let (status, bytes) = curl(&first_ca, &[link["url"].as_str().unwrap()]);
    assert_eq!((status, bytes.as_str()), (0, "hello, tls!"));

    // A renewed certificate, in place of the old files, is served once the server is told.
    let (renewed, renewed_key) = certificate();
    std::fs::write(&cert_file, &renewed).unwrap();
    std::fs::write(&key_file, &renewed_key).unwrap();
    std::fs::write(&second_ca, &renewed).unwrap();
    hang_up(&server);
    wait_until_trusted(&second_ca, &server.at("/healthz"));
    let (status, _) = curl(&first_ca, &[&server.at("/healthz")]);
    assert_eq!(status, 60, "the old certificate was still served after the reload");

    // A broken pair is refused on reload; the certificate in use stays, and so does the server.
    std::fs::write(&cert_file, "not a certificate").unwrap();
    hang_up(&server);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !server.logs().contains("keeping the TLS certificate in use") {
        assert!(Instant::now() < deadline, "the failed reload was not reported:\n{}", server.log_tail());
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, body) = curl(&second_ca, &[&server.at("/healthz")]);
    assert_eq!(status, 0, "{body}");
}

#[test]
fn a_certificate_without_its_key_or_a_key_that_is_not_its_own_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, _) = certificate();
    let (_, other_key) = certificate();
    let (cert_file, key_file) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_file, cert).unwrap();
    std::fs::write(&key_file, other_key).unwrap();
    let data = dir.path().join("data");
    let serve = |args: &[&str]| {
        Command::new(process::cabinet_binary())
            .env_clear()
            .arg("--data-dir")
            .arg(&data)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .output()
            .expect("cabinet serve")
    };
    let alone = serve(&["--tls-cert", cert_file.to_str().unwrap()]);
    assert!(!alone.status.success());
    assert!(String::from_utf8_lossy(&alone.stderr).contains("--tls-cert and --tls-key go together"));
    let mismatched =
        serve(&["--tls-cert", cert_file.to_str().unwrap(), "--tls-key", key_file.to_str().unwrap()]);
    assert!(!mismatched.status.success());
    let said = String::from_utf8_lossy(&mismatched.stderr);
    assert!(said.contains("is not the key of"), "{said}");
}

#[test]
fn a_sighup_without_tls_changes_nothing_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("data"));
    hang_up(&server);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !server.logs().contains("SIGHUP: nothing to reload") {
        assert!(Instant::now() < deadline, "the SIGHUP was not handled:\n{}", server.log_tail());
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = Command::new("curl")
        .args(["--silent", "--fail", "--max-time", "10", &server.at("/healthz")])
        .output();
    assert!(out.unwrap().status.success(), "the server stopped serving after SIGHUP");
}
