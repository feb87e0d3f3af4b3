//! Uploads and the quota: reservations, races, finishing, failing and expiry.

use super::*;

pub(crate) async fn reservations_never_pass_the_limit(store: &dyn MetadataStore) {
    let ws = workspace(store, Some(100)).await;
    store.insert_upload_reserving(&upload(&ws.id, 60)).await.unwrap();
    store.insert_upload_reserving(&upload(&ws.id, 40)).await.unwrap();
    let over = upload(&ws.id, 1);
    match store.insert_upload_reserving(&over).await {
        Err(Error::QuotaExceeded { requested: 1, available: 0 }) => {}
        other => panic!("expected a quota error, got {other:?}"),
    }
    assert!(matches!(store.get_upload(&ws.id, &over.id).await, Err(Error::NotFound(_))));
    assert_eq!(ledger(store, &ws.id).await, (0, 100));
    let unlimited = workspace(store, None).await;
    store.insert_upload_reserving(&upload(&unlimited.id, 1 << 50)).await.unwrap();
}

/// The audit record of the request that made `up`'s change, naming the upload.
fn record_of(up: &Upload) -> NewAuditRecord {
    NewAuditRecord {
        workspace_id: up.workspace_id.clone(),
        at: now(),
        actor: AuditActor::Key("key_conformance".into()),
        action: "POST /v1/uploads".into(),
        object_id: Some(up.id.to_string()),
        client_address: Some("127.0.0.1".into()),
        status: 201,
        error_code: None,
    }
}

fn recorded(up: &Upload) -> Reservation {
    Reservation { upload: up.clone(), record: Some(record_of(up)) }
}

/// The objects the workspace's audit records name, oldest first.
async fn recorded_objects(store: &dyn MetadataStore, ws: &WorkspaceId) -> Vec<String> {
    let query = AuditQuery { limit: 500, ..AuditQuery::default() };
    let mut records = store.audit_records(ws, &query).await.unwrap();
    records.reverse();
    records.into_iter().filter_map(|stored| stored.record.object_id).collect()
}

pub(crate) async fn reservations_committed_together_are_each_judged_by_their_quota(
    store: &dyn MetadataStore,
) {
    let small = workspace(store, Some(100)).await;
    let other = workspace(store, Some(1_000)).await;
    let batch = [
        upload(&small.id, 60),
        upload(&other.id, 500),
        upload(&small.id, 50), // 60 + 50 passes the small workspace's 100
        upload(&small.id, 40),
        upload(&other.id, 500),
    ];
    let reservations: Vec<Reservation> = batch.iter().map(recorded).collect();
    let outcomes = store.insert_uploads_reserving(&reservations).await.unwrap();
    assert_eq!(outcomes.len(), batch.len(), "one outcome per upload, in their order");
    for (index, outcome) in outcomes.iter().enumerate() {
        match (index, outcome) {
            (2, Err(Error::QuotaExceeded { requested: 50, available: 40 })) => {}
            (2, other) => panic!("the upload past its quota is refused: {other:?}"),
            (_, Ok(())) => {}
            (_, refused) => panic!("upload {index} fits its quota: {refused:?}"),
        }
    }
    assert!(matches!(store.get_upload(&small.id, &batch[2].id).await, Err(Error::NotFound(_))));
    for index in [0, 1, 3, 4] {
        let stored = store.get_upload(&batch[index].workspace_id, &batch[index].id).await.unwrap();
        assert_eq!(stored.size, batch[index].size);
    }
    assert_eq!(ledger(store, &small.id).await, (0, 100));
    assert_eq!(ledger(store, &other.id).await, (0, 1_000));
    // The records of those granted committed with them; the refused one's did not.
    let granted = |indexes: &[usize]| indexes.iter().map(|i| batch[*i].id.to_string()).collect::<Vec<_>>();
    assert_eq!(recorded_objects(store, &small.id).await, granted(&[0, 3]));
    assert_eq!(recorded_objects(store, &other.id).await, granted(&[1, 4]));
    assert!(store.insert_uploads_reserving(&[]).await.unwrap().is_empty());

    // One that cannot be inserted for a reason of its own (its id is taken) fails alone.
    let roomy = workspace(store, None).await;
    let taken = upload(&roomy.id, 7);
    store.insert_upload_reserving(&taken).await.unwrap();
    let batch = [upload(&roomy.id, 1), taken.clone(), upload(&roomy.id, 2)];
    let outcomes =
        store.insert_uploads_reserving(&batch.iter().map(recorded).collect::<Vec<_>>()).await.unwrap();
    assert!(outcomes[0].is_ok() && outcomes[2].is_ok(), "{outcomes:?}");
    assert!(outcomes[1].is_err(), "an upload id is inserted once: {outcomes:?}");
    assert_eq!(ledger(store, &roomy.id).await, (0, 7 + 1 + 2));
    assert_eq!(recorded_objects(store, &roomy.id).await, [batch[0].id.to_string(), batch[2].id.to_string()]);

    // One naming a workspace that is not there is refused alone.
    let batch = [upload(&roomy.id, 3), upload(&WorkspaceId::generate(), 4), upload(&roomy.id, 5)];
    let outcomes =
        store.insert_uploads_reserving(&batch.iter().map(recorded).collect::<Vec<_>>()).await.unwrap();
    assert!(outcomes[0].is_ok() && outcomes[2].is_ok(), "{outcomes:?}");
    assert!(matches!(outcomes[1], Err(Error::NotFound(_))), "{outcomes:?}");
    assert_eq!(ledger(store, &roomy.id).await, (0, 7 + 1 + 2 + 3 + 5));
}

pub(crate) async fn racing_reservations_grant_exactly_what_fits(store: &dyn MetadataStore) {
    let ws = workspace(store, Some(20 * 1000)).await;
    let attempts = (0..50).map(|_| {
        let upload = upload(&ws.id, 1000);
        async move { store.insert_upload_reserving(&upload).await }
    });
    let results = futures::future::join_all(attempts).await;
    let granted = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(granted, 20);
    assert!(results.iter().filter_map(|r| r.as_ref().err()).all(|e| e.code().as_str() == "quota_exceeded"));
    assert_eq!(ledger(store, &ws.id).await, (0, 20_000));
}

pub(crate) async fn an_upload_begins_receiving_once(store: &dyn MetadataStore) {
    let ws = workspace(store, None).await;
    let up = upload(&ws.id, 5);
    store.insert_upload_reserving(&up).await.unwrap();
    assert!(store.begin_receiving(&ws.id, &up.id, now()).await.unwrap());
    assert!(!store.begin_receiving(&ws.id, &up.id, now()).await.unwrap());
    assert_eq!(store.get_upload(&ws.id, &up.id).await.unwrap().status, UploadStatus::Uploading);
    assert_eq!(store.receiving_uploads(10).await.unwrap(), vec![(ws.id.clone(), up.id.clone())]);
}

pub(crate) async fn racing_uploads_of_unknown_size_reserve_only_what_the_quota_holds(
    store: &dyn MetadataStore,
) {
    let ws = workspace(store, Some(10_000)).await;
    store.insert_upload_reserving(&upload(&ws.id, 1_000)).await.unwrap();
    let unknown: Vec<Upload> =
        (0..8).map(|_| Upload { size: 0, size_known: false, ..upload(&ws.id, 0) }).collect();
    for up in &unknown {
        store.insert_upload_reserving(up).await.unwrap();
    }
    let grants = futures::future::join_all(
        unknown.iter().map(|up| store.begin_receiving_reserving(&ws.id, &up.id, now(), 4_000)),
    )
    .await;
    let mut grants: Vec<u64> = grants.into_iter().map(|grant| grant.unwrap().unwrap()).collect();
    grants.sort_unstable();
    // 9,000 bytes were free: two uploads get all they asked for, one the rest, the others nothing.
    assert_eq!(grants, vec![0, 0, 0, 0, 0, 1_000, 4_000, 4_000]);
    assert_eq!(ledger(store, &ws.id).await, (0, 10_000));
    // Only once: a second begin reserves nothing more.
    assert_eq!(store.begin_receiving_reserving(&ws.id, &unknown[0].id, now(), 4_000).await.unwrap(), None);

    // The file's size is charged, the rest released, and the upload records the file's size.
    let mut granted = None;
    for up in &unknown {
        if store.get_upload(&ws.id, &up.id).await.unwrap().size == 4_000 {
            granted = Some(up);
        }
    }
    let granted = granted.expect("an upload granted 4,000 bytes");
    let mut file = file_of(granted, now());
    file.size = 1_500;
    assert!(store.finish_upload(&ws.id, &granted.id, &file).await.unwrap());
    assert_eq!(ledger(store, &ws.id).await, (1_500, 6_000));
    assert_eq!(store.get_upload(&ws.id, &granted.id).await.unwrap().size, 1_500);
    for up in &unknown {
        store.fail_upload(&ws.id, &up.id, FailureReason::Incomplete, now()).await.unwrap();
    }
    assert_eq!(ledger(store, &ws.id).await, (1_500, 1_000));
    let unlimited = workspace(store, None).await;
    let up = Upload { size: 0, size_known: false, ..upload(&unlimited.id, 0) };
    store.insert_upload_reserving(&up).await.unwrap();
    assert_eq!(
        store.begin_receiving_reserving(&unlimited.id, &up.id, now(), 1 << 40).await.unwrap(),
        Some(1 << 40)
    );
}

pub(crate) async fn a_multipart_upload_keeps_its_part_size_and_store_id(store: &dyn MetadataStore) {
    let ws = workspace(store, Some(10 << 30)).await.id;
    let mut multipart = upload(&ws, 6 << 30);
    multipart.part_size = Some(5 << 30);
    multipart.multipart_id = Some("2~opaque/id=".into());
    store.insert_upload_reserving(&multipart).await.unwrap();
    let plain = upload(&ws, 1);
    store.insert_upload_reserving(&plain).await.unwrap();
    let stored = store.get_upload(&ws, &multipart.id).await.unwrap();
    assert_eq!((stored.part_size, stored.multipart_id.as_deref()), (Some(5 << 30), Some("2~opaque/id=")));
    assert_eq!(stored.size, 6 << 30);
    let stored = store.get_upload(&ws, &plain.id).await.unwrap();
    assert_eq!((stored.part_size, stored.multipart_id), (None, None));
    assert_eq!(ledger(store, &ws).await, (0, (6 << 30) + 1));
}

pub(crate) async fn finishing_turns_the_reservation_into_a_file_once(store: &dyn MetadataStore) {
    let ws = workspace(store, Some(1000)).await;
    let up = upload(&ws.id, 300);
    store.insert_upload_reserving(&up).await.unwrap();
    let file = file_of(&up, now());
    assert!(store.finish_upload(&ws.id, &up.id, &file).await.unwrap());
    assert_eq!(ledger(store, &ws.id).await, (300, 0));
    assert_eq!(store.get_file(&ws.id, &file.id).await.unwrap(), file);
    let finished = store.get_upload(&ws.id, &up.id).await.unwrap();
    assert_eq!(finished.status, UploadStatus::Success);
    // What the core answers without reading it back.
    assert_eq!(finished, up.finished_as(&file));
    assert!(!store.finish_upload(&ws.id, &up.id, &file).await.unwrap());
    assert!(!store.fail_upload(&ws.id, &up.id, FailureReason::Expired, now()).await.unwrap());
    assert_eq!(ledger(store, &ws.id).await, (300, 0));
}

pub(crate) async fn uploads_finished_together_are_each_judged_on_their_own(store: &dyn MetadataStore) {
    let small = workspace(store, Some(1_000)).await;
    let other = workspace(store, None).await;
    let fits = upload(&small.id, 300);
    let other_upload = upload(&other.id, 5);
    // Of unknown size, it reserved 100 bytes but brings 900: past the 700 the others leave free.
    let past_quota = Upload { size: 0, size_known: false, ..upload(&small.id, 0) };
    let ended = upload(&small.id, 10);
    for up in [&fits, &other_upload, &past_quota, &ended] {
        store.insert_upload_reserving(up).await.unwrap();
    }
    assert_eq!(
        store.begin_receiving_reserving(&small.id, &past_quota.id, now(), 100).await.unwrap(),
        Some(100)
    );
    assert!(store.fail_upload(&small.id, &ended.id, FailureReason::Expired, now()).await.unwrap());
    let mut too_big = file_of(&past_quota, now());
    too_big.size = 1_000;
    let finishes: Vec<Finish> = [
        (&fits, file_of(&fits, now())),
        (&past_quota, too_big),
        (&other_upload, file_of(&other_upload, now())),
        (&ended, file_of(&ended, now())),
    ]
    .into_iter()
    .map(|(up, file)| Finish { upload: up.id.clone(), file, record: Some(record_of(up)) })
    .collect();
    let outcomes = store.finish_uploads(&finishes).await.unwrap();
    assert_eq!(outcomes.len(), finishes.len(), "one outcome per upload, in their order");
    assert!(matches!(outcomes[0], Ok(true)), "{outcomes:?}");
    assert!(matches!(outcomes[1], Err(Error::QuotaExceeded { .. })), "{outcomes:?}");
    assert!(matches!(outcomes[2], Ok(true)), "{outcomes:?}");
    assert!(matches!(outcomes[3], Ok(false)), "an upload that ended is not finished: {outcomes:?}");
    // The refused one changed nothing: still live, its reservation held, no file.
    assert_eq!(store.get_upload(&small.id, &past_quota.id).await.unwrap().status, UploadStatus::Uploading);
    assert!(matches!(store.get_file(&small.id, &past_quota.file_id).await, Err(Error::NotFound(_))));
    assert!(matches!(store.get_file(&small.id, &ended.file_id).await, Err(Error::NotFound(_))));
    assert_eq!(store.get_file(&small.id, &fits.file_id).await.unwrap(), finishes[0].file);
    assert_eq!(store.get_file(&other.id, &other_upload.file_id).await.unwrap(), finishes[2].file);
    assert_eq!(ledger(store, &small.id).await, (300, 100));
    // Only the finished ones' records committed, with them.
    assert_eq!(recorded_objects(store, &small.id).await, [fits.id.to_string()]);
    assert_eq!(recorded_objects(store, &other.id).await, [other_upload.id.to_string()]);
    assert!(store.finish_uploads(&[]).await.unwrap().is_empty());
}

/// Every upload within what it reserved: written as one batch, which must leave what one at a
/// time would: the files with their tags, each upload SUCCESS with its file's size, the ledger, a
/// usage step a file, and each upload's `upload.succeeded` before its `file.created`.
pub(crate) async fn uploads_finished_together_within_their_reservations_are_each_written(
    store: &dyn MetadataStore,
) {
    let ws = workspace(store, Some(10_000)).await;
    let other = workspace(store, None).await;
    let started = now();
    let uploads = [upload(&ws.id, 300), upload(&other.id, 5), upload(&ws.id, 200), upload(&ws.id, 50)];
    for up in &uploads {
        store.insert_upload_reserving(up).await.unwrap();
    }
    let ended = &uploads[3];
    assert!(store.fail_upload(&ws.id, &ended.id, FailureReason::Expired, now()).await.unwrap());
    let seq_before = store.newest_event(&ws.id).await.unwrap();
    let finishes: Vec<Finish> = uploads
        .iter()
        .enumerate()
        .map(|(n, up)| {
            // Smaller than reserved, tagged, each at its own moment.
            let mut file = file_of(up, started + chrono::Duration::milliseconds(n as i64 + 1));
            file.size = up.size - 1;
            file.tags = vec![format!("batch-{n}"), "Shared".into()];
            Finish { upload: up.id.clone(), file, record: Some(record_of(up)) }
        })
        .collect();
    let outcomes: Vec<bool> =
        store.finish_uploads(&finishes).await.unwrap().into_iter().map(Result::unwrap).collect();
    assert_eq!(outcomes, vec![true, true, true, false], "one outcome per upload, in their order");
    for finish in &finishes[..3] {
        let ws = &finish.file.workspace_id;
        assert_eq!(store.get_file(ws, &finish.file.id).await.unwrap(), finish.file);
        let stored = store.get_upload(ws, &finish.upload).await.unwrap();
        assert_eq!((stored.status, stored.size), (UploadStatus::Success, finish.file.size));
    }
    assert!(matches!(store.get_file(&ws.id, &finishes[3].file.id).await, Err(Error::NotFound(_))));
    assert_eq!(ledger(store, &ws.id).await, (299 + 199, 0));
    assert_eq!(ledger(store, &other.id).await, (4, 0));
    // The finished ones' records committed with them; the ended one's did not.
    let mut records = recorded_objects(store, &ws.id).await;
    records.sort();
    let mut expected = vec![uploads[0].id.to_string(), uploads[2].id.to_string()];
    expected.sort();
    assert_eq!(records, expected);
    assert_eq!(recorded_objects(store, &other.id).await, [uploads[1].id.to_string()]);
    let mut tags = store.tag_counts(&ws.id).await.unwrap();
    tags.sort();
    let expected = [("Shared", 2), ("batch-0", 1), ("batch-2", 1)];
    assert_eq!(tags, expected.map(|(tag, n)| (tag.to_owned(), n)), "the tags were written");
    // The usage ledger holds a step a file, in turn.
    let (_, steps) =
        store.usage_history(&ws.id, started, now() + chrono::Duration::seconds(1)).await.unwrap();
    let steps: Vec<u64> = steps.into_iter().map(|(_, used)| used).collect();
    assert_eq!(steps, vec![299, 299 + 199]);
    // Each upload's success comes before its file.
    let events = store.events_after(&ws.id, seq_before, 100).await.unwrap();
    for finish in &finishes[..3].iter().filter(|finish| finish.file.workspace_id == ws.id).collect::<Vec<_>>()
    {
        let at = |kind: &str, id: &str| events.iter().position(|e| e.kind == kind && e.object_id == id);
        let succeeded = at("upload.succeeded", finish.upload.as_str()).expect("upload.succeeded");
        let created = at("file.created", finish.file.id.as_str()).expect("file.created");
        assert!(succeeded < created, "{events:?}");
    }
    assert_eq!(events.len(), 4, "two events a file: {events:?}");
}

/// A batch whose charge passes two quota thresholds reports each crossing, as uploads finished
/// one at a time would.
pub(crate) async fn uploads_finished_together_report_each_quota_threshold_they_cross(
    store: &dyn MetadataStore,
) {
    let ws = workspace(store, Some(1_000)).await;
    let uploads = [upload(&ws.id, 850), upload(&ws.id, 100)];
    for up in &uploads {
        store.insert_upload_reserving(up).await.unwrap();
    }
    let seq_before = store.newest_event(&ws.id).await.unwrap();
    let finishes: Vec<Finish> = uploads
        .iter()
        .map(|up| Finish { upload: up.id.clone(), file: file_of(up, now()), record: None })
        .collect();
    let outcomes: Vec<bool> =
        store.finish_uploads(&finishes).await.unwrap().into_iter().map(Result::unwrap).collect();
    assert_eq!(outcomes, vec![true, true]);
    assert_eq!(ledger(store, &ws.id).await, (950, 0));
    let crossed: Vec<Option<String>> = store
        .events_after(&ws.id, seq_before, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "quota.crossed")
        .map(|e| e.detail)
        .collect();
    assert_eq!(crossed, vec![Some("80".to_owned()), Some("90".to_owned())]);
}

pub(crate) async fn uploads_begun_together_each_reserve_what_the_quota_holds(store: &dyn MetadataStore) {
    let ws = workspace(store, Some(1_000)).await;
    let other = workspace(store, None).await;
    let sized = upload(&ws.id, 300);
    let unknown = || Upload { size: 0, size_known: false, ..upload(&ws.id, 0) };
    let (first, second) = (unknown(), unknown());
    let unlimited = Upload { size: 0, size_known: false, ..upload(&other.id, 0) };
    let ended = upload(&ws.id, 1);
    for up in [&sized, &first, &second, &unlimited, &ended] {
        store.insert_upload_reserving(up).await.unwrap();
    }
    assert!(store.fail_upload(&ws.id, &ended.id, FailureReason::Expired, now()).await.unwrap());
    let begin = |up: &Upload, reserving| Begin {
        workspace: up.workspace_id.clone(),
        upload: up.id.clone(),
        at: now(),
        reserving,
    };
    let begins = vec![
        begin(&sized, None),
        begin(&first, Some(500)),
        begin(&second, Some(500)), // 300 + 500 leave 200 of the 1,000
        begin(&unlimited, Some(1 << 40)),
        begin(&ended, None),
    ];
    let outcomes: Vec<Option<u64>> =
        store.begin_receiving_all(&begins).await.unwrap().into_iter().map(Result::unwrap).collect();
    assert_eq!(outcomes, vec![Some(0), Some(500), Some(200), Some(1 << 40), None]);
    for up in [&sized, &first, &second] {
        assert_eq!(store.get_upload(&ws.id, &up.id).await.unwrap().status, UploadStatus::Uploading);
    }
    assert_eq!(ledger(store, &ws.id).await, (0, 1_000));
    // Once only: begun again, nothing is.
    let again = store.begin_receiving_all(&begins[..2]).await.unwrap();
    assert!(again.iter().all(|outcome| matches!(outcome, Ok(None))), "{again:?}");
    assert_eq!(ledger(store, &ws.id).await, (0, 1_000));
}

pub(crate) async fn signed_uploads_begun_together_each_begin_once(store: &dyn MetadataStore) {
    let ws = workspace(store, Some(1_000)).await;
    let other = workspace(store, None).await;
    let (first, second, elsewhere, ended, receiving) = (
        upload(&ws.id, 100),
        upload(&ws.id, 200),
        upload(&other.id, 300),
        upload(&ws.id, 1),
        upload(&ws.id, 2),
    );
    for up in [&first, &second, &elsewhere, &ended, &receiving] {
        store.insert_upload_reserving(up).await.unwrap();
    }
    assert!(store.fail_upload(&ws.id, &ended.id, FailureReason::Expired, now()).await.unwrap());
    assert!(store.begin_receiving(&ws.id, &receiving.id, now()).await.unwrap());
    let begin = |up: &Upload| Begin {
        workspace: up.workspace_id.clone(),
        upload: up.id.clone(),
        at: now(),
        reserving: None,
    };
    let begins: Vec<Begin> =
        [&first, &ended, &elsewhere, &receiving, &second].into_iter().map(begin).collect();
    let outcomes: Vec<Option<u64>> =
        store.begin_receiving_all(&begins).await.unwrap().into_iter().map(Result::unwrap).collect();
    assert_eq!(
        outcomes,
        vec![Some(0), None, Some(0), None, Some(0)],
        "one outcome per upload, in their order"
    );
    for up in [&first, &second, &elsewhere, &receiving] {
        assert_eq!(store.get_upload(&up.workspace_id, &up.id).await.unwrap().status, UploadStatus::Uploading);
    }
    assert_eq!(store.get_upload(&ws.id, &ended.id).await.unwrap().status, UploadStatus::Failed);
    assert_eq!(ledger(store, &ws.id).await, (0, 302), "their sizes stay reserved, nothing more");
    // Once only: begun again, nothing is; and one named twice in a batch begins once.
    let again = store.begin_receiving_all(&begins).await.unwrap();
    assert!(again.iter().all(|outcome| matches!(outcome, Ok(None))), "{again:?}");
    let third = upload(&ws.id, 3);
    store.insert_upload_reserving(&third).await.unwrap();
    let twice: Vec<Option<u64>> = store
        .begin_receiving_all(&[begin(&third), begin(&third)])
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(twice, vec![Some(0), None]);
    assert_eq!(ledger(store, &ws.id).await, (0, 305));
}

pub(crate) async fn direct_uploads_inserted_together_are_receiving_and_reserve_what_the_quota_holds(
    store: &dyn MetadataStore,
) {
    let ws = workspace(store, Some(1_000)).await;
    let other = workspace(store, None).await;
    store.insert_upload_reserving(&upload(&ws.id, 300)).await.unwrap();
    let direct = |ws: &WorkspaceId| Upload { size: 0, size_known: false, ..upload(ws, 0) };
    let batch = vec![
        (direct(&ws.id), 500),
        (direct(&other.id), 1 << 40),
        (direct(&ws.id), 500), // 300 + 500 leave 200 of the 1,000
        (direct(&ws.id), 10),  // nothing left
    ];
    let outcomes: Vec<u64> =
        store.insert_uploads_receiving(&batch).await.unwrap().into_iter().map(Result::unwrap).collect();
    assert_eq!(outcomes, vec![500, 1 << 40, 200, 0], "one outcome per upload, in their order");
    for ((up, _), reserved) in batch.iter().zip(&outcomes) {
        let stored = store.get_upload(&up.workspace_id, &up.id).await.unwrap();
        assert_eq!(
            (stored.status, stored.size, stored.size_known),
            (UploadStatus::Uploading, *reserved, false)
        );
    }
    assert_eq!(ledger(store, &ws.id).await, (0, 1_000));
    // Receiving already: a begin finds nothing WAITING, and finishing charges what the file holds.
    let (first, _) = &batch[0];
    let begin = Begin { workspace: ws.id.clone(), upload: first.id.clone(), at: now(), reserving: Some(10) };
    assert_eq!(store.begin_receiving_all(&[begin]).await.unwrap().pop().unwrap().unwrap(), None);
    let file = FileRecord { size: 120, ..file_of(first, now()) };
    assert!(store.finish_upload(&ws.id, &first.id, &file).await.unwrap());
    assert_eq!(ledger(store, &ws.id).await, (120, 500));
    // An id inserted twice fails alone.
    let again = store.insert_uploads_receiving(&[(direct(&ws.id), 1), batch[3].clone()]).await.unwrap();
    assert!(again[0].is_ok() && again[1].is_err(), "{again:?}");
    assert!(store.insert_uploads_receiving(&[]).await.unwrap().is_empty());
}

pub(crate) async fn failing_releases_the_reservation_once(store: &dyn MetadataStore) {
    let ws = workspace(store, Some(1000)).await;
    let up = upload(&ws.id, 300);
    store.insert_upload_reserving(&up).await.unwrap();
    assert!(store.fail_upload(&ws.id, &up.id, FailureReason::ChecksumMismatch, now()).await.unwrap());
    assert!(!store.fail_upload(&ws.id, &up.id, FailureReason::Expired, now()).await.unwrap());
    let failed = store.get_upload(&ws.id, &up.id).await.unwrap();
    assert_eq!(
        (failed.status, failed.failure_reason),
        (UploadStatus::Failed, Some(FailureReason::ChecksumMismatch))
    );
    assert_eq!(ledger(store, &ws.id).await, (0, 0));
    assert!(!store.finish_upload(&ws.id, &up.id, &file_of(&up, now())).await.unwrap());
    assert!(matches!(store.get_file(&ws.id, &up.file_id).await, Err(Error::NotFound(_))));
}

pub(crate) async fn expired_uploads_are_found_by_their_cutoffs(store: &dyn MetadataStore) {
    let ws = workspace(store, None).await;
    let t = now();
    let mut waiting = upload(&ws.id, 1);
    waiting.expires_at = t - Duration::minutes(1);
    let mut receiving = upload(&ws.id, 1);
    receiving.expires_at = t - Duration::minutes(1);
    let fresh = upload(&ws.id, 1);
    for up in [&waiting, &receiving, &fresh] {
        store.insert_upload_reserving(up).await.unwrap();
    }
    store.begin_receiving(&ws.id, &receiving.id, t).await.unwrap();
    let found = store.expired_uploads(t, t - Duration::hours(1), 100).await.unwrap();
    assert_eq!(found, vec![(ws.id.clone(), waiting.id.clone())]);
    let mut found = store.expired_uploads(t, t, 100).await.unwrap();
    found.sort();
    let mut expected = vec![(ws.id.clone(), waiting.id.clone()), (ws.id.clone(), receiving.id.clone())];
    expected.sort();
    assert_eq!(found, expected);
}

pub(crate) async fn uploads_failed_before_their_url_expired_are_found_once_it_has(store: &dyn MetadataStore) {
    let ws = workspace(store, None).await;
    let t = now();
    let with_expiry = |minutes: i64| {
        let mut up = upload(&ws.id, 1);
        up.expires_at = t + Duration::minutes(minutes);
        up
    };
    let (cancelled, refused, expired, live, succeeded) =
        (with_expiry(10), with_expiry(20), with_expiry(5), with_expiry(10), with_expiry(10));
    for up in [&cancelled, &refused, &expired, &live, &succeeded] {
        store.insert_upload_reserving(up).await.unwrap();
    }
    assert!(store.fail_upload(&ws.id, &cancelled.id, FailureReason::Cancelled, t).await.unwrap());
    assert!(store.fail_upload(&ws.id, &refused.id, FailureReason::ChecksumMismatch, t).await.unwrap());
    // Failed once its URL had expired: nothing could land after it failed.
    assert!(store
        .fail_upload(&ws.id, &expired.id, FailureReason::Expired, expired.expires_at)
        .await
        .unwrap());
    assert!(store.finish_upload(&ws.id, &succeeded.id, &file_of(&succeeded, t)).await.unwrap());
    let ids = |found: Vec<Upload>| found.into_iter().map(|up| up.id).collect::<Vec<_>>();

    let everything = t + Duration::hours(1);
    assert_eq!(
        ids(store.uploads_failed_before_expiry(t, None, everything, 100).await.unwrap()),
        vec![cancelled.id.clone(), refused.id.clone()],
        "in the order their URLs expire"
    );
    // Only URLs that expired before `by`, and after the cursor.
    assert_eq!(
        ids(store.uploads_failed_before_expiry(t, None, cancelled.expires_at, 100).await.unwrap()),
        Vec::<UploadId>::new()
    );
    let first = store.uploads_failed_before_expiry(t, None, everything, 1).await.unwrap();
    assert_eq!(ids(first.clone()), vec![cancelled.id.clone()]);
    assert_eq!(
        ids(store
            .uploads_failed_before_expiry(first[0].expires_at, Some(&first[0].id), everything, 100)
            .await
            .unwrap()),
        vec![refused.id.clone()]
    );
    assert_eq!(
        ids(store
            .uploads_failed_before_expiry(refused.expires_at, Some(&refused.id), everything, 100)
            .await
            .unwrap()),
        Vec::<UploadId>::new()
    );
}

pub(crate) async fn direct_files_are_charged_within_the_quota(store: &dyn MetadataStore) {
    let ws = workspace(store, Some(100)).await;
    store.insert_upload_reserving(&upload(&ws.id, 50)).await.unwrap();
    store.insert_file_charging(&direct_file(&ws.id, 50, now())).await.unwrap();
    let over = direct_file(&ws.id, 1, now());
    assert_eq!(store.insert_file_charging(&over).await.unwrap_err().code().as_str(), "quota_exceeded");
    assert!(matches!(store.get_file(&ws.id, &over.id).await, Err(Error::NotFound(_))));
    assert_eq!(ledger(store, &ws.id).await, (50, 50));
}

pub(crate) async fn an_upload_keeps_whether_it_awaits_its_record_and_is_found_by_its_file_id(
    store: &dyn MetadataStore,
) {
    let ws = workspace(store, None).await;
    let mut held = upload(&ws.id, 5);
    held.awaits_record = true;
    store.insert_upload_reserving(&held).await.unwrap();
    let plain = upload(&ws.id, 5);
    store.insert_upload_reserving(&plain).await.unwrap();
    assert!(store.get_upload(&ws.id, &held.id).await.unwrap().awaits_record);
    assert!(!store.get_upload(&ws.id, &plain.id).await.unwrap().awaits_record);
    let found = store.upload_of_file(&ws.id, &held.file_id).await.unwrap();
    assert_eq!((found.id, found.awaits_record), (held.id.clone(), true));
    // Scoped to its workspace, like every lookup.
    let other = workspace(store, None).await;
    assert!(matches!(store.upload_of_file(&other.id, &held.file_id).await, Err(Error::NotFound(_))));
    assert!(matches!(store.upload_of_file(&ws.id, &FileId::generate()).await, Err(Error::NotFound(_))));
}
