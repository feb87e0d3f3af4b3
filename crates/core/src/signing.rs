//! Signed URLs for Cabinet's own storage endpoint.
//!
//! A signed URL works only for its operation (upload: PUT or multipart POST; download: GET or
//! HEAD; thumbnail: GET or HEAD of one size of one file's thumbnail), its workspace and object,
//! its size limit and its time window. The signature is an
//! HMAC-SHA256 over all of those; the query must carry exactly the signed parameters in their
//! canonical order, and the signature is compared in constant time.

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

/// Signs and verifies storage URLs with one secret, shared by every node.
#[derive(Clone)]
pub struct UrlSigner {
    secret: Vec<u8>,
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UrlSigner(..)")
    }
}

const SIGNATURE_BYTES: usize = 32;

impl UrlSigner {
    /// A signer; the secret must be at least 32 bytes.
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self> {
        let secret = secret.into();
        if secret.len() < 32 {
            return Err(Error::bad_request(
                Code::WeakSigningSecret,
                "the signing secret must be at least 32 bytes",
            ));
        }
        Ok(Self { secret })
    }

    /// The secret, for other signatures that share it (with their own domain prefix).
    pub(crate) fn secret(&self) -> &[u8] {
        &self.secret
    }

    fn mac(&self, op: SignedOperation, workspace: &str, object: &str, params: &SignedParams) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("HMAC takes any key length");
        // Length-prefixed fields, so no two different inputs produce the same signed message.
        for field in [
            "cabinet-storage-v1",
            op.as_str(),
            workspace,
            object,
            &params.expires.to_string(),
            &params.max_bytes.to_string(),
            if params.attachment { "attachment" } else { "inline" },
        ] {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field.as_bytes());
        }
        mac
    }

    /// The query string (without `?`) that authorises `op` on `workspace/object`.
    pub fn sign(&self, op: SignedOperation, workspace: &str, object: &str, params: &SignedParams) -> String {
        let signature =
            URL_SAFE_NO_PAD.encode(self.mac(op, workspace, object, params).finalize().into_bytes());
        let mut query = format!("expires={}", params.expires);
        if matches!(op, SignedOperation::Upload | SignedOperation::UploadPart) {
            query.push_str(&format!("&max={}", params.max_bytes));
        }
        if params.attachment {
            query.push_str("&dl=1");
        }
        query.push_str("&sig=");
        query.push_str(&signature);
        query
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
        let (params, signature) = parse_query(op, raw_query.unwrap_or(""))?;
        self.mac(op, workspace, object, &params)
            .verify_slice(&signature)
            .map_err(|_| invalid("the URL's signature does not match"))?;
        if now.timestamp() >= params.expires {
            return Err(Error::BadSignature { code: Code::UrlExpired, message: "this URL has expired" });
        }
        Ok(params)
    }
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

/// The instant a signed URL's `expires` names.
pub fn expiry_instant(expires: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(expires, 0).single().unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn invalid(message: &'static str) -> Error {
    Error::BadSignature { code: Code::InvalidSignature, message }
}

/// Parses exactly `expires=N[&max=N][&dl=1]&sig=S`, in that order, each once: `max` only (and
/// always) for uploads, `dl` only for downloads, neither for thumbnails.
fn parse_query(op: SignedOperation, raw: &str) -> Result<(SignedParams, Vec<u8>)> {
    let incomplete = || invalid("the URL is not a complete signed URL");
    let pairs: Vec<(&str, &str)> =
        raw.split('&').map(|pair| pair.split_once('=').unwrap_or((pair, ""))).collect();
    let mut pairs = pairs.into_iter().peekable();
    let mut take = |name: &str| match pairs.next() {
        Some((key, value)) if key == name => Ok(value),
        _ => Err(incomplete()),
    };
    let expires = parse_decimal(take("expires")?)?;
    let max_bytes = match op {
        SignedOperation::Upload | SignedOperation::UploadPart => parse_decimal(take("max")?)?,
        SignedOperation::Download | SignedOperation::Thumbnail => 0,
    };
    let attachment = match pairs.peek() {
        Some(("dl", "1")) if op == SignedOperation::Download => {
            pairs.next();
            true
        }
        _ => false,
    };
    let signature = match (pairs.next(), pairs.next()) {
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
    let expires = i64::try_from(expires).map_err(|_| incomplete())?;
    Ok((SignedParams { expires, max_bytes, attachment }, signature))
}

/// A canonical decimal: digits only, no leading zero, so each value has exactly one spelling and
/// a signed URL cannot be rewritten into another that still verifies.
fn parse_decimal(raw: &str) -> Result<u64> {
    let canonical = raw == "0" || !raw.starts_with('0');
    if raw.is_empty() || raw.len() > 19 || !canonical || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("the URL is not a complete signed URL"));
    }
    raw.parse().map_err(|_| invalid("the URL is not a complete signed URL"))
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
}
