//! Talking to Cabinet's API from the harness: reserve an upload, send small bodies, sign
//! downloads, clean up; every call checks its status so a wrong result fails the run.

use std::time::Duration;

use anyhow::{bail, Result};
use serde_json::{json, Value};

pub fn http() -> Result<reqwest::Client> {
    Ok(builder().build()?)
}

/// [`http`], its connections made from the loopback address `source` (`127.x.y.z`), so that
/// many clients can stand for many hosts (the server caps connections per address).
pub fn http_from(source: std::net::Ipv4Addr) -> Result<reqwest::Client> {
    Ok(builder().local_address(std::net::IpAddr::V4(source)).build()?)
}

fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(900))
        .pool_max_idle_per_host(128)
}

/// Sends a request and returns its JSON body, failing unless the status is `expected`.
pub async fn expect(request: reqwest::RequestBuilder, expected: u16) -> Result<Value> {
    let response = request.send().await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    if status != expected {
        bail!("expected {expected}, got {status}: {text}");
    }
    Ok(if text.is_empty() { Value::Null } else { serde_json::from_str(&text)? })
}

/// `POST /v1/uploads`: returns the signed upload URL.
pub async fn reserve(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    name: &str,
    size: u64,
    sha256: Option<&str>,
) -> Result<String> {
    let mut body = json!({"name": name, "size": size});
    if let Some(sha) = sha256 {
        body["sha256"] = json!(sha);
    }
    let ticket = expect(http.post(format!("{base}/v1/uploads")).bearer_auth(key).json(&body), 201).await?;
    match ticket["upload_url"].as_str() {
        Some(url) => Ok(url.to_owned()),
        None => bail!("no upload_url in {ticket}"),
    }
}

/// Checks an upload's answer says SUCCESS with the expected size (and sha256); returns the file id.
pub fn succeeded(answer: &Value, size: u64, sha256: Option<&str>) -> Result<String> {
    let file = &answer["file"];
    if answer["status"] != "SUCCESS" || file["size"].as_u64() != Some(size) {
        bail!("the upload did not succeed with {size} bytes: {answer}");
    }
    if let Some(sha) = sha256 {
        if file["sha256"].as_str() != Some(sha) {
            bail!("sha256 differs: expected {sha}, got {answer}");
        }
    }
    Ok(file["id"].as_str().unwrap_or_default().to_owned())
}

/// Uploads a small body through the reservation and signed PUT; returns the file id.
pub async fn upload_bytes(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    name: &str,
    body: Vec<u8>,
) -> Result<String> {
    let size = body.len() as u64;
    let url = reserve(http, base, key, name, size, None).await?;
    let answer = expect(http.put(url).body(body), 200).await?;
    succeeded(&answer, size, None)
}

/// `GET /v1/files/{id}/download-url`: a signed GET URL.
pub async fn download_url(http: &reqwest::Client, base: &str, key: &str, file: &str) -> Result<String> {
    let answer =
        expect(http.get(format!("{base}/v1/files/{file}/download-url")).bearer_auth(key), 200).await?;
    match answer["url"].as_str() {
        Some(url) => Ok(url.to_owned()),
        None => bail!("no url in {answer}"),
    }
}

/// Deletes a file and empties the trash, so its blob is gone from disk.
pub async fn purge(http: &reqwest::Client, base: &str, key: &str, file: &str) -> Result<()> {
    expect(http.delete(format!("{base}/v1/files/{file}")).bearer_auth(key), 200).await?;
    expect(http.delete(format!("{base}/v1/trash")).bearer_auth(key), 200).await?;
    Ok(())
}
