//! What the S3 surface keeps of an object beside its file: the ETag S3 tools know it by, the
//! representation headers it was written with, and the sizes of the parts it was completed from.
//! They are the S3 surface's own (another surface serves its own headers for the same file), so
//! they are kept beside the file rather than in it, and a file stored elsewhere has none.

/// The headers S3 keeps with an object and answers on GET and HEAD, as they were given.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct S3Headers {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    /// An HTTP date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

/// An object as the S3 surface stored it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Object {
    /// The MD5 of its bytes in hex (one PUT), or S3's multipart form (`md5-of-md5s-N`).
    pub etag: String,
    pub headers: S3Headers,
    /// The sizes of the parts it was completed from, in order; empty for an object of one PUT.
    pub part_sizes: Vec<u64>,
    /// Its own checksum, when the client asked for one.
    pub checksum: Option<S3Checksum>,
    /// Its parts' checksums (base64, of its checksum's algorithm), in order, when it has one and
    /// was completed from parts.
    pub part_checksums: Vec<String>,
}

/// What a listing names of an object the S3 surface stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Listed {
    pub etag: String,
    /// Its own checksum's algorithm and type (`FULL_OBJECT` or `COMPOSITE`), when it has one.
    pub checksum: Option<(String, String)>,
}

/// An object's own checksum, as S3 answers it with `x-amz-checksum-mode: ENABLED`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Checksum {
    /// `CRC32`, `CRC32C`, `CRC64NVME`, `SHA1` or `SHA256`.
    pub algorithm: String,
    /// `FULL_OBJECT` (of all the bytes) or `COMPOSITE` (of the parts' checksums).
    pub kind: String,
    /// Base64, followed by `-` and the parts count for a composite.
    pub value: String,
}
