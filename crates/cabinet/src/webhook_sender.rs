//! The webhook worker's HTTP side: POSTs a delivery with reqwest, connecting only to addresses
//! the core's rule (`cabinet_core::webhooks::receiver_allowed`) accepts — a name is resolved by
//! our own resolver, which drops refused addresses, and an address written in the URL is checked
//! before anything is sent — so a name that resolves to a private address at send time is refused
//! even though it was public when the endpoint was saved. No proxies, no redirects, a timeout,
//! and the response's body is never read.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use cabinet_core::webhooks::{
    receiver_allowed, SendOutcome, WebhookRequest, WebhookSender, RECEIVER_TIMEOUT,
};
use reqwest_tls::dns::{Addrs, Name, Resolve, Resolving};
use reqwest_tls::Client;

/// Sends deliveries over HTTP(S).
pub struct HttpWebhookSender {
    http: Client,
    allow_private: bool,
}

impl HttpWebhookSender {
    pub fn new(allow_private: bool) -> anyhow::Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = Client::builder()
            .dns_resolver(Arc::new(CheckedResolver { allow_private }))
            .no_proxy()
            .redirect(reqwest_tls::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(RECEIVER_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("Cabinet-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http, allow_private })
    }
}

#[async_trait::async_trait]
impl WebhookSender for HttpWebhookSender {
    async fn send(&self, request: WebhookRequest) -> SendOutcome {
        let url = match reqwest_tls::Url::parse(&request.url) {
            Ok(url) => url,
            Err(err) => return SendOutcome::Failed(format!("invalid url: {err}")),
        };
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if let Some(ip) = literal {
            if !receiver_allowed(ip, self.allow_private) {
                return SendOutcome::Failed(format!("refused: {ip} is not a public address"));
            }
        }
        let mut post = self.http.post(url).body(request.body);
        for (name, value) in request.headers {
            post = post.header(name, value);
        }
        match post.send().await {
            // Dropping the response closes it unread: its status is all a delivery needs.
            Ok(response) => SendOutcome::Answered(response.status().as_u16()),
            Err(err) => SendOutcome::Failed(describe(&err)),
        }
    }
}

/// The error and its causes, on one line (reqwest's own text stops at the outermost).
fn describe(err: &reqwest_tls::Error) -> String {
    let mut text = if err.is_timeout() { "timed out".to_owned() } else { err.to_string() };
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text.chars().take(500).collect()
}

/// Resolves with the system resolver and keeps only addresses a receiver may be at.
struct CheckedResolver {
    allow_private: bool,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> =
                found.iter().copied().filter(|at| receiver_allowed(at.ip(), allow_private)).collect();
            if allowed.is_empty() {
                let refused: Box<dyn std::error::Error + Send + Sync> = if found.is_empty() {
                    format!("{host} does not resolve").into()
                } else {
                    format!("refused: {host} resolves only to non-public addresses").into()
                };
                return Err(refused);
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}
