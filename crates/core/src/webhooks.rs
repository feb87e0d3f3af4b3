//! Webhooks: each workspace's endpoints receive its events (the outbox, `events`) as signed POSTs,
//! at least once and in the workspace's order. Each endpoint keeps a cursor in the feed that moves
//! only after a 2xx, so the head event is retried (exponential backoff, jittered) before any
//! later one is sent; past the retry period the endpoint is disabled and `webhook.disabled`
//! recorded. A node sends to an endpoint only while it holds the endpoint's lease, taken by one
//! conditional UPDATE and kept by a heartbeat, so two nodes never send the same event at once.
//! Deliveries are signed as Standard Webhooks specifies, with secrets kept sealed by the server
//! key, and receivers on non-public addresses are refused unless the operator allows them
//! (checked when an endpoint is saved, and again on every connection).

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use rand::{Rng, RngCore};
use sha2::Sha256;

use crate::access::Caller;
use crate::model::Role;
use crate::{Cabinet, Code, DeliveryId, Error, EventRecord, Result, WebhookId, WorkspaceId};

/// The prefix of a webhook secret (Standard Webhooks' form: the rest is the key in base64).
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a secret.
const SECRET_BYTES: usize = 32;
/// How long a replaced secret keeps signing alongside the new one.
pub const ROTATION_GRACE: Duration = Duration::hours(24);
/// The most endpoints a workspace may have.
pub const MAX_WEBHOOKS_PER_WORKSPACE: usize = 20;
/// The longest receiver URL.
const MAX_URL_LEN: usize = 2048;
/// The most patterns in a filter, and the longest.
const MAX_EVENT_TYPES: usize = 32;
const MAX_EVENT_TYPE_LEN: usize = 64;
/// The most delivery-log rows one read returns.
pub const MAX_DELIVERIES_PER_READ: u32 = 100;
/// How long a receiver has to answer.
pub const RECEIVER_TIMEOUT: StdDuration = StdDuration::from_secs(10);
/// How long a claim holds an endpoint unless renewed. The holder renews it every `RENEW_EVERY`
/// while it sends (a heartbeat), so an attempt may take as long as `RECEIVER_TIMEOUT`; a node
/// that dies stops renewing, and its endpoints resume elsewhere (or on its restart) within this.
/// A node that restarts cannot release its old claims itself: its new process cannot tell that
/// the old one is gone (a rolling restart runs both for a while), so the lease is the bound.
const LEASE: Duration = Duration::seconds(5);
/// How often the holder renews its lease while it sends.
const RENEW_EVERY: StdDuration = StdDuration::from_millis(1500);
/// How much sooner than the database the holder counts its lease as run out: it stops sending
/// (drops the attempt in flight) once `LEASE - LEASE_MARGIN` passes since the last renewal it
/// asked for that succeeded, so clocks of nodes may differ by up to this without two nodes
/// sending to one endpoint at once.
const LEASE_MARGIN: StdDuration = StdDuration::from_secs(2);
/// Events read at once for an endpoint.
const EVENTS_PER_READ: u32 = 100;
/// Events sent to one endpoint under one claim, before it goes back among the due (other
/// endpoints get their turn at the node's slots).
const EVENTS_PER_CLAIM: u32 = 1000;
/// Acknowledged deliveries move the stored cursor (and enter the log) together, one write for up
/// to this many or for those of this long, rather than one write each: a write per delivery
/// limited an endpoint to the database's commit rate and took that rate from uploads. What a
/// crash loses of them is sent again (at least once), never skipped.
const ACKS_PER_WRITE: usize = 64;
const ACKS_HELD_AT_MOST: StdDuration = StdDuration::from_millis(50);
/// The first retry waits up to this; each failure doubles it, up to `MAX_BACKOFF`.
const FIRST_BACKOFF_MS: i64 = 500;
const MAX_BACKOFF: Duration = Duration::hours(1);
/// How often the worker looks for due endpoints (one indexed read) unless woken sooner: a change
/// answered on this node wakes it (`Cabinet::events_may_have_committed`), so this bounds how late
/// another node's events (or a retry that came due) are seen.
const LOOK_EVERY: StdDuration = StdDuration::from_millis(100);
/// The shortest time between two looks when wakes come faster (every change request wakes it).
const LOOK_AT_MOST_EVERY: StdDuration = StdDuration::from_millis(5);
/// How long a node keeps an endpoint it has caught up with, sending what comes meanwhile.
const IDLE_HOLD: StdDuration = StdDuration::from_secs(1);
/// Endpoints one node sends to at once.
const CONCURRENT_ENDPOINTS: usize = 16;

/// An endpoint, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub id: WebhookId,
    pub workspace_id: WorkspaceId,
    pub url: String,
    pub event_types: Vec<String>,
    pub enabled: bool,
    /// Why the worker disabled it (`retries_exhausted`); none when a key disabled it.
    pub disabled_reason: Option<String>,
    /// The signing secret as stored: sealed with the server key (`SecretSealer`, the endpoint's
    /// id as associated data), or as shown (`whsec_…`) when a version before sealing wrote it
    /// and the server has not yet sealed it (`Cabinet::seal_plain_webhook_secrets`).
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<DateTime<Utc>>,
    /// The last event acknowledged (or passed over by the filter).
    pub delivered_seq: u64,
    /// Failed attempts at the head event since the last success.
    pub failed_attempts: u32,
    pub failing_since: Option<DateTime<Utc>>,
    pub next_attempt_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An endpoint to store.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub id: WebhookId,
    pub workspace_id: WorkspaceId,
    pub url: String,
    pub event_types: Vec<String>,
    pub enabled: bool,
    /// Sealed (see `Webhook::secret`).
    pub secret: String,
    pub at: DateTime<Utc>,
}

/// What an update changes (`None`: left as it is).
#[derive(Debug, Clone, Default)]
pub struct WebhookChange {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

/// One attempt to deliver one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: DeliveryId,
    pub webhook_id: WebhookId,
    pub workspace_id: WorkspaceId,
    pub seq: u64,
    /// 1 for the first attempt at this event, 2 for the first retry, …
    pub attempt: u32,
    pub at: DateTime<Utc>,
    /// The receiver's status, when it answered.
    pub status: Option<u16>,
    /// Why there was no answer (or why the answer was not a success).
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// One POST to a receiver.
#[derive(Debug, Clone)]
pub struct WebhookRequest {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// What a receiver did with a POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// It answered with this status (its body is not read).
    Answered(u16),
    /// No answer: refused address, connection error, timeout.
    Failed(String),
}

/// Sends deliveries over HTTP; connects only to addresses `receiver_allowed` accepts.
#[async_trait::async_trait]
pub trait WebhookSender: Send + Sync + 'static {
    async fn send(&self, request: WebhookRequest) -> SendOutcome;
}

/// Turns an event into the body of its delivery (the event as the API shows it).
#[async_trait::async_trait]
pub trait EventBodies: Send + Sync + 'static {
    async fn body(&self, cabinet: &Cabinet, event: &EventRecord) -> Result<Vec<u8>>;
}

/// A new endpoint's settings, as a caller gives them.
#[derive(Debug, Clone)]
pub struct WebhookInput {
    pub url: String,
    pub event_types: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

/// A created endpoint and its secret, shown this once.
#[derive(Debug, Clone)]
pub struct CreatedWebhook {
    pub webhook: Webhook,
    pub secret: String,
}

/// A new secret: `whsec_` and 32 random bytes in base64.
pub fn generate_secret() -> String {
    let mut key = [0u8; SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut key);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// The `webhook-signature` value for one secret: `v1,` and the base64 HMAC-SHA256, keyed by the
/// secret's bytes, of `{id}.{timestamp}.{body}`.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String> {
    let key = STANDARD
        .decode(secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret))
        .map_err(|_| Error::internal("a stored webhook secret is not base64"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(Error::internal)?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())))
}

/// Whether a receiver may be at `ip`: only public unicast addresses, unless the operator allows
/// private ones. Loopback, private (RFC 1918), link-local, unique-local, CGNAT (100.64/10),
/// multicast, broadcast, unspecified and documentation addresses are refused, and IPv4 written as
/// IPv6 is judged as IPv4.
pub fn receiver_allowed(ip: IpAddr, allow_private: bool) -> bool {
    allow_private || is_public(ip)
}

fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link local
                || (first & 0xffc0) == 0xfec0 // site local (deprecated)
                || first == 0x2001 && v6.segments()[1] == 0x0db8 // documentation
                || first == 0x0064 && v6.segments()[1] == 0xff9b // NAT64 (reaches IPv4 behind it)
                || v6.segments()[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_unspecified()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // CGNAT
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

/// Whether `kind` passes a filter: `*`, the type itself, or a prefix such as `file.*`.
pub fn filter_matches(event_types: &[String], kind: &str) -> bool {
    event_types.iter().any(|pattern| match pattern.strip_suffix('*') {
        Some(prefix) => kind.starts_with(prefix),
        None => pattern == kind,
    })
}

fn checked_event_types(types: Option<Vec<String>>) -> Result<Vec<String>> {
    let types = types.unwrap_or_else(|| vec!["*".to_owned()]);
    let invalid = |message: &str| Error::bad_request(Code::InvalidWebhookEventTypes, message);
    if types.is_empty() || types.len() > MAX_EVENT_TYPES {
        return Err(invalid("event_types lists 1 to 32 types, such as file.created, file.* or *"));
    }
    for pattern in &types {
        let name = pattern.strip_suffix(".*").unwrap_or(pattern);
        let well_formed = pattern == "*"
            || (!name.is_empty()
                && pattern.len() <= MAX_EVENT_TYPE_LEN
                && name.split('.').all(|part| {
                    !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                }));
        if !well_formed {
            return Err(invalid(&format!(
                "{pattern:?} is not an event type: use a type (file.created), a prefix (file.*) or *"
            )));
        }
    }
    Ok(types)
}

impl Cabinet {
    /// Checks a receiver URL: http or https, a host, no credentials, and (unless the operator
    /// allows private receivers) every address its host resolves to public.
    async fn checked_receiver(&self, raw: &str) -> Result<String> {
        let invalid = |message: &str| Error::bad_request(Code::InvalidWebhookUrl, message);
        if raw.len() > MAX_URL_LEN {
            return Err(invalid("the url is longer than 2048 bytes"));
        }
        let url = url::Url::parse(raw).map_err(|_| invalid("the url is not an absolute http(s) URL"))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(invalid("the url must be http or https"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("the url must not carry a user name or password"));
        }
        let host = url.host().ok_or_else(|| invalid("the url has no host"))?;
        if !self.settings.webhook_allow_private {
            let port = url.port_or_known_default().unwrap_or(443);
            let addresses: Vec<IpAddr> = match host {
                url::Host::Ipv4(ip) => vec![IpAddr::V4(ip)],
                url::Host::Ipv6(ip) => vec![IpAddr::V6(ip)],
                url::Host::Domain(name) => {
                    let lookup = tokio::net::lookup_host((name, port));
                    match tokio::time::timeout(StdDuration::from_secs(5), lookup).await {
                        Ok(Ok(found)) => found.map(|at| at.ip()).collect(),
                        // A name that does not resolve now is checked again at each connection.
                        _ => Vec::new(),
                    }
                }
            };
            if addresses.iter().any(|ip| !is_public(*ip)) || host_is_local_name(&url) {
                return Err(Error::bad_request(
                    Code::WebhookUrlNotPublic,
                    "the url's host is a loopback, private, link-local or otherwise non-public address; \
                     the server refuses such receivers unless started with --webhook-allow-private",
                ));
            }
        }
        Ok(url.to_string())
    }

    /// Adds an endpoint to the caller's workspace; the answer carries its secret, shown this
    /// once. Needs the admin role.
    pub async fn create_webhook(&self, caller: &Caller, input: WebhookInput) -> Result<CreatedWebhook> {
        caller.require(Role::Admin)?;
        let url = self.checked_receiver(&input.url).await?;
        let event_types = checked_event_types(input.event_types)?;
        if self.store.list_webhooks(&caller.workspace_id).await?.len() >= MAX_WEBHOOKS_PER_WORKSPACE {
            return Err(Error::conflict(Code::TooManyWebhooks, "a workspace has at most 20 webhooks"));
        }
        let secret = generate_secret();
        let id = WebhookId::generate();
        let webhook = self
            .store
            .create_webhook(&NewWebhook {
                secret: self.sealer.seal(id.as_str(), &secret)?,
                id,
                workspace_id: caller.workspace_id.clone(),
                url,
                event_types,
                enabled: input.enabled.unwrap_or(true),
                at: self.clock.now(),
            })
            .await?;
        Ok(CreatedWebhook { webhook, secret })
    }

    /// The caller's workspace's endpoints. Needs the admin role.
    pub async fn list_webhooks(&self, caller: &Caller) -> Result<Vec<Webhook>> {
        caller.require(Role::Admin)?;
        self.store.list_webhooks(&caller.workspace_id).await
    }

    /// One endpoint. Needs the admin role.
    pub async fn get_webhook(&self, caller: &Caller, id: &WebhookId) -> Result<Webhook> {
        caller.require(Role::Admin)?;
        self.store.get_webhook(&caller.workspace_id, id).await
    }

    /// Changes an endpoint's url, filter or state; enabling a disabled one resumes from its
    /// cursor. Needs the admin role.
    pub async fn update_webhook(
        &self,
        caller: &Caller,
        id: &WebhookId,
        change: WebhookInputChange,
    ) -> Result<Webhook> {
        caller.require(Role::Admin)?;
        let url = match change.url {
            Some(url) => Some(self.checked_receiver(&url).await?),
            None => None,
        };
        let event_types = match change.event_types {
            Some(types) => Some(checked_event_types(Some(types))?),
            None => None,
        };
        let change = WebhookChange { url, event_types, enabled: change.enabled };
        let changed = self.store.update_webhook(&caller.workspace_id, id, &change, self.clock.now()).await?;
        self.events_may_have_committed();
        Ok(changed)
    }

    /// Removes an endpoint and its log. Needs the admin role.
    pub async fn delete_webhook(&self, caller: &Caller, id: &WebhookId) -> Result<()> {
        caller.require(Role::Admin)?;
        self.store.delete_webhook(&caller.workspace_id, id).await
    }

    /// Gives an endpoint a new secret, shown this once; the old one keeps signing alongside it
    /// for `ROTATION_GRACE`, so a receiver can switch without missing a delivery. Needs the
    /// admin role.
    pub async fn rotate_webhook_secret(&self, caller: &Caller, id: &WebhookId) -> Result<CreatedWebhook> {
        caller.require(Role::Admin)?;
        let secret = generate_secret();
        let sealed = self.sealer.seal(id.as_str(), &secret)?;
        let now = self.clock.now();
        let webhook = self
            .store
            .rotate_webhook_secret(&caller.workspace_id, id, &sealed, now + ROTATION_GRACE, now)
            .await?;
        Ok(CreatedWebhook { webhook, secret })
    }

    /// Sends the workspace's events after `after` to the endpoint again, in order (those the
    /// feed still keeps). Needs the admin role.
    pub async fn replay_webhook(&self, caller: &Caller, id: &WebhookId, after: u64) -> Result<Webhook> {
        caller.require(Role::Admin)?;
        let rewound = self.store.rewind_webhook(&caller.workspace_id, id, after, self.clock.now()).await?;
        self.events_may_have_committed();
        Ok(rewound)
    }

    /// An endpoint's delivery attempts, newest first. Needs the admin role.
    pub async fn webhook_deliveries(
        &self,
        caller: &Caller,
        id: &WebhookId,
        before: Option<&DeliveryId>,
        limit: u32,
    ) -> Result<Vec<Delivery>> {
        caller.require(Role::Admin)?;
        // Unknown (or another workspace's) endpoint: 404, not an empty log.
        self.store.get_webhook(&caller.workspace_id, id).await?;
        self.store
            .webhook_deliveries(&caller.workspace_id, id, before, limit.clamp(1, MAX_DELIVERIES_PER_READ))
            .await
    }

    /// Wakes this node's webhook worker: a change may have committed events. A hint only (the
    /// worker also looks every `LOOK_EVERY`), so calling it when nothing changed costs one look.
    pub fn events_may_have_committed(&self) {
        self.webhook_wake.send_modify(|changes| *changes = changes.wrapping_add(1));
    }

    /// Seals the secrets that a version before sealing stored as shown; returns how many
    /// endpoints it sealed. Each row is replaced only if it still holds what was read, so a
    /// rotation meanwhile is kept (and sealed on the next run).
    pub async fn seal_plain_webhook_secrets(&self) -> Result<u64> {
        let mut sealed = 0;
        loop {
            let plain = self.store.webhooks_with_plain_secrets(100).await?;
            let mut changed = false;
            for hook in &plain {
                let seal = |secret: &str| -> Result<String> {
                    match secret.starts_with(SECRET_PREFIX) {
                        true => self.sealer.seal(hook.id.as_str(), secret),
                        false => Ok(secret.to_owned()),
                    }
                };
                let secret = seal(&hook.secret)?;
                let previous = hook.previous_secret.as_deref().map(seal).transpose()?;
                let from = (hook.secret.as_str(), hook.previous_secret.as_deref());
                if self.store.replace_webhook_secrets(&hook.id, from, (&secret, previous.as_deref())).await? {
                    sealed += 1;
                    changed = true;
                }
            }
            if plain.len() < 100 || !changed {
                return Ok(sealed);
            }
        }
    }

    /// A stored secret as it signs: opened, or as it is when it was stored unsealed.
    fn signing_secret(&self, webhook: &WebhookId, stored: &str) -> Result<String> {
        if stored.starts_with(SECRET_PREFIX) {
            return Ok(stored.to_owned());
        }
        self.sealer.open(webhook.as_str(), stored)
    }

    /// Delivers events to every due endpoint until the task is dropped: looks when woken
    /// (`events_may_have_committed`) or every `LOOK_EVERY`, claims what is due, and sends to up
    /// to `CONCURRENT_ENDPOINTS` at once.
    pub async fn deliver_webhooks_forever(
        &self,
        sender: Arc<dyn WebhookSender>,
        bodies: Arc<dyn EventBodies>,
    ) {
        let node = format!("node_{}", ulid::Ulid::new().to_string().to_ascii_lowercase());
        let slots = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_ENDPOINTS));
        // The endpoints this node is sending to: never claimed twice here, even when a lease
        // looks expired (a clock moved on).
        let working: Arc<std::sync::Mutex<HashSet<WebhookId>>> = Arc::default();
        let mut woken = self.webhook_wake.subscribe();
        loop {
            let looked = tokio::time::Instant::now();
            match self.store.due_webhooks(self.clock.now(), CONCURRENT_ENDPOINTS as u32).await {
                Ok(due) => {
                    for id in due {
                        if working.lock().unwrap_or_else(|e| e.into_inner()).contains(&id) {
                            continue;
                        }
                        let Ok(slot) = slots.clone().try_acquire_owned() else { break };
                        let claiming = Instant::now();
                        let now = self.clock.now();
                        match self.store.claim_webhook(&id, &node, now, now + LEASE).await {
                            Ok(Some(webhook)) => {
                                working.lock().unwrap_or_else(|e| e.into_inner()).insert(id.clone());
                                let (cabinet, sender, bodies, node, working) = (
                                    self.clone(),
                                    sender.clone(),
                                    bodies.clone(),
                                    node.clone(),
                                    working.clone(),
                                );
                                tokio::spawn(async move {
                                    let sent = cabinet
                                        .deliver_claimed(&webhook, &node, claiming, &*sender, &*bodies)
                                        .await;
                                    working.lock().unwrap_or_else(|e| e.into_inner()).remove(&webhook.id);
                                    drop(slot);
                                    // Events may have come while it sent: look again now. After an
                                    // error, at the next look (not at once, over and over).
                                    if sent {
                                        cabinet.events_may_have_committed();
                                    }
                                });
                            }
                            Ok(None) => {}
                            Err(err) => tracing::warn!(error = %err, "claiming a webhook failed"),
                        }
                    }
                }
                Err(err) => tracing::warn!(error = %err, "looking for due webhooks failed"),
            }
            tokio::select! {
                () = tokio::time::sleep_until(looked + LOOK_EVERY) => {}
                _ = woken.changed() => {
                    tokio::time::sleep_until(looked + LOOK_AT_MOST_EVERY).await;
                }
            }
            woken.borrow_and_update();
        }
    }

    /// Sends a claimed endpoint its next events while a heartbeat keeps the claim: when the
    /// lease cannot be renewed before it runs out (by this node's count, `LEASE_MARGIN` early),
    /// the sending stops where it is, an attempt in flight included, so no other node that
    /// takes the endpoint over sends alongside it. Whether it ended as it should (all sent, or
    /// a failed attempt scheduled for retry).
    async fn deliver_claimed(
        &self,
        webhook: &Webhook,
        node: &str,
        claimed: Instant,
        sender: &dyn WebhookSender,
        bodies: &dyn EventBodies,
    ) -> bool {
        let sending = self.deliver_leased(webhook, node, sender, bodies);
        let heartbeat = self.hold_lease(&webhook.id, node, claimed);
        tokio::select! {
            biased;
            sent = sending => match sent {
                Ok(()) => true,
                Err(err) => {
                    tracing::warn!(webhook = %webhook.id, error = %err, "webhook delivery failed");
                    let _ = self.store.release_webhook(&webhook.id, node).await;
                    false
                }
            },
            () = heartbeat => {
                tracing::warn!(webhook = %webhook.id, "lost the lease on a webhook endpoint; stopped sending to it");
                // Sending has stopped: a lease that a change ended can be taken at once.
                let _ = self.store.release_webhook(&webhook.id, node).await;
                false
            }
        }
    }

    /// Renews `node`'s lease every `RENEW_EVERY`; returns when it is lost (another node holds
    /// it) or has run out by this node's count.
    async fn hold_lease(&self, id: &WebhookId, node: &str, claimed: Instant) {
        let lease = LEASE.to_std().unwrap_or_default();
        let mut valid_until = tokio::time::Instant::from_std(claimed + lease - LEASE_MARGIN);
        loop {
            let next = (tokio::time::Instant::now() + RENEW_EVERY).min(valid_until);
            tokio::time::sleep_until(next).await;
            if tokio::time::Instant::now() >= valid_until {
                return;
            }
            let asked = tokio::time::Instant::now();
            let renewing = self.store.renew_webhook(id, node, self.clock.now() + LEASE);
            match tokio::time::timeout_at(valid_until, renewing).await {
                Ok(Ok(true)) => valid_until = asked + lease - LEASE_MARGIN,
                Ok(Ok(false)) | Err(_) => return,
                // Tried again at the next beat, while the lease lasts.
                Ok(Err(err)) => {
                    tracing::warn!(webhook = %id, error = %err, "renewing a webhook lease failed")
                }
            }
        }
    }

    /// Sends a leased endpoint its next events in order, moving its cursor past each 2xx (stored
    /// with the next write, `ACKS_PER_WRITE`), until none is left or `EVENTS_PER_CLAIM` were
    /// read; at the first failure, stores what was acknowledged, schedules the retry (or disables
    /// the endpoint) and stops.
    async fn deliver_leased(
        &self,
        webhook: &Webhook,
        node: &str,
        sender: &dyn WebhookSender,
        bodies: &dyn EventBodies,
    ) -> Result<()> {
        let secret = self.signing_secret(&webhook.id, &webhook.secret)?;
        let previous = match (&webhook.previous_secret, webhook.previous_secret_until) {
            (Some(previous), Some(until)) => Some((self.signing_secret(&webhook.id, previous)?, until)),
            _ => None,
        };
        let mut acks = Acks {
            stored: webhook.delivered_seq,
            cursor: webhook.delivered_seq,
            log: Vec::new(),
            held_since: None,
        };
        let mut attempts = webhook.failed_attempts;
        let mut read = 0;
        let mut woken = self.webhook_wake.subscribe();
        let mut idle_since = None;
        while read < EVENTS_PER_CLAIM {
            // Read first: every event up to it has committed, so if none after the cursor is
            // left (the retention removed them while the endpoint was disabled) the cursor may
            // skip to it.
            let newest = self.store.newest_event(&webhook.workspace_id).await?;
            let events = self.store.events_after(&webhook.workspace_id, acks.cursor, EVENTS_PER_READ).await?;
            if events.is_empty() {
                acks.cursor = acks.cursor.max(newest);
                if !self.store_acks(webhook, node, &mut acks).await? {
                    return self.store.release_webhook(&webhook.id, node).await;
                }
                // Caught up: keep the claim a while for what comes next (a claim and its
                // release are two writes, which a steady flow of changes would otherwise pay
                // for every few events).
                let idle_since = *idle_since.get_or_insert_with(Instant::now);
                if idle_since.elapsed() >= IDLE_HOLD {
                    break;
                }
                let _ = tokio::time::timeout(LOOK_EVERY, woken.changed()).await;
                woken.borrow_and_update();
                continue;
            }
            if idle_since.take().is_some() {
                // Held while idle: the endpoint may have been disabled, changed, replayed or
                // removed meanwhile; if so the next claim starts from what it is now.
                let now = match self.store.get_webhook(&webhook.workspace_id, &webhook.id).await {
                    Err(Error::NotFound(_)) => return Ok(()),
                    found => found?,
                };
                if !now.enabled || now.updated_at != webhook.updated_at || now.delivered_seq != acks.stored {
                    return self.store.release_webhook(&webhook.id, node).await;
                }
            }
            read += events.len() as u32;
            for event in events {
                if !filter_matches(&webhook.event_types, &event.kind) {
                    acks.cursor = event.seq;
                    continue;
                }
                let body = bodies.body(self, &event).await?;
                let id = format!("{}.{}", event.workspace_id, event.seq);
                let now = self.clock.now();
                let timestamp = now.timestamp();
                let mut signature = sign(&secret, &id, timestamp, &body)?;
                if let Some((previous, until)) = &previous {
                    if *until > now {
                        signature.push(' ');
                        signature.push_str(&sign(previous, &id, timestamp, &body)?);
                    }
                }
                let request = WebhookRequest {
                    url: webhook.url.clone(),
                    headers: vec![
                        ("content-type", "application/json".to_owned()),
                        ("webhook-id", id),
                        ("webhook-timestamp", timestamp.to_string()),
                        ("webhook-signature", signature),
                    ],
                    body,
                };
                let started = Instant::now();
                let outcome = sender.send(request).await;
                let (status, error) = match outcome {
                    SendOutcome::Answered(status) if (200..300).contains(&status) => (Some(status), None),
                    SendOutcome::Answered(status) => {
                        (Some(status), Some(format!("the receiver answered {status}")))
                    }
                    SendOutcome::Failed(error) => (None, Some(error)),
                };
                let delivery = Delivery {
                    id: DeliveryId::generate_in_order(),
                    webhook_id: webhook.id.clone(),
                    workspace_id: webhook.workspace_id.clone(),
                    seq: event.seq,
                    attempt: attempts + 1,
                    at: now,
                    status,
                    error: error.clone(),
                    duration_ms: started.elapsed().as_millis() as u64,
                };
                if error.is_none() {
                    acks.cursor = event.seq;
                    acks.log.push(delivery);
                    attempts = 0;
                    let held_since = *acks.held_since.get_or_insert_with(Instant::now);
                    if (acks.log.len() >= ACKS_PER_WRITE || held_since.elapsed() >= ACKS_HELD_AT_MOST)
                        && !self.store_acks(webhook, node, &mut acks).await?
                    {
                        return self.store.release_webhook(&webhook.id, node).await;
                    }
                    continue;
                }
                if !self.store_acks(webhook, node, &mut acks).await? {
                    return self.store.release_webhook(&webhook.id, node).await;
                }
                let now = self.clock.now();
                let failing_since = if attempts == 0 { now } else { webhook.failing_since.unwrap_or(now) };
                let give_up_at = failing_since + self.settings.webhook_retry_period;
                let disable = (now >= give_up_at).then_some("retries_exhausted");
                let next = (now + backoff(attempts + 1)).min(give_up_at);
                self.store.webhook_failed(&webhook.id, node, &delivery, next, disable).await?;
                // Recorded only while this node held the lease; one that a change or replay
                // ended meanwhile is this node's to give back.
                return self.store.release_webhook(&webhook.id, node).await;
            }
        }
        let _ = self.store_acks(webhook, node, &mut acks).await?;
        self.store.release_webhook(&webhook.id, node).await
    }

    /// Moves the stored cursor to where this node got, logging the deliveries acknowledged since
    /// the last write, and renews the lease; `false` when the cursor was not where this node
    /// left it, or the lease is another node's or was ended by a change or replay: this node
    /// stops sending (and gives back what is left of the lease).
    async fn store_acks(&self, webhook: &Webhook, node: &str, acks: &mut Acks) -> Result<bool> {
        if acks.cursor == acks.stored && acks.log.is_empty() {
            return Ok(true);
        }
        let renewed = self.clock.now() + LEASE;
        let moved = self
            .store
            .advance_webhook(&webhook.id, node, acks.stored, acks.cursor, renewed, &acks.log)
            .await?;
        acks.log.clear();
        acks.held_since = None;
        acks.stored = acks.cursor;
        Ok(moved)
    }
}

/// Where a node got in an endpoint's events, against what is stored.
struct Acks {
    /// The stored cursor.
    stored: u64,
    /// The last event acknowledged (or passed over by the filter) here.
    cursor: u64,
    /// The acknowledged deliveries not yet logged, and since when the first has waited.
    log: Vec<Delivery>,
    held_since: Option<Instant>,
}

/// The wait before retry number `attempt` (1 for the first): jittered, uniform in half to all of
/// `FIRST_BACKOFF_MS · 2^(attempt-1)`, at most `MAX_BACKOFF`, so failing endpoints of many
/// workspaces do not retry in step, and a retry never comes at once.
fn backoff(attempt: u32) -> Duration {
    let ceiling = FIRST_BACKOFF_MS
        .saturating_mul(1_i64 << attempt.saturating_sub(1).min(30))
        .min(MAX_BACKOFF.num_milliseconds());
    Duration::milliseconds(rand::thread_rng().gen_range(ceiling / 2..=ceiling))
}

/// `localhost` and names under it resolve to loopback whatever DNS says.
fn host_is_local_name(url: &url::Url) -> bool {
    url.host_str().is_some_and(|host| {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        host == "localhost" || host.ends_with(".localhost")
    })
}

/// A change as a caller gives it.
#[derive(Debug, Clone, Default)]
pub struct WebhookInputChange {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_public_receivers_are_refused() {
        for refused in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            let ip: IpAddr = refused.parse().unwrap();
            assert!(!receiver_allowed(ip, false), "{refused} was allowed");
            assert!(receiver_allowed(ip, true));
        }
        for allowed in ["1.1.1.1", "93.184.216.34", "2606:4700::1111"] {
            assert!(receiver_allowed(allowed.parse().unwrap(), false), "{allowed} was refused");
        }
    }

    #[test]
    fn filters_match_types_and_prefixes() {
        let types = vec!["file.*".to_owned(), "upload.failed".to_owned()];
        assert!(filter_matches(&types, "file.created"));
        assert!(filter_matches(&types, "upload.failed"));
        assert!(!filter_matches(&types, "upload.succeeded"));
        assert!(!filter_matches(&types, "folder.created"));
        assert!(filter_matches(&["*".to_owned()], "webhook.disabled"));
        assert!(checked_event_types(Some(vec!["File.*".to_owned()])).is_err());
        assert!(checked_event_types(Some(vec![])).is_err());
        assert!(checked_event_types(Some(vec!["file.*".to_owned(), "*".to_owned()])).is_ok());
    }

    #[test]
    fn signatures_follow_standard_webhooks() {
        // The example of the Standard Webhooks specification's reference tests.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let signature =
            sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#).unwrap();
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..40 {
            let wait = backoff(attempt);
            assert!(wait >= Duration::milliseconds(FIRST_BACKOFF_MS / 2) && wait <= MAX_BACKOFF);
        }
    }
}
