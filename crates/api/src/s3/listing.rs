//! Listing a bucket as S3 does: keys in byte order from a start point, filtered by prefix,
//! rolled up at a delimiter. The folder tree is walked depth first with each folder's entries in
//! key order (a folder sorts as its name and `/`), so a page reads only the folders it passes
//! through; subtrees wholly before the start point or outside the prefix are not read. An empty
//! folder lists as its marker key (`a/b/`), as S3 tools show a "directory" they made.

use base64::Engine;
use cabinet_core::paths::Place;
use cabinet_core::{Cabinet, Caller, FileId, FileRecord};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use s3s::dto::*;
use s3s::{s3_error, S3Result};

use super::objects::etag_of;
use super::{s3_error_of, timestamp};

/// The most keys one page holds (S3's own cap).
const MAX_KEYS: usize = 1000;

/// What `encoding-type=url` leaves as it is (S3 encodes as a URL path component would, `/` kept).
const URL_ENCODE: &AsciiSet =
    &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b'/');

enum Entry {
    File { key: String, file: Box<FileRecord> },
    Marker { key: String, at: chrono::DateTime<chrono::Utc> },
    Prefix(String),
}

impl Entry {
    fn key(&self) -> &str {
        match self {
            Entry::File { key, .. } | Entry::Marker { key, .. } | Entry::Prefix(key) => key,
        }
    }
}

struct Walk<'a> {
    cabinet: &'a Cabinet,
    caller: &'a Caller,
    prefix: &'a str,
    delimiter: Option<&'a str>,
    after: Option<String>,
    /// Entries wanted: a page and one more, to know whether another page follows.
    wanted: usize,
    found: Vec<Entry>,
}

impl Walk<'_> {
    fn full(&self) -> bool {
        self.found.len() >= self.wanted
    }

    fn is_after_start(&self, key: &str) -> bool {
        self.after.as_deref().is_none_or(|after| key > after)
    }

    /// Adds an entry, rolled up at the delimiter when it has one beyond the prefix.
    fn push(&mut self, entry: Entry) {
        let key = entry.key().to_owned();
        if !key.starts_with(self.prefix) {
            return;
        }
        if let Some(delimiter) = self.delimiter.filter(|delimiter| !delimiter.is_empty()) {
            if let Some(at) = key[self.prefix.len()..].find(delimiter) {
                let common = key[..self.prefix.len() + at + delimiter.len()].to_owned();
                let seen = matches!(self.found.last(), Some(Entry::Prefix(last)) if *last == common);
                if !seen && self.is_after_start(&common) {
                    self.found.push(Entry::Prefix(common));
                }
                return;
            }
        }
        if self.is_after_start(&key) {
            self.found.push(entry);
        }
    }

    fn walk<'s>(
        &'s mut self,
        place: Place,
        path: String,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = S3Result<bool>> + Send + 's>> {
        Box::pin(async move {
            let (folders, files) =
                self.cabinet.folder_entries(self.caller, &place).await.map_err(s3_error_of)?;
            let empty = folders.is_empty() && files.is_empty();
            let mut children: Vec<(String, Option<cabinet_core::FolderId>, Option<FileRecord>)> = folders
                .into_iter()
                .map(|folder| (format!("{path}{}/", folder.name), Some(folder.id), None))
                .chain(files.into_iter().map(|file| (format!("{path}{}", file.name), None, Some(file))))
                .collect();
            children.sort_by(|a, b| a.0.cmp(&b.0));
            for (key, folder, file) in children {
                if self.full() {
                    break;
                }
                if let Some(file) = file {
                    self.push(Entry::File { key, file: Box::new(file) });
                    continue;
                }
                let Some(folder) = folder else { continue };
                // Outside the prefix, or wholly before the start point: nothing below is listed.
                if !(key.starts_with(self.prefix) || self.prefix.starts_with(&key)) {
                    continue;
                }
                if let Some(after) = &self.after {
                    if key.as_str() < after.as_str() && !after.starts_with(&key) {
                        continue;
                    }
                }
                let rolled_up = key.len() > self.prefix.len()
                    && key.starts_with(self.prefix)
                    && self.delimiter == Some("/");
                if rolled_up {
                    // Everything below rolls up into this folder's prefix: no need to read it.
                    self.push(Entry::Prefix(key));
                    continue;
                }
                let at = chrono::Utc::now();
                let folder_empty = self.walk(Some(folder), key.clone()).await?;
                if folder_empty {
                    let marker = Entry::Marker { key, at };
                    // The marker sorts before what is below it, which is nothing here.
                    self.push(marker);
                }
            }
            Ok(empty)
        })
    }
}

/// One page of a listing: its entries and whether more follow.
struct Page {
    objects: Vec<Object>,
    prefixes: Vec<CommonPrefix>,
    last_key: Option<String>,
    truncated: bool,
}

async fn page(
    cabinet: &Cabinet,
    caller: &Caller,
    prefix: &str,
    delimiter: Option<&str>,
    after: Option<String>,
    max_keys: Option<i32>,
    url_encoded: bool,
) -> S3Result<Page> {
    let max_keys = match max_keys {
        None => MAX_KEYS,
        Some(n) if n < 0 => return Err(s3_error!(InvalidArgument, "max-keys must not be negative")),
        Some(n) => (n as usize).min(MAX_KEYS),
    };
    let mut walk =
        Walk { cabinet, caller, prefix, delimiter, after, wanted: max_keys + 1, found: Vec::new() };
    if max_keys > 0 {
        walk.walk(None, String::new()).await?;
    }
    let mut found = walk.found;
    let truncated = found.len() > max_keys;
    found.truncate(max_keys);
    let ids: Vec<FileId> = found
        .iter()
        .filter_map(|entry| match entry {
            Entry::File { file, .. } => Some(file.id.clone()),
            _ => None,
        })
        .collect();
    let mut listed = cabinet.s3_listed(caller, &ids).await.map_err(s3_error_of)?;
    let encode = |key: &str| {
        if url_encoded {
            utf8_percent_encode(key, URL_ENCODE).to_string()
        } else {
            key.to_owned()
        }
    };
    let last_key = found.last().map(|entry| entry.key().to_owned());
    let mut objects = Vec::new();
    let mut prefixes = Vec::new();
    for entry in found {
        match entry {
            Entry::File { key, file } => {
                let kept = listed.remove(&file.id);
                // With no checksum of its own an object answers its file's sha256 (as a HEAD does).
                let (algorithm, kind) =
                    kept.as_ref().and_then(|kept| kept.checksum.clone()).unwrap_or_else(|| {
                        (ChecksumAlgorithm::SHA256.to_owned(), ChecksumType::FULL_OBJECT.to_owned())
                    });
                objects.push(Object {
                    key: Some(encode(&key)),
                    size: Some(file.size as i64),
                    e_tag: Some(ETag::Strong(etag_of(&file, kept.as_ref().map(|kept| &kept.etag)))),
                    last_modified: Some(timestamp(file.created_at)),
                    storage_class: Some(ObjectStorageClass::from_static(ObjectStorageClass::STANDARD)),
                    checksum_algorithm: Some(vec![ChecksumAlgorithm::from(algorithm)]),
                    checksum_type: Some(ChecksumType::from(kind)),
                    ..Default::default()
                })
            }
            Entry::Marker { key, at } => objects.push(Object {
                key: Some(encode(&key)),
                size: Some(0),
                e_tag: Some(ETag::Strong("d41d8cd98f00b204e9800998ecf8427e".to_owned())),
                last_modified: Some(timestamp(at)),
                storage_class: Some(ObjectStorageClass::from_static(ObjectStorageClass::STANDARD)),
                ..Default::default()
            }),
            Entry::Prefix(key) => prefixes.push(CommonPrefix { prefix: Some(encode(&key)) }),
        }
    }
    Ok(Page { objects, prefixes, last_key, truncated })
}

/// The owner a listing names: every object of a bucket is its workspace's.
fn with_owner(mut objects: Vec<Object>, caller: &Caller) -> Vec<Object> {
    let owner = Owner { id: Some(caller.workspace_id.to_string()), display_name: None };
    for object in &mut objects {
        object.owner = Some(owner.clone());
    }
    objects
}

pub(super) fn is_url(encoding: Option<&EncodingType>) -> bool {
    encoding.is_some_and(|encoding| encoding.as_str() == EncodingType::URL)
}

/// A key (or prefix, delimiter, marker) as a listing answers it: with `encoding-type=url`, the
/// key-like fields of the answer are URL-encoded, not only the keys, and clients decode them.
pub(super) fn encoded(url: bool, text: Option<String>) -> Option<String> {
    match text {
        Some(text) if url => Some(utf8_percent_encode(&text, URL_ENCODE).to_string()),
        other => other,
    }
}

fn encode_token(key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

fn decode_token(token: &str) -> S3Result<String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|raw| String::from_utf8(raw).ok())
        .ok_or_else(|| s3_error!(InvalidArgument, "the continuation token is not valid"))
}

pub(super) async fn list_v2(
    cabinet: &Cabinet,
    caller: &Caller,
    input: ListObjectsV2Input,
) -> S3Result<ListObjectsV2Output> {
    let token = input.continuation_token.as_deref().map(decode_token).transpose()?;
    let after = match (token, input.start_after.clone()) {
        (Some(token), Some(start)) => Some(token.max(start)),
        (token, start) => token.or(start),
    };
    let prefix = input.prefix.clone().unwrap_or_default();
    let url = is_url(input.encoding_type.as_ref());
    let page = page(cabinet, caller, &prefix, input.delimiter.as_deref(), after, input.max_keys, url).await?;
    let key_count = (page.objects.len() + page.prefixes.len()) as i32;
    let objects =
        if input.fetch_owner == Some(true) { with_owner(page.objects, caller) } else { page.objects };
    Ok(ListObjectsV2Output {
        name: Some(input.bucket),
        prefix: encoded(url, input.prefix),
        delimiter: encoded(url, input.delimiter.filter(|delimiter| !delimiter.is_empty())),
        max_keys: Some(input.max_keys.unwrap_or(MAX_KEYS as i32)),
        key_count: Some(key_count),
        is_truncated: Some(page.truncated),
        continuation_token: input.continuation_token,
        next_continuation_token: page.truncated.then(|| page.last_key.as_deref().map(encode_token)).flatten(),
        start_after: encoded(url, input.start_after),
        encoding_type: input.encoding_type,
        contents: (!objects.is_empty()).then_some(objects),
        common_prefixes: (!page.prefixes.is_empty()).then_some(page.prefixes),
        ..Default::default()
    })
}

pub(super) async fn list_v1(
    cabinet: &Cabinet,
    caller: &Caller,
    input: ListObjectsInput,
) -> S3Result<ListObjectsOutput> {
    let prefix = input.prefix.clone().unwrap_or_default();
    let url = is_url(input.encoding_type.as_ref());
    let page =
        page(cabinet, caller, &prefix, input.delimiter.as_deref(), input.marker.clone(), input.max_keys, url)
            .await?;
    // ListObjects (v1) names each object's owner unasked.
    let objects = with_owner(page.objects, caller);
    Ok(ListObjectsOutput {
        name: Some(input.bucket),
        // S3 gives ListObjects' (v1) prefix back as sent, encoded or not (and the SDKs decode
        // it only in the other listings).
        prefix: input.prefix,
        delimiter: encoded(url, input.delimiter.clone().filter(|delimiter| !delimiter.is_empty())),
        // S3 names the marker even when none was given (empty).
        marker: encoded(url, Some(input.marker.unwrap_or_default())),
        max_keys: Some(input.max_keys.unwrap_or(MAX_KEYS as i32)),
        is_truncated: Some(page.truncated),
        // S3 gives NextMarker only with a delimiter; clients use the last key otherwise.
        next_marker: encoded(
            url,
            (page.truncated && input.delimiter.is_some_and(|delimiter| !delimiter.is_empty()))
                .then_some(page.last_key)
                .flatten(),
        ),
        encoding_type: input.encoding_type,
        contents: (!objects.is_empty()).then_some(objects),
        common_prefixes: (!page.prefixes.is_empty()).then_some(page.prefixes),
        ..Default::default()
    })
}

/// The version id of every object: buckets here are never versioned, and S3 names the one
/// version of an object in such a bucket `null`.
pub(super) const NULL_VERSION: &str = "null";

/// ListObjectVersions of a bucket that was never versioned: each object once, as its latest
/// version `null` (what tools that empty a bucket through this call expect).
pub(super) async fn list_versions(
    cabinet: &Cabinet,
    caller: &Caller,
    input: ListObjectVersionsInput,
) -> S3Result<ListObjectVersionsOutput> {
    if input.key_marker.is_none() && input.version_id_marker.is_some() {
        return Err(s3_error!(InvalidArgument, "a version-id-marker needs a key-marker"));
    }
    if let Some(marker) = input.version_id_marker.as_deref().filter(|marker| *marker != NULL_VERSION) {
        return Err(s3_error!(InvalidArgument, "no version {marker:?}: this bucket is not versioned"));
    }
    let prefix = input.prefix.clone().unwrap_or_default();
    let url = is_url(input.encoding_type.as_ref());
    let page = page(
        cabinet,
        caller,
        &prefix,
        input.delimiter.as_deref(),
        input.key_marker.clone(),
        input.max_keys,
        url,
    )
    .await?;
    let versions: Vec<ObjectVersion> = page
        .objects
        .into_iter()
        .map(|object| ObjectVersion {
            key: object.key,
            size: object.size,
            e_tag: object.e_tag,
            last_modified: object.last_modified,
            storage_class: Some(ObjectVersionStorageClass::from_static(ObjectVersionStorageClass::STANDARD)),
            is_latest: Some(true),
            version_id: Some(NULL_VERSION.to_owned()),
            ..Default::default()
        })
        .collect();
    let next_key = page.truncated.then_some(page.last_key).flatten();
    Ok(ListObjectVersionsOutput {
        name: Some(input.bucket),
        prefix: encoded(url, input.prefix),
        delimiter: encoded(url, input.delimiter.filter(|delimiter| !delimiter.is_empty())),
        key_marker: encoded(url, input.key_marker),
        version_id_marker: input.version_id_marker,
        max_keys: Some(input.max_keys.unwrap_or(MAX_KEYS as i32)),
        is_truncated: Some(page.truncated),
        next_version_id_marker: next_key.as_ref().map(|_| NULL_VERSION.to_owned()),
        next_key_marker: encoded(url, next_key),
        encoding_type: input.encoding_type,
        versions: (!versions.is_empty()).then_some(versions),
        common_prefixes: (!page.prefixes.is_empty()).then_some(page.prefixes),
        ..Default::default()
    })
}
