//! The blob port's conformance suite: written once against `Arc<dyn BlobStore>` and run against
//! every implementation (the local folder; S3 when `dev/s3-server` is running). A backend is done
//! when it passes.

use std::sync::Arc;

use bytes::Bytes;
use cabinet_blob::{LocalBlobStore, S3BlobStore, S3Config};
use cabinet_core::ports::{ByteRange, ByteStream, StageError};
use cabinet_core::BlobStore;
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
);
