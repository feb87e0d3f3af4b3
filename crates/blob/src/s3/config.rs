//! Where the bucket is: the storage URL, the credentials from the environment, and the
//! object_store client built from them.

/// Where the bucket is and how to reach it: `s3://bucket[/prefix]?endpoint=…&region=…`, credentials
/// from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`.
#[derive(Clone)]
pub struct S3Config {
    pub bucket: String,
    /// Keys live under `prefix/` when not empty, so deployments (or test runs) can share a bucket.
    pub prefix: String,
    pub region: String,
    /// `http(s)://host[:port]`; path-style addressing when given, AWS's virtual hosts otherwise.
    pub endpoint: Option<String>,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl S3Config {
    /// Parses an `s3://` storage URL, taking credentials from the usual AWS variables.
    pub fn from_url(url: &str) -> std::result::Result<Self, String> {
        Self::from_url_with(url, |name| std::env::var(name).ok().filter(|value| !value.is_empty()))
    }

    /// Parses an `s3://` storage URL with credentials from `env`.
    pub fn from_url_with(
        url: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> std::result::Result<Self, String> {
        let rest = url.strip_prefix("s3://").ok_or("an S3 storage URL starts with s3://")?;
        let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
        let location = location.trim_end_matches('/');
        let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
        let valid_prefix = prefix.split('/').all(|part| {
            !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
        if !prefix.is_empty() && !valid_prefix {
            return Err(format!(
                "{prefix:?} is not a valid key prefix (letters, digits, - and _ between slashes)"
            ));
        }
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid_bucket {
            return Err(format!("{bucket:?} is not a valid bucket name"));
        }
        let mut region = None;
        let mut endpoint = None;
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value)?;
            match name {
                "region" => region = Some(value),
                "endpoint" => endpoint = Some(value.trim_end_matches('/').to_owned()),
                other => return Err(format!("unknown S3 storage option {other:?} (use endpoint, region)")),
            }
        }
        if let Some(endpoint) = &endpoint {
            let host = endpoint.strip_prefix("http://").or_else(|| endpoint.strip_prefix("https://"));
            if host.is_none_or(|host| host.is_empty() || host.contains('/')) {
                return Err(format!("endpoint must be http(s)://host[:port], not {endpoint:?}"));
            }
        }
        let access_key_id = env("AWS_ACCESS_KEY_ID").ok_or("AWS_ACCESS_KEY_ID is not set")?;
        let secret_access_key = env("AWS_SECRET_ACCESS_KEY").ok_or("AWS_SECRET_ACCESS_KEY is not set")?;
        Ok(Self {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            region: region.or_else(|| env("AWS_REGION")).unwrap_or_else(|| "us-east-1".to_owned()),
            endpoint,
            access_key_id,
            secret_access_key,
            session_token: env("AWS_SESSION_TOKEN"),
        })
    }
}

fn percent_decode(text: &str) -> std::result::Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).ok_or("bad percent-encoding in the storage URL")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| "bad percent-encoding in the storage URL")?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the storage URL is not UTF-8".to_owned())
}

/// An environment with credentials and nothing else, for the tests of this store.
#[cfg(test)]
pub(super) fn test_env(name: &str) -> Option<String> {
    match name {
        "AWS_ACCESS_KEY_ID" => Some("id".to_owned()),
        "AWS_SECRET_ACCESS_KEY" => Some("secret".to_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_urls_parse_with_endpoint_and_region() {
        let config = S3Config::from_url_with(
            "s3://cabinet-test?endpoint=http%3A%2F%2F127.0.0.1%3A9000&region=eu-west-1",
            test_env,
        )
        .unwrap();
        assert_eq!(config.bucket, "cabinet-test");
        assert_eq!(config.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(config.region, "eu-west-1");
        let plain = S3Config::from_url_with("s3://bucket", test_env).unwrap();
        assert_eq!((plain.endpoint, plain.region.as_str(), plain.prefix.as_str()), (None, "us-east-1", ""));
        let prefixed = S3Config::from_url_with("s3://bucket/team-a/cabinet/", test_env).unwrap();
        assert_eq!((prefixed.bucket.as_str(), prefixed.prefix.as_str()), ("bucket", "team-a/cabinet"));
    }

    #[test]
    fn bad_storage_urls_are_refused() {
        for url in [
            "s3://",
            "s3://Bad_Bucket",
            "s3://b?nope=1",
            "s3://bucket?endpoint=ftp://x",
            "http://b",
            "s3://b/../x",
        ] {
            assert!(S3Config::from_url_with(url, test_env).is_err(), "{url}");
        }
        assert!(S3Config::from_url_with("s3://bucket", |_| None).is_err());
    }
}
