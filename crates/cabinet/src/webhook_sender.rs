//! The webhook worker's HTTP side: POSTs a delivery with reqwest, connecting only to addresses
//! the core's rule (`cabinet_core::webhooks::receiver_allowed`) accepts — a name is resolved by
//! our own resolver, which drops refused addresses, and an address written in the URL is checked
//! before anything is sent — so a name that resolves to a private address at send time is refused
//! even though it was public when the endpoint was saved. No proxies, no redirects, a timeout,
//! and the response's body is never read.
//!
//! The HTTP work runs on a thread of its own at the lowest scheduling priority (nice 19): when
//! the machine is saturated, the requests being answered come first and deliveries lag, catching
//! up as soon as there is room; on a machine with room to spare they go at once.

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
    background: Background,
}

/// A runtime on one thread at the lowest priority, where every delivery's HTTP runs (so the
/// client's connections belong to it alone); it stops when the sender is dropped.
struct Background {
    runtime: tokio::runtime::Handle,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// The nice value of the deliveries' thread: the lowest priority there is.
const BACKGROUND_NICE: i32 = 19;

impl Background {
    fn start() -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new().name("webhook-sender".into()).spawn(move || {
            // On Linux a nice value is a thread's own; the threads this one starts (the
            // resolver's) inherit it.
            if let Err(err) =
                rustix::process::setpriority_process(Some(rustix::thread::gettid()), BACKGROUND_NICE)
            {
                tracing::warn!(error = %err, "could not lower the webhook sender's priority");
            }
            let _ = runtime.block_on(stopped);
        })?;
        Ok(Self { runtime: handle, _stop: stop })
    }
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
        Ok(Self { http, allow_private, background: Background::start()? })
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
        let sent = self.background.runtime.spawn(async move {
            match post.send().await {
                // Dropping the response closes it unread: its status is all a delivery needs.
                Ok(response) => SendOutcome::Answered(response.status().as_u16()),
                Err(err) => SendOutcome::Failed(describe(&err)),
            }
        });
        sent.await.unwrap_or_else(|err| SendOutcome::Failed(format!("the sender stopped: {err}")))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The nice value of each of this process's threads named `name` (`/proc/self/task/*/stat`,
    /// whose 19th field it is).
    fn nice_of_threads(name: &str) -> Vec<i32> {
        let mut nice = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.trim_end() != name {
                continue;
            }
            // A thread that ended since the folder was listed has no `stat` left: it is not counted.
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
            // The name, in parentheses, may hold spaces: the fields are counted after it.
            let (_, after_name) = stat.rsplit_once(") ").unwrap();
            nice.push(after_name.split(' ').nth(16).unwrap().parse().unwrap());
        }
        nice
    }

    #[tokio::test]
    async fn deliveries_are_sent_from_a_thread_of_the_lowest_priority_that_ends_with_the_sender() {
        let sender = HttpWebhookSender::new(true).unwrap();
        // Sent from there: a receiver that is not listening fails the delivery with the reason.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let request = WebhookRequest {
            url: format!("http://127.0.0.1:{port}/hook"),
            headers: Vec::new(),
            body: b"{}".to_vec(),
        };
        match sender.send(request).await {
            SendOutcome::Failed(reason) => assert!(reason.contains("onnect"), "{reason}"),
            other => panic!("nothing listens there: {other:?}"),
        }
        let nice = nice_of_threads("webhook-sender");
        assert!(!nice.is_empty(), "the sender's thread is running");
        assert!(nice.iter().all(|&nice| nice == BACKGROUND_NICE), "{nice:?}");
        drop(sender);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !nice_of_threads("webhook-sender").is_empty() {
            assert!(std::time::Instant::now() < deadline, "the sender's thread outlived it");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
