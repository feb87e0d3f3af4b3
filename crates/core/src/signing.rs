//! Signed URLs for Cabinet's own storage endpoint.
//!
//! A signed URL works only for its operation (upload: PUT or multipart POST; download: GET or
//! HEAD; thumbnail: GET or HEAD of one size of one file's thumbnail), its workspace and object,
//! its size limit and its time window. A permalink is a download URL without a time window: it
//! names the file's content version and its workspace's link generation instead, and the service
//! checks both against the file and the workspace each time. The signature is an HMAC-SHA256 over
//! all of those; the query must carry exactly the signed parameters in their canonical order, and
//! the signature is compared in constant time.
//!
//! URLs are signed by the newest signing key and name it (`key=N`; key 0, the deployment secret
//! itself, is named by leaving `key` out, so URLs from before rotation existed still verify).
//! Every key not retired is accepted. Keys after 0 are derived from the deployment secret and a
//! random salt kept in the database: rotating needs no new secret in the configuration, and
//! forging a URL needs both the secret and the database.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, TimeZone, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{Error, Result};
use crate::Code;

type HmacSha256 = Hmac<Sha256>;

/// What a signed URL lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedOperation {
    /// Send the bytes of one upload.
    Upload,
    /// Send one part of a multipart upload (the object is `upl_…/N`).
    UploadPart,
    /// Read one file.
    Download,
    /// Read one thumbnail of one file; the object is `{file}/{size}`.
    Thumbnail,
}

impl SignedOperation {
    fn as_str(self) -> &'static str {
        match self {
            SignedOperation::Upload => "upload",
            SignedOperation::UploadPart => "upload-part",
            SignedOperation::Download => "download",
            SignedOperation::Thumbnail => "thumbnail",
        }
    }
}

/// The parameters a signed URL carries besides its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedParams {
    /// Unix seconds after which the URL is refused.
    pub expires: i64,
    /// Upload: the most bytes accepted. Download: unused (0).
    pub max_bytes: u64,
    /// Download: serve as an attachment.
    pub attachment: bool,
}

/// What a permalink names besides its workspace and object (a file, or the upload that makes one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermalinkParams {
    /// The content version it reads: the first [`VERSION_CHARS`] hex digits of the sha256; `None`
    /// for a permalink handed out before the bytes arrived (to an upload's file).
    pub version: Option<String>,
    /// The workspace's link generation when it was made; revoking links moves it on.
    pub generation: u64,
    /// Serve as an attachment.
    pub attachment: bool,
}

/// Hex digits of a file's sha256 that name its content version in lasting URLs (64 bits).
pub const VERSION_CHARS: usize = 16;

/// The content version of bytes with this sha256 (lowercase hex), as lasting URLs name it.
pub fn content_version(sha256: &str) -> &str {
    sha256.get(..VERSION_CHARS).unwrap_or(sha256)
}

/// A signing key as the database keeps it: key 0 is the deployment secret itself (no salt); each
/// later key is derived from the secret and its salt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    pub id: u32,
    /// Lowercase hex; empty for key 0.
    pub salt: String,
    pub created_at: DateTime<Utc>,
    /// Set once the key is retired: nothing it signed is accepted after.
    pub retired_at: Option<DateTime<Utc>>,
}

/// The keys a signer holds: the newest signs, every one verifies.
#[derive(Debug, Clone)]
struct KeyRing {
    /// Accepted keys by id, with their HMAC secrets.
    accepted: BTreeMap<u32, Vec<u8>>,
}

impl KeyRing {
    fn signing_key(&self) -> (u32, &[u8]) {
        let (id, secret) = self.accepted.last_key_value().expect("a key ring is never empty");
        (*id, secret)
    }
}

/// Signs and verifies storage URLs with keys every node shares.
#[derive(Clone)]
pub struct UrlSigner {
    deployment_secret: Arc<Vec<u8>>,
    ring: Arc<RwLock<KeyRing>>,
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UrlSigner(..)")
    }
}

const SIGNATURE_BYTES: usize = 32;

/// An HMAC over length-prefixed fields, so no two different inputs produce the same message.
fn mac_of(secret: &[u8], fields: &[&str]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    for field in fields {
        mac.update(&(field.len() as u64).to_be_bytes());
        mac.update(field.as_bytes());
    }
    mac
}

impl UrlSigner {
    /// A signer holding key 0 only; the secret must be at least 32 bytes.
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self> {
        let secret = secret.into();
        if secret.len() < 32 {
            return Err(Error::bad_request(
                Code::WeakSigningSecret,
                "the signing secret must be at least 32 bytes",
            ));
        }
        let ring = KeyRing { accepted: BTreeMap::from([(0, secret.clone())]) };
        Ok(Self { deployment_secret: Arc::new(secret), ring: Arc::new(RwLock::new(ring)) })
    }

    /// The deployment secret, for other signatures that share it (with their own domain prefix).
    pub(crate) fn secret(&self) -> &[u8] {
        &self.deployment_secret
    }

    /// Takes the keys the database holds: those not retired are accepted, the newest signs. With
    /// every key retired (which rotation never leaves), key 0 stays so that the signer can sign.
    pub fn install(&self, keys: &[SigningKeyRecord]) {
        let mut accepted: BTreeMap<u32, Vec<u8>> = keys
            .iter()
            .filter(|key| key.retired_at.is_none())
            .map(|key| (key.id, self.derive(key)))
            .collect();
        if accepted.is_empty() {
            accepted.insert(0, self.deployment_secret.to_vec());
        }
        *self.ring.write().expect("the key ring lock is never poisoned") = KeyRing { accepted };
    }

    fn derive(&self, key: &SigningKeyRecord) -> Vec<u8> {
        if key.id == 0 {
            return self.deployment_secret.to_vec();
        }
        let id = key.id.to_string();
        mac_of(&self.deployment_secret, &["cabinet-signing-key-v1", &id, &key.salt])
            .finalize()
            .into_bytes()
            .to_vec()
    }

    /// The id of the key that signs new URLs.
    pub fn signing_key_id(&self) -> u32 {
        self.ring.read().expect("the key ring lock is never poisoned").signing_key().0
    }

    /// Whether a raw query names a key this signer does not hold (so it may have been added or
    /// retired since the signer last read the keys).
    pub fn names_unknown_key(&self, raw_query: Option<&str>) -> bool {
        let Some(id) = raw_query.and_then(named_key) else { return false };
        !self.ring.read().expect("the key ring lock is never poisoned").accepted.contains_key(&id)
    }

    /// Signs `fields` with the signing key; returns the key's id and the signature.
    fn sign_fields(&self, fields: &[&str]) -> (u32, String) {
        let ring = self.ring.read().expect("the key ring lock is never poisoned");
        let (id, secret) = ring.signing_key();
        (id, URL_SAFE_NO_PAD.encode(mac_of(secret, fields).finalize().into_bytes()))
    }

    /// Checks `signature` over `fields` with the key `id`.
    fn verify_fields(&self, id: u32, fields: &[&str], signature: &[u8]) -> Result<()> {
        let ring = self.ring.read().expect("the key ring lock is never poisoned");
        let secret = ring
            .accepted
            .get(&id)
            .ok_or_else(|| invalid("the URL was signed by a key this service no longer accepts"))?;
        mac_of(secret, fields)
            .verify_slice(signature)
            .map_err(|_| invalid("the URL's signature does not match"))
    }

    fn expiring_fields(
        op: SignedOperation,
        workspace: &str,
        object: &str,
        params: &SignedParams,
    ) -> [String; 7] {
        [
            "cabinet-storage-v1".to_owned(),
            op.as_str().to_owned(),
            workspace.to_owned(),
            object.to_owned(),
            params.expires.to_string(),
            params.max_bytes.to_string(),
            disposition(params.attachment).to_owned(),
        ]
    }

    /// The query string (without `?`) that authorises `op` on `workspace/object`.
    pub fn sign(&self, op: SignedOperation, workspace: &str, object: &str, params: &SignedParams) -> String {
        let fields = Self::expiring_fields(op, workspace, object, params);
        let (key, signature) = self.sign_fields(&fields.each_ref().map(String::as_str));
        let mut query = format!("expires={}", params.expires);
        if matches!(op, SignedOperation::Upload | SignedOperation::UploadPart) {
            query.push_str(&format!("&max={}", params.max_bytes));
        }
        if params.attachment {
            query.push_str("&dl=1");
        }
        finish_query(query, key, &signature)
    }

    /// Checks a raw query string against `op` on `workspace/object` at `now`, and returns the
    /// parameters it authorises.
    pub fn verify(
        &self,
        op: SignedOperation,
        workspace: &str,
        object: &str,
        raw_query: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<SignedParams> {
        let (params, key, signature) = parse_expiring(op, raw_query.unwrap_or(""))?;
        let fields = Self::expiring_fields(op, workspace, object, &params);
        self.verify_fields(key, &fields.each_ref().map(String::as_str), &signature)?;
        if now.timestamp() >= params.expires {
            return Err(Error::BadSignature { code: Code::UrlExpired, message: "this URL has expired" });
        }
        Ok(params)
    }

    fn permalink_fields(workspace: &str, file: &str, params: &PermalinkParams) -> [String; 7] {
        [
            "cabinet-storage-v1".to_owned(),
            "permalink".to_owned(),
            workspace.to_owned(),
            file.to_owned(),
            params.version.clone().unwrap_or_default(),
            params.generation.to_string(),
            disposition(params.attachment).to_owned(),
        ]
    }

    /// The query string (without `?`) of a permalink to `workspace/file`.
    pub fn sign_permalink(&self, workspace: &str, file: &str, params: &PermalinkParams) -> String {
        let fields = Self::permalink_fields(workspace, file, params);
        let (key, signature) = self.sign_fields(&fields.each_ref().map(String::as_str));
        let mut query = match &params.version {
            Some(version) => format!("v={version}&gen={}", params.generation),
            None => format!("gen={}", params.generation),
        };
        if params.attachment {
            query.push_str("&dl=1");
        }
        finish_query(query, key, &signature)
    }

    /// Checks a permalink's query for `workspace/file` and returns what it names; the caller
    /// checks the version and generation against the file and the workspace.
    pub fn verify_permalink(
        &self,
        workspace: &str,
        file: &str,
        raw_query: Option<&str>,
    ) -> Result<PermalinkParams> {
        let (params, key, signature) = parse_permalink(raw_query.unwrap_or(""))?;
        let fields = Self::permalink_fields(workspace, file, &params);
        self.verify_fields(key, &fields.each_ref().map(String::as_str), &signature)?;
        Ok(params)
    }
}

/// Whether a download query is a permalink's rather than an expiring URL's.
pub fn is_permalink_query(raw_query: Option<&str>) -> bool {
    raw_query.is_some_and(|query| query.starts_with("v=") || query.starts_with("gen="))
}

fn disposition(attachment: bool) -> &'static str {
    if attachment {
        "attachment"
    } else {
        "inline"
    }
}

fn finish_query(mut query: String, key: u32, signature: &str) -> String {
    if key != 0 {
        query.push_str(&format!("&key={key}"));
    }
    query.push_str("&sig=");
    query.push_str(signature);
    query
}

/// Seconds since the epoch, rounded up so a URL never lives shorter than asked.
pub fn expiry_timestamp(at: DateTime<Utc>) -> i64 {
    let secs = at.timestamp();
    if at.timestamp_subsec_millis() > 0 {
        secs + 1
    } else {
        secs
    }
}

/// The expiry of a URL asked to live `ttl_secs` from `now`, rounded up to the end of a window of
/// `window_secs` (at most the lifetime itself), so every request within one window gets the same
/// URL (and caches keyed by URL can hit) while no URL lives shorter than asked.
pub fn windowed_expiry(now: DateTime<Utc>, ttl_secs: i64, window_secs: i64) -> i64 {
    let end = expiry_timestamp(now + chrono::Duration::seconds(ttl_secs));
    let window = window_secs.min(ttl_secs).max(1);
    end.div_euclid(window) * window + if end.rem_euclid(window) == 0 { 0 } else { window }
}

/// An expiring URL's window: the instant it may be said to be signed at (the start of its window,
/// so the URL is the same for the whole window) and its expiry (the window's end, see
/// [`windowed_expiry`]), never past `now + max_secs` nor more than `max_secs` apart (S3 refuses
/// presigned URLs over 7 days).
pub fn url_window(
    now: DateTime<Utc>,
    ttl_secs: i64,
    window_secs: i64,
    max_secs: i64,
) -> (DateTime<Utc>, i64) {
    let expires = windowed_expiry(now, ttl_secs, window_secs)
        .min(expiry_timestamp(now + chrono::Duration::seconds(max_secs)));
    let window = window_secs.min(ttl_secs).max(1);
    let floor = now.timestamp().div_euclid(window) * window;
    let start = floor.max(expires - max_secs).min(now.timestamp());
    (expiry_instant(start), expires)
}

/// The instant a signed URL's `expires` names.
pub fn expiry_instant(expires: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(expires, 0).single().unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn invalid(message: &'static str) -> Error {
    Error::BadSignature { code: Code::InvalidSignature, message }
}

fn incomplete() -> Error {
    invalid("the URL is not a complete signed URL")
}

/// The pairs of a query, read in order: each `take` must find the next expected name.
struct Pairs<'a>(std::iter::Peekable<std::vec::IntoIter<(&'a str, &'a str)>>);

impl<'a> Pairs<'a> {
    fn of(raw: &'a str) -> Self {
        let pairs: Vec<(&str, &str)> =
            raw.split('&').map(|pair| pair.split_once('=').unwrap_or((pair, ""))).collect();
        Self(pairs.into_iter().peekable())
    }

    fn take(&mut self, name: &str) -> Result<&'a str> {
        match self.0.next() {
            Some((key, value)) if key == name => Ok(value),
            _ => Err(incomplete()),
        }
    }

    /// `dl=1` when it is next.
    fn attachment(&mut self) -> bool {
        let next = self.0.peek() == Some(&("dl", "1"));
        if next {
            self.0.next();
        }
        next
    }

    /// The rest: `[key=N&]sig=S` and nothing after.
    fn key_and_signature(mut self) -> Result<(u32, Vec<u8>)> {
        let key = match self.0.peek() {
            Some(("key", value)) => {
                let id = parse_decimal(value)?;
                self.0.next();
                // Key 0 is named by leaving `key` out: one spelling for each URL.
                u32::try_from(id).ok().filter(|id| *id != 0).ok_or_else(incomplete)?
            }
            _ => 0,
        };
        let signature = match (self.0.next(), self.0.next()) {
            (Some(("sig", value)), None) => value,
            (Some(("sig", _)), Some(_)) => {
                return Err(invalid("the URL carries parameters that were not signed"))
            }
            _ => return Err(incomplete()),
        };
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .ok()
            .filter(|sig| sig.len() == SIGNATURE_BYTES)
            .ok_or_else(|| invalid("the URL's signature is malformed"))?;
        Ok((key, signature))
    }
}

/// The key a query names (`&key=N&sig=`), when it names one.
fn named_key(raw: &str) -> Option<u32> {
    let (_, rest) = raw.rsplit_once("&key=")?;
    let (id, _) = rest.split_once("&sig=")?;
    parse_decimal(id).ok().and_then(|id| u32::try_from(id).ok())
}

/// Parses exactly `expires=N[&max=N][&dl=1][&key=N]&sig=S`, in that order, each once: `max` only
/// (and always) for uploads, `dl` only for downloads, neither for thumbnails.
fn parse_expiring(op: SignedOperation, raw: &str) -> Result<(SignedParams, u32, Vec<u8>)> {
    let mut pairs = Pairs::of(raw);
    let expires = parse_decimal(pairs.take("expires")?)?;
    let max_bytes = match op {
        SignedOperation::Upload | SignedOperation::UploadPart => parse_decimal(pairs.take("max")?)?,
        SignedOperation::Download | SignedOperation::Thumbnail => 0,
    };
    let attachment = op == SignedOperation::Download && pairs.attachment();
    let (key, signature) = pairs.key_and_signature()?;
    let expires = i64::try_from(expires).map_err(|_| incomplete())?;
    Ok((SignedParams { expires, max_bytes, attachment }, key, signature))
}

/// Parses exactly `[v=HEX&]gen=N[&dl=1][&key=N]&sig=S`.
fn parse_permalink(raw: &str) -> Result<(PermalinkParams, u32, Vec<u8>)> {
    let mut pairs = Pairs::of(raw);
    let version = match pairs.0.peek() {
        Some(("v", version)) => {
            let version = *version;
            pairs.0.next();
            if version.len() != VERSION_CHARS
                || !version.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            {
                return Err(incomplete());
            }
            Some(version.to_owned())
        }
        _ => None,
    };
    let generation = parse_decimal(pairs.take("gen")?)?;
    let attachment = pairs.attachment();
    let (key, signature) = pairs.key_and_signature()?;
    Ok((PermalinkParams { version, generation, attachment }, key, signature))
}

/// A canonical decimal: digits only, no leading zero, so each value has exactly one spelling and
/// a signed URL cannot be rewritten into another that still verifies.
fn parse_decimal(raw: &str) -> Result<u64> {
    let canonical = raw == "0" || !raw.starts_with('0');
    if raw.is_empty() || raw.len() > 19 || !canonical || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(incomplete());
    }
    raw.parse().map_err(|_| incomplete())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn signer() -> UrlSigner {
        UrlSigner::new(vec![7u8; 32]).unwrap()
    }

    fn upload_query(expires: i64) -> String {
        let params = SignedParams { expires, max_bytes: 100, attachment: false };
        signer().sign(SignedOperation::Upload, "ws_a", "upl_b", &params)
    }

    #[test]
    fn a_signed_upload_url_verifies_for_exactly_what_it_was_signed_for() {
        let now = Utc::now();
        let query = upload_query(now.timestamp() + 60);
        let params = signer().verify(SignedOperation::Upload, "ws_a", "upl_b", Some(&query), now).unwrap();
        assert_eq!(params.max_bytes, 100);
        for (op, ws, object) in [
            (SignedOperation::Download, "ws_a", "upl_b"),
            (SignedOperation::Upload, "ws_x", "upl_b"),
            (SignedOperation::Upload, "ws_a", "upl_c"),
        ] {
            assert!(signer().verify(op, ws, object, Some(&query), now).is_err());
        }
    }

    #[test]
    fn every_changed_truncated_or_reordered_query_is_refused() {
        let now = Utc::now();
        let query = upload_query(now.timestamp() + 60);
        let mut variants = vec![
            query.replace("max=100", "max=101"),
            query.replace("expires=", "expires=1"),
            query[..query.len() - 1].to_owned(),
            format!("{query}&extra=1"),
            format!("{query}&sig=AAAA"),
            String::new(),
        ];
        let parts: Vec<&str> = query.split('&').collect();
        variants.push(format!("{}&{}&{}", parts[1], parts[0], parts[2]));
        for bad in variants {
            let verdict = signer().verify(SignedOperation::Upload, "ws_a", "upl_b", Some(&bad), now);
            assert!(verdict.is_err(), "accepted {bad}");
        }
        let mut sig_flipped = query.clone().into_bytes();
        let last = sig_flipped.len() - 2;
        sig_flipped[last] = if sig_flipped[last] == b'A' { b'B' } else { b'A' };
        let sig_flipped = String::from_utf8(sig_flipped).unwrap();
        assert!(signer().verify(SignedOperation::Upload, "ws_a", "upl_b", Some(&sig_flipped), now).is_err());
    }

    #[test]
    fn a_part_url_is_neither_an_upload_url_nor_another_parts() {
        let now = Utc::now();
        let params = SignedParams { expires: now.timestamp() + 60, max_bytes: 5, attachment: false };
        let part = signer().sign(SignedOperation::UploadPart, "ws_a", "upl_b/1", &params);
        assert_eq!(
            signer().verify(SignedOperation::UploadPart, "ws_a", "upl_b/1", Some(&part), now).unwrap(),
            params
        );
        assert!(signer().verify(SignedOperation::UploadPart, "ws_a", "upl_b/2", Some(&part), now).is_err());
        assert!(signer().verify(SignedOperation::Upload, "ws_a", "upl_b/1", Some(&part), now).is_err());
        let upload = signer().sign(SignedOperation::Upload, "ws_a", "upl_b/1", &params);
        assert!(signer().verify(SignedOperation::UploadPart, "ws_a", "upl_b/1", Some(&upload), now).is_err());
    }

    #[test]
    fn an_expired_url_is_refused_with_its_own_code() {
        let now = Utc::now();
        let query = upload_query(now.timestamp() + 1);
        let later = now + Duration::seconds(2);
        let err = signer().verify(SignedOperation::Upload, "ws_a", "upl_b", Some(&query), later).unwrap_err();
        assert_eq!(err.code(), Code::UrlExpired);
    }

    #[test]
    fn a_url_signed_with_another_secret_is_refused() {
        let now = Utc::now();
        let query = upload_query(now.timestamp() + 60);
        let other = UrlSigner::new(vec![8u8; 32]).unwrap();
        let err = other.verify(SignedOperation::Upload, "ws_a", "upl_b", Some(&query), now).unwrap_err();
        assert_eq!(err.code(), Code::InvalidSignature);
    }

    #[test]
    fn the_attachment_flag_is_signed() {
        let now = Utc::now();
        let params = SignedParams { expires: now.timestamp() + 60, max_bytes: 0, attachment: false };
        let inline = signer().sign(SignedOperation::Download, "ws_a", "file_b", &params);
        let forged = inline.replace("&sig=", "&dl=1&sig=");
        assert!(signer().verify(SignedOperation::Download, "ws_a", "file_b", Some(&forged), now).is_err());
        let verified =
            signer().verify(SignedOperation::Download, "ws_a", "file_b", Some(&inline), now).unwrap();
        assert!(!verified.attachment);
    }

    /// A property test without a framework: a seeded generator of query strings — random
    /// splices of a real signed query's pieces, random edits of it, and random bytes — that the
    /// hand-written parser must survive without panicking, accepting only the exact signed query.
    #[test]
    fn random_queries_never_panic_and_only_the_exact_signed_query_verifies() {
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};

        let now = Utc::now();
        let cases: Vec<(SignedOperation, String)> = vec![
            (SignedOperation::Upload, upload_query(now.timestamp() + 60)),
            (
                SignedOperation::Download,
                signer().sign(
                    SignedOperation::Download,
                    "ws_a",
                    "upl_b",
                    &SignedParams { expires: now.timestamp() + 60, max_bytes: 0, attachment: true },
                ),
            ),
        ];
        let mut rng = StdRng::seed_from_u64(0x5eed_cab1);
        let alphabet: Vec<char> = "&=?%+-_.~ 0123456789abcdefxyzABCDEFXYZ\u{e9}\u{1F600}\0".chars().collect();
        for (op, signed) in &cases {
            let pieces: Vec<&str> =
                signed.split(['&', '=']).chain(["&", "=", "sig", "max", "dl", "1", ""]).collect();
            for round in 0..20_000 {
                let candidate: String = match round % 3 {
                    // Splices of real pieces.
                    0 => (0..rng.gen_range(0..10)).map(|_| pieces[rng.gen_range(0..pieces.len())]).collect(),
                    // One to three random edits of the signed query.
                    1 => {
                        let mut chars: Vec<char> = signed.chars().collect();
                        for _ in 0..rng.gen_range(1..=3) {
                            let at = rng.gen_range(0..=chars.len());
                            let c = alphabet[rng.gen_range(0..alphabet.len())];
                            match rng.gen_range(0..3) {
                                0 => chars.insert(at, c),
                                1 if at < chars.len() => {
                                    chars.remove(at);
                                }
                                _ if at < chars.len() => chars[at] = c,
                                _ => chars.push(c),
                            }
                        }
                        chars.into_iter().collect()
                    }
                    // Noise.
                    _ => (0..rng.gen_range(0..80))
                        .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
                        .collect(),
                };
                let verdict = signer().verify(*op, "ws_a", "upl_b", Some(&candidate), now);
                if verdict.is_ok() {
                    assert_eq!(&candidate, signed, "accepted a query that was not signed");
                }
            }
            // The signed query itself still verifies.
            assert!(signer().verify(*op, "ws_a", "upl_b", Some(signed), now).is_ok());
        }
    }

    #[test]
    fn a_thumbnail_url_is_bound_to_its_size_and_takes_no_download_flag() {
        let now = Utc::now();
        let params = SignedParams { expires: now.timestamp() + 60, max_bytes: 0, attachment: false };
        let query = signer().sign(SignedOperation::Thumbnail, "ws_a", "file_b/256", &params);
        assert!(signer().verify(SignedOperation::Thumbnail, "ws_a", "file_b/256", Some(&query), now).is_ok());
        for (op, object) in [
            (SignedOperation::Thumbnail, "file_b/1024"),
            (SignedOperation::Thumbnail, "file_c/256"),
            (SignedOperation::Download, "file_b/256"),
        ] {
            assert!(signer().verify(op, "ws_a", object, Some(&query), now).is_err(), "{op:?} {object}");
        }
        let with_dl = query.replace("&sig=", "&dl=1&sig=");
        let verdict = signer().verify(SignedOperation::Thumbnail, "ws_a", "file_b/256", Some(&with_dl), now);
        assert!(verdict.is_err());
    }

    #[test]
    fn numbers_have_one_spelling() {
        let now = Utc::now();
        let query = upload_query(now.timestamp() + 60);
        for bad in [query.replace("expires=", "expires=0"), query.replace("max=100", "max=0100")] {
            assert!(
                signer().verify(SignedOperation::Upload, "ws_a", "upl_b", Some(&bad), now).is_err(),
                "{bad}"
            );
        }
    }

    fn rotated(keys: &[(u32, bool)]) -> UrlSigner {
        let signer = signer();
        let records: Vec<SigningKeyRecord> = keys
            .iter()
            .map(|(id, retired)| SigningKeyRecord {
                id: *id,
                salt: if *id == 0 { String::new() } else { format!("{id:02x}aa") },
                created_at: Utc::now(),
                retired_at: retired.then(Utc::now),
            })
            .collect();
        signer.install(&records);
        signer
    }

    #[test]
    fn a_rotated_signer_names_its_key_and_still_accepts_the_previous_one_until_it_is_retired() {
        let now = Utc::now();
        let params = SignedParams { expires: now.timestamp() + 60, max_bytes: 0, attachment: false };
        let before = signer().sign(SignedOperation::Download, "ws_a", "file_b", &params);
        assert!(!before.contains("key="), "key 0 is named by leaving it out: {before}");
        let after_rotation = rotated(&[(0, false), (1, false)]);
        let new = after_rotation.sign(SignedOperation::Download, "ws_a", "file_b", &params);
        assert!(new.contains("&key=1&sig="), "{new}");
        for query in [&before, &new] {
            assert!(after_rotation
                .verify(SignedOperation::Download, "ws_a", "file_b", Some(query), now)
                .is_ok());
        }
        // The old signer has not read key 1 yet: the URL names a key it does not know.
        assert!(signer().names_unknown_key(Some(&new)));
        assert!(!signer().names_unknown_key(Some(&before)));
        let retired = rotated(&[(0, true), (1, false)]);
        let err =
            retired.verify(SignedOperation::Download, "ws_a", "file_b", Some(&before), now).unwrap_err();
        assert_eq!(err.code(), Code::InvalidSignature);
        assert!(retired.verify(SignedOperation::Download, "ws_a", "file_b", Some(&new), now).is_ok());
        // Renaming the key a URL names does not make it verify, nor does spelling key 0 out.
        let renamed = new.replace("&key=1&", "&key=2&");
        let two = rotated(&[(0, false), (1, false), (2, false)]);
        assert!(two.verify(SignedOperation::Download, "ws_a", "file_b", Some(&renamed), now).is_err());
        let spelled = before.replace("&sig=", "&key=0&sig=");
        assert!(two.verify(SignedOperation::Download, "ws_a", "file_b", Some(&spelled), now).is_err());
    }

    #[test]
    fn keys_after_zero_differ_from_the_secret_and_from_each_other() {
        let params = SignedParams { expires: 2_000_000_000, max_bytes: 0, attachment: false };
        let signatures: Vec<String> = [vec![(0, false)], vec![(1, false)], vec![(2, false)]]
            .iter()
            .map(|keys| rotated(keys).sign(SignedOperation::Download, "ws_a", "file_b", &params))
            .map(|query| query.rsplit_once("sig=").unwrap().1.to_owned())
            .collect();
        assert_ne!(signatures[0], signatures[1]);
        assert_ne!(signatures[1], signatures[2]);
    }

    #[test]
    fn a_permalink_is_bound_to_its_file_version_generation_and_disposition() {
        let params =
            PermalinkParams { version: Some("0123456789abcdef".into()), generation: 3, attachment: false };
        let query = signer().sign_permalink("ws_a", "file_b", &params);
        assert!(is_permalink_query(Some(&query)));
        assert_eq!(signer().verify_permalink("ws_a", "file_b", Some(&query)).unwrap(), params);
        for bad in [
            query.replace("gen=3", "gen=4"),
            query.replace("v=0123456789abcdef", "v=0123456789abcdee"),
            query.replace("&sig=", "&dl=1&sig="),
            format!("{query}&expires=1"),
            query.replace("gen=3", "gen=03"),
        ] {
            assert!(signer().verify_permalink("ws_a", "file_b", Some(&bad)).is_err(), "{bad}");
        }
        assert!(signer().verify_permalink("ws_a", "file_c", Some(&query)).is_err());
        assert!(signer().verify_permalink("ws_x", "file_b", Some(&query)).is_err());
        // A permalink is not an expiring download URL, nor the other way round.
        assert!(signer()
            .verify(SignedOperation::Download, "ws_a", "file_b", Some(&query), Utc::now())
            .is_err());
        let expiring = signer().sign(
            SignedOperation::Download,
            "ws_a",
            "file_b",
            &SignedParams { expires: 2_000_000_000, max_bytes: 0, attachment: false },
        );
        assert!(!is_permalink_query(Some(&expiring)));
        assert!(signer().verify_permalink("ws_a", "file_b", Some(&expiring)).is_err());
    }

    #[test]
    fn a_permalink_without_a_version_is_another_url_than_one_with() {
        let versioned =
            PermalinkParams { version: Some("0123456789abcdef".into()), generation: 0, attachment: false };
        let bare = PermalinkParams { version: None, ..versioned.clone() };
        let query = signer().sign_permalink("ws_a", "upl_b", &bare);
        assert!(query.starts_with("gen=0&sig="), "{query}");
        assert!(is_permalink_query(Some(&query)));
        assert_eq!(signer().verify_permalink("ws_a", "upl_b", Some(&query)).unwrap(), bare);
        // A version cannot be added to it, nor taken from a versioned one.
        let added = format!("v=0123456789abcdef&{query}");
        assert!(signer().verify_permalink("ws_a", "upl_b", Some(&added)).is_err());
        let versioned_query = signer().sign_permalink("ws_a", "upl_b", &versioned);
        let stripped = versioned_query.replace("v=0123456789abcdef&", "");
        assert!(signer().verify_permalink("ws_a", "upl_b", Some(&stripped)).is_err());
        assert!(signer().verify_permalink("ws_a", "upl_b", Some("v=&gen=0&sig=AAAA")).is_err());
    }

    #[test]
    fn a_window_starts_where_its_url_repeats_and_never_spans_more_than_the_longest_lifetime() {
        let at = |secs| Utc.timestamp_opt(secs, 0).unwrap();
        // Within one window: the same start and expiry, so the same URL.
        assert_eq!(url_window(at(1_001), 3600, 600, 604_800), url_window(at(1_199), 3600, 600, 604_800));
        assert_eq!(url_window(at(1_001), 3600, 600, 604_800), (at(600), 4_800));
        // Asked for the longest lifetime: clamped to it, and signed no earlier than it allows.
        let (start, expires) = url_window(at(1_001), 604_800, 600, 604_800);
        assert_eq!(expires, 1_001 + 604_800);
        assert!(expires - start.timestamp() <= 604_800 && start <= at(1_001));
    }

    #[test]
    fn expiries_round_up_to_their_window_and_never_fall_short() {
        let at = |secs| Utc.timestamp_opt(secs, 0).unwrap();
        assert_eq!(windowed_expiry(at(1_000), 3600, 600), 4_800);
        assert_eq!(windowed_expiry(at(1_001), 3600, 600), 4_800);
        assert_eq!(windowed_expiry(at(1_201), 3600, 600), 5_400);
        assert_eq!(windowed_expiry(at(1_200), 3600, 600), 4_800);
        // A lifetime shorter than the window is its own window: at most twice as long.
        assert_eq!(windowed_expiry(at(1_001), 1, 600), 1_002);
        assert_eq!(windowed_expiry(at(1_001), 100, 600), 1_200);
        for now in 1_000..1_700 {
            let expires = windowed_expiry(at(now), 3600, 600);
            assert!(expires >= now + 3600 && expires < now + 3600 + 600, "{now}: {expires}");
        }
    }
}
