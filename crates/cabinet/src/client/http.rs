//! The client's HTTP side: one `reqwest` client (rustls for https), the bearer key on every API
//! call, and the API's `{"error":{"code","message"}}` turned into a [`CliError`] with its exit code.

use std::time::Duration;

use reqwest_tls::{Client, Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::{CliError, CliResult, Exit};
use super::profile::Endpoint;

/// The native API at one server, with one key.
#[derive(Clone)]
pub struct Api {
    http: Client,
    endpoint: Endpoint,
}

impl Api {
    pub fn new(endpoint: Endpoint) -> CliResult<Self> {
        // The S3 store may have installed it already; either way there is one ring provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(300))
            .user_agent(concat!("cabinet-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| CliError::other("http_client", err.to_string()))?;
        Ok(Api { http, endpoint })
    }

    /// The bare HTTP client, for signed URLs (they carry their own credential).
    pub fn http(&self) -> &Client {
        &self.http
    }

    pub fn base_url(&self) -> &str {
        &self.endpoint.url
    }

    /// A request to an API path (`/v1/...`) with the key.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.endpoint.url)).bearer_auth(&self.endpoint.key)
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, String)]) -> CliResult<T> {
        json_of(self.request(Method::GET, path).query(query).send().await).await
    }

    pub async fn post<T: DeserializeOwned>(&self, path: &str, body: &Value) -> CliResult<T> {
        json_of(self.request(Method::POST, path).json(body).send().await).await
    }

    pub async fn patch<T: DeserializeOwned>(&self, path: &str, body: &Value) -> CliResult<T> {
        json_of(self.request(Method::PATCH, path).json(body).send().await).await
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str, query: &[(&str, String)]) -> CliResult<T> {
        json_of(self.request(Method::DELETE, path).query(query).send().await).await
    }
}

/// A successful response, or the error it carries.
pub async fn checked(sent: Result<Response, reqwest_tls::Error>) -> CliResult<Response> {
    let response = sent.map_err(CliError::transport)?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = response
        .headers()
        .get(reqwest_tls::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok()?.trim().parse::<u64>().ok())
        .map(std::time::Duration::from_secs);
    let text = response.text().await.unwrap_or_default();
    let (code, message) = match serde_json::from_str::<Value>(&text) {
        Ok(body) if body["error"]["message"].is_string() => (
            body["error"]["code"].as_str().unwrap_or("error").to_owned(),
            body["error"]["message"].as_str().unwrap_or_default().to_owned(),
        ),
        // S3 and proxies answer in their own words.
        _ => {
            let snippet: String = text.trim().chars().take(300).collect();
            let code = if status.as_u16() == 503 { "unavailable" } else { "http_error" };
            (code.to_owned(), format!("HTTP {status}{}{snippet}", if snippet.is_empty() { "" } else { ": " }))
        }
    };
    Err(CliError { exit: Exit::of_status(status), code, message, status: Some(status.as_u16()), retry_after })
}

/// A successful JSON response, parsed.
pub async fn json_of<T: DeserializeOwned>(sent: Result<Response, reqwest_tls::Error>) -> CliResult<T> {
    let response = checked(sent).await?;
    let bytes = response.bytes().await.map_err(CliError::transport)?;
    serde_json::from_slice(&bytes).map_err(|err| {
        CliError::other("invalid_response", format!("the server's answer is not the JSON expected: {err}"))
    })
}
