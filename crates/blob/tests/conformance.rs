//! The blob port's conformance suite: written once against `Arc<dyn BlobStore>` and run against
//! every implementation (the local folder; S3 when `dev/s3-server` is running). A backend is done
//! when it passes.

use std::sync::Arc;

use bytes::Bytes;
use cabinet_blob::{LocalBlobStore, S3BlobStore, S3Config};
use cabinet_core::ports::{Assembled, ByteRange, ByteStream, PartInfo, StageError};
use cabinet_core::{BlobStore, FileId, Upload, UploadId, UploadStatus, WorkspaceId};
use futures::StreamExt;
use sha2::{Digest, Sha256};

/// A store under test and what keeps it alive.
struct Subject {
    blobs: Arc<dyn BlobStore>,
    _dir: Option<tempfile::TempDir>,
}

fn local() -> Option<Subject> {
    let dir = tempfile::tempdir().unwrap();
    let blobs = LocalBlobStore::open(dir.path()).unwrap();
    Some(Subject { blobs: Arc::new(blobs), _dir: Some(dir) })
}

/// S3 under a fresh key prefix, or `None` (with a notice) when no S3 server is configured,
/// unless `CABINET_REQUIRE_S3=1`.
fn s3() -> Option<Subject> {
    let Some(url) = std::env::var("CABINET_TEST_S3_URL").ok().filter(|url| !url.is_empty()) else {
        if std::env::var("CABINET_REQUIRE_S3").as_deref() == Ok("1") {
            panic!("CABINET_REQUIRE_S3=1 but CABINET_TEST_S3_URL is not set (run dev/test)");
        }
        eprintln!("skipping an S3 conformance check: CABINET_TEST_S3_URL is not set (dev/test starts one)");
        return None;
    };
    let mut config = S3Config::from_url(&url).expect("CABINET_TEST_S3_URL");
    config.prefix = format!("conformance-{}", ulid::Ulid::new().to_string().to_ascii_lowercase());
    Some(Subject { blobs: Arc::new(S3BlobStore::new(&config).unwrap()), _dir: None })
}

/// Bytes that arrive in several uneven chunks.
fn body(bytes: &[u8]) -> ByteStream<'static> {
    let chunks: Vec<std::io::Result<Bytes>> =
        bytes.chunks(7_001).map(|chunk| Ok(Bytes::copy_from_slice(chunk))).collect();
    futures::stream::iter(chunks).boxed()
}

fn sample(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

async fn read(blobs: &Arc<dyn BlobStore>, key: &str, range: Option<ByteRange>) -> Vec<u8> {
    let mut stream = blobs.open(key, range).await.expect("open");
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.expect("chunk"));
    }
    out
}

async fn staged_then_committed_bytes_read_back_whole_and_in_ranges(blobs: Arc<dyn BlobStore>) {
    let bytes = sample(100_000);
    let staged = blobs.stage(body(&bytes), 1 << 20).await.expect("stage");
    assert_eq!(staged.size, bytes.len() as u64);
    assert_eq!(staged.sha256, hex::encode(Sha256::digest(&bytes)));
    assert_eq!(&staged.head[..], &bytes[..8 * 1024]);
    blobs.commit(&staged, "ws_a/file_1").await.expect("commit");
    assert_eq!(read(&blobs, "ws_a/file_1", None).await, bytes);
    let range = ByteRange { first: 10, last: 70_009 };
    assert_eq!(read(&blobs, "ws_a/file_1", Some(range)).await, &bytes[10..70_010]);
    // A small range is read whole in one go on some stores; it must still start where asked.
    let small = ByteRange { first: 98_000, last: 98_999 };
    assert_eq!(read(&blobs, "ws_a/file_1", Some(small)).await, &bytes[98_000..99_000]);
    let tail = ByteRange { first: 99_990, last: 99_999 };
    assert_eq!(read(&blobs, "ws_a/file_1", Some(tail)).await, &bytes[99_990..]);
    let info = blobs.head("ws_a/file_1").await.expect("head").expect("present");
    assert_eq!(info.size, bytes.len() as u64);
    assert_eq!(blobs.remove_temporaries().await.unwrap(), 0, "commit leaves no temporary");
}

async fn an_empty_file_round_trips(blobs: Arc<dyn BlobStore>) {
    let staged = blobs.stage(body(&[]), 10).await.expect("stage");
    assert_eq!((staged.size, staged.sha256.as_str()), (0, hex::encode(Sha256::digest([])).as_str()));
    blobs.commit(&staged, "ws_a/empty").await.expect("commit");
    assert!(read(&blobs, "ws_a/empty", None).await.is_empty());
}

async fn more_bytes_than_the_limit_are_refused_and_leave_nothing(blobs: Arc<dyn BlobStore>) {
    let result = blobs.stage(body(&sample(50_000)), 49_999).await;
    assert!(matches!(result, Err(StageError::TooLarge { limit: 49_999 })), "{result:?}");
    assert_eq!(blobs.remove_temporaries().await.unwrap(), 0);
    assert!(blobs.list_keys().await.unwrap().is_empty());
}

async fn a_broken_body_leaves_nothing(blobs: Arc<dyn BlobStore>) {
    let broken = futures::stream::iter(vec![
        Ok(Bytes::from_static(b"some bytes")),
        Err(std::io::Error::other("the client went away")),
    ])
    .boxed();
    assert!(matches!(blobs.stage(broken, 1 << 20).await, Err(StageError::Body(_))));
    assert_eq!(blobs.remove_temporaries().await.unwrap(), 0);
}

async fn a_discarded_stage_leaves_nothing(blobs: Arc<dyn BlobStore>) {
    let staged = blobs.stage(body(b"discard me"), 100).await.expect("stage");
    blobs.discard(&staged.temp_key).await;
    blobs.discard(&staged.temp_key).await;
    assert_eq!(blobs.remove_temporaries().await.unwrap(), 0);
    assert!(blobs.list_keys().await.unwrap().is_empty());
}

async fn delete_is_idempotent(blobs: Arc<dyn BlobStore>) {
    let staged = blobs.stage(body(b"short-lived"), 100).await.expect("stage");
    blobs.commit(&staged, "ws_a/file_2").await.expect("commit");
    blobs.delete("ws_a/file_2").await.expect("delete");
    blobs.delete("ws_a/file_2").await.expect("delete again");
    blobs.delete("ws_a/never_was").await.expect("delete of nothing");
    assert!(blobs.open("ws_a/file_2", None).await.is_err());
    assert_eq!(blobs.head("ws_a/file_2").await.unwrap(), None);
}

async fn list_keys_shows_committed_objects_only(blobs: Arc<dyn BlobStore>) {
    for key in ["ws_a/file_1", "ws_b/file_2", "thumbnails/ws_a/file_1/256"] {
        let staged = blobs.stage(body(key.as_bytes()), 100).await.expect("stage");
        blobs.commit(&staged, key).await.expect("commit");
    }
    let _pending = blobs.stage(body(b"not committed"), 100).await.expect("stage");
    let mut keys = blobs.list_keys().await.unwrap();
    keys.sort();
    // Keys nest deeper than two levels (thumbnails), and every committed one is listed.
    assert_eq!(keys, ["thumbnails/ws_a/file_1/256", "ws_a/file_1", "ws_b/file_2"]);
}

async fn remove_temporaries_removes_uncommitted_stages(blobs: Arc<dyn BlobStore>) {
    let staged = blobs.stage(body(b"left behind by a crash"), 100).await.expect("stage");
    let kept = blobs.stage(body(b"kept"), 100).await.expect("stage");
    blobs.commit(&kept, "ws_a/kept").await.expect("commit");
    assert_eq!(blobs.remove_temporaries().await.unwrap(), 1);
    assert!(blobs.commit(&staged, "ws_a/late").await.is_err(), "its temporary is gone");
    assert_eq!(read(&blobs, "ws_a/kept", None).await, b"kept");
}

async fn promote_moves_an_object_whole(blobs: Arc<dyn BlobStore>) {
    let staged = blobs.stage(body(b"arrived directly"), 100).await.expect("stage");
    blobs.commit(&staged, "incoming/ws_a/upl_1").await.expect("commit");
    blobs.promote("incoming/ws_a/upl_1", "ws_a/file_9").await.expect("promote");
    assert_eq!(read(&blobs, "ws_a/file_9", None).await, b"arrived directly");
    assert_eq!(blobs.head("incoming/ws_a/upl_1").await.unwrap(), None);
}

const PART: usize = 5 * 1024 * 1024;

/// A multipart upload of `size` bytes in 5 MiB parts, its parts ready to be received.
async fn multipart_upload(blobs: &Arc<dyn BlobStore>, size: u64) -> Upload {
    let ws = WorkspaceId::generate();
    let file_id = FileId::generate();
    let now = chrono::Utc::now();
    let mut upload = Upload {
        workspace_id: ws.clone(),
        id: UploadId::generate(),
        name: "parts.bin".into(),
        size,
        size_known: true,
        declared_mime: None,
        sha256: None,
        folder_id: None,
        status: UploadStatus::Waiting,
        failure_reason: None,
        blob_key: format!("{ws}/{file_id}"),
        file_id,
        created_at: now,
        updated_at: now,
        expires_at: now + chrono::Duration::hours(1),
        created_by: None,
        part_size: Some(PART as u64),
        multipart_id: None,
        awaits_record: false,
    };
    upload.multipart_id = blobs.begin_parts(&upload).await.expect("begin parts");
    upload
}

/// Sends one part the way this store takes parts: to its presigned URL, or through Cabinet
/// (stage, then commit as the part).
async fn send_part(blobs: &Arc<dyn BlobStore>, upload: &Upload, number: u32, bytes: &[u8]) {
    let now = chrono::Utc::now();
    let expires = now + chrono::Duration::minutes(5);
    match blobs.presign_part(upload, number, bytes.len() as u64, now, expires) {
        Some(url) => {
            let response =
                reqwest_s3::Client::new().put(&url.url).body(bytes.to_vec()).send().await.expect("PUT");
            assert!(response.status().is_success(), "part {number}: {}", response.status());
        }
        None => {
            let staged = blobs.stage(body(bytes), bytes.len() as u64).await.expect("stage");
            let part = blobs.commit_part(&staged, upload, number).await.expect("commit part");
            assert_eq!((part.part_number, part.size), (number, bytes.len() as u64));
        }
    }
}

async fn parts_are_listed_replaced_and_assembled_in_order(blobs: Arc<dyn BlobStore>) {
    let bytes = sample(PART + 1_000);
    let upload = multipart_upload(&blobs, bytes.len() as u64).await;
    assert!(blobs.list_parts(&upload).await.unwrap().is_empty());
    send_part(&blobs, &upload, 2, &bytes[PART..]).await;
    send_part(&blobs, &upload, 1, &vec![9; PART]).await;
    // Sent again: the new bytes replace the old.
    send_part(&blobs, &upload, 1, &bytes[..PART]).await;
    let parts = blobs.list_parts(&upload).await.unwrap();
    let listed: Vec<(u32, u64)> = parts.iter().map(|part: &PartInfo| (part.part_number, part.size)).collect();
    assert_eq!(listed, vec![(1, PART as u64), (2, 1_000)]);
    match blobs.assemble_parts(&upload, &parts).await.expect("assemble") {
        Assembled::Staged(staged) => {
            assert_eq!(staged.size, bytes.len() as u64);
            assert_eq!(staged.sha256, hex::encode(Sha256::digest(&bytes)));
            assert_eq!(&staged.head[..], &bytes[..8 * 1024]);
            blobs.commit(&staged, &upload.blob_key).await.expect("commit");
        }
        Assembled::InPlace { size } => assert_eq!(size, bytes.len() as u64),
    }
    assert!(read(&blobs, &upload.blob_key, None).await == bytes, "the assembled bytes differ");
    blobs.remove_parts(&upload).await.expect("removing parts again is no error");
    assert!(blobs.list_parts(&upload).await.unwrap().is_empty());
    assert_eq!(blobs.remove_temporaries().await.unwrap(), 0, "assembly leaves no temporary");
}

async fn removed_parts_are_gone(blobs: Arc<dyn BlobStore>) {
    let upload = multipart_upload(&blobs, 2 * PART as u64).await;
    send_part(&blobs, &upload, 1, &sample(PART)).await;
    let set = (upload.workspace_id.to_string(), upload.id.to_string());
    let listed_as_a_set = blobs.part_sets().await.unwrap().contains(&set);
    blobs.remove_parts(&upload).await.expect("remove parts");
    assert!(blobs.list_parts(&upload).await.unwrap().is_empty());
    assert!(!blobs.part_sets().await.unwrap().contains(&set));
    // A store that enumerates part sets (the local folder) listed this one while it existed.
    assert!(listed_as_a_set || upload.multipart_id.is_some());
    assert_eq!(blobs.head(&upload.blob_key).await.unwrap(), None, "no object was made");
}

/// Runs each check against each backend, as its own test.
macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod local_folder {
            $(
                #[tokio::test]
                async fn $check() {
                    let subject = super::local().expect("local store");
                    super::$check(subject.blobs.clone()).await;
                }
            )*
        }
        mod s3 {
            $(
                #[tokio::test]
                async fn $check() {
                    let Some(subject) = super::s3() else { return };
                    super::$check(subject.blobs.clone()).await;
                }
            )*
        }
    };
}

conformance!(
    staged_then_committed_bytes_read_back_whole_and_in_ranges,
    an_empty_file_round_trips,
    more_bytes_than_the_limit_are_refused_and_leave_nothing,
    a_broken_body_leaves_nothing,
    a_discarded_stage_leaves_nothing,
    delete_is_idempotent,
    list_keys_shows_committed_objects_only,
    remove_temporaries_removes_uncommitted_stages,
    promote_moves_an_object_whole,
    parts_are_listed_replaced_and_assembled_in_order,
    removed_parts_are_gone,
);
