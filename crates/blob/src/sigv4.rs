//! AWS Signature Version 4, for what `object_store` does not sign: presigned URLs that bind
//! headers and response overrides, and browser POST policies. The rules are AWS's; this module
//! only follows them: canonical request → string to sign → HMAC chain.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The longest a presigned URL may live.
pub(crate) const MAX_EXPIRES_SECS: i64 = 7 * 24 * 3600;

/// Credentials and the region they sign for.
#[derive(Clone)]
pub(crate) struct SigV4 {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub region: String,
}

impl std::fmt::Debug for SigV4 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigV4")
            .field("access_key_id", &self.access_key_id)
            .field("region", &self.region)
            .finish()
    }
}

/// A request to presign.
pub(crate) struct Presign<'a> {
    pub method: &'a str,
    /// `host[:port]` exactly as the URL has it.
    pub host: &'a str,
    /// The URI-encoded absolute path.
    pub path: &'a str,
    /// Headers the request must carry (lowercase names; `host` is added).
    pub headers: &'a [(&'a str, String)],
    /// Extra query parameters, not yet encoded.
    pub query: &'a [(&'a str, String)],
    pub signed_at: DateTime<Utc>,
    pub expires_in: i64,
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// RFC 3986 percent-encoding as SigV4 wants it: only `A-Za-z0-9-_.~` (and `/` in paths) stay.
pub(crate) fn uri_encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(byte as char),
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

impl SigV4 {
    fn date(at: DateTime<Utc>) -> String {
        at.format("%Y%m%d").to_string()
    }

    fn timestamp(at: DateTime<Utc>) -> String {
        at.format("%Y%m%dT%H%M%SZ").to_string()
    }

    fn credential(&self, at: DateTime<Utc>) -> String {
        format!("{}/{}/{}/s3/aws4_request", self.access_key_id, Self::date(at), self.region)
    }

    fn signature(&self, at: DateTime<Utc>, string_to_sign: &str) -> String {
        let secret = format!("AWS4{}", self.secret_access_key);
        let key = hmac(secret.as_bytes(), Self::date(at).as_bytes());
        let key = hmac(&key, self.region.as_bytes());
        let key = hmac(&key, b"s3");
        let key = hmac(&key, b"aws4_request");
        hex::encode(hmac(&key, string_to_sign.as_bytes()))
    }

    /// The query string of a presigned URL, signature included.
    pub(crate) fn presign(&self, request: &Presign<'_>) -> String {
        let mut headers: Vec<(String, String)> = request
            .headers
            .iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        headers.push(("host".to_owned(), request.host.to_owned()));
        headers.sort();
        let signed_headers = headers.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>().join(";");
        let mut query: Vec<(String, String)> = vec![
            ("X-Amz-Algorithm".to_owned(), ALGORITHM.to_owned()),
            ("X-Amz-Credential".to_owned(), self.credential(request.signed_at)),
            ("X-Amz-Date".to_owned(), Self::timestamp(request.signed_at)),
            ("X-Amz-Expires".to_owned(), request.expires_in.clamp(1, MAX_EXPIRES_SECS).to_string()),
            ("X-Amz-SignedHeaders".to_owned(), signed_headers.clone()),
        ];
        if let Some(token) = &self.session_token {
            query.push(("X-Amz-Security-Token".to_owned(), token.clone()));
        }
        query.extend(request.query.iter().map(|(name, value)| ((*name).to_owned(), value.clone())));
        let mut encoded: Vec<(String, String)> =
            query.iter().map(|(name, value)| (uri_encode(name, false), uri_encode(value, false))).collect();
        encoded.sort();
        let canonical_query =
            encoded.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("&");
        let canonical_headers: String =
            headers.iter().map(|(name, value)| format!("{name}:{value}\n")).collect();
        let canonical_request = format!(
            "{}\n{}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\nUNSIGNED-PAYLOAD",
            request.method, request.path
        );
        let string_to_sign = format!(
            "{ALGORITHM}\n{}\n{}/{}/s3/aws4_request\n{}",
            Self::timestamp(request.signed_at),
            Self::date(request.signed_at),
            self.region,
            hex::encode(Sha256::digest(canonical_request.as_bytes()))
        );
        let signature = self.signature(request.signed_at, &string_to_sign);
        format!("{canonical_query}&X-Amz-Signature={signature}")
    }

    /// The form fields of a browser POST upload of `key` into `bucket`: every field in `fields`
    /// must be sent as given, and the file must be exactly `size` bytes.
    pub(crate) fn post_policy(
        &self,
        bucket: &str,
        key: &str,
        fields: &[(&str, String)],
        size: u64,
        signed_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Vec<(String, String)> {
        let mut form: Vec<(String, String)> = vec![("key".to_owned(), key.to_owned())];
        form.extend(fields.iter().map(|(name, value)| ((*name).to_owned(), value.clone())));
        form.push(("x-amz-algorithm".to_owned(), ALGORITHM.to_owned()));
        form.push(("x-amz-credential".to_owned(), self.credential(signed_at)));
        form.push(("x-amz-date".to_owned(), Self::timestamp(signed_at)));
        if let Some(token) = &self.session_token {
            form.push(("x-amz-security-token".to_owned(), token.clone()));
        }
        let mut conditions = vec![serde_json::json!({ "bucket": bucket })];
        conditions.extend(form.iter().map(|(name, value)| serde_json::json!({ name.as_str(): value })));
        conditions.push(serde_json::json!(["content-length-range", size, size]));
        let policy = serde_json::json!({
            "expiration": expires_at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            "conditions": conditions,
        });
        let policy = BASE64.encode(policy.to_string());
        let signature = self.signature(signed_at, &policy);
        form.push(("policy".to_owned(), policy));
        form.push(("x-amz-signature".to_owned(), signature));
        form
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// AWS's published example: "Example: A presigned URL" in "Authenticating Requests: Using
    /// Query Parameters (AWS Signature Version 4)".
    #[test]
    fn presigning_matches_the_aws_documentation_example() {
        let signer = SigV4 {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".to_owned(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".to_owned(),
            session_token: None,
            region: "us-east-1".to_owned(),
        };
        let query = signer.presign(&Presign {
            method: "GET",
            host: "examplebucket.s3.amazonaws.com",
            path: "/test.txt",
            headers: &[],
            query: &[],
            signed_at: Utc.with_ymd_and_hms(2013, 5, 24, 0, 0, 0).unwrap(),
            expires_in: 86400,
        });
        assert!(
            query.ends_with(
                "X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
            ),
            "{query}"
        );
    }

    #[test]
    fn uri_encoding_keeps_only_unreserved_characters() {
        assert_eq!(uri_encode("a b/c~d*é", false), "a%20b%2Fc~d%2A%C3%A9");
        assert_eq!(uri_encode("ws_1/file_2", true), "ws_1/file_2");
    }
}
