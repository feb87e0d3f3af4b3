//! The rounds: start, upload, kill mid-flight, restart, and check what the restarted server holds.

use super::*;

/// Checks, on a freshly restarted server, every invariant a crash must not break.
async fn check_after_restart(
    cabinet: &Cabinet,
    data_dir: &Path,
    stores: &Stores,
    ledger: &mut Ledger,
    rng: &mut StdRng,
) -> Survey {
    if stores.is_s3() {
        settle_uploads_sent_to_s3(cabinet, ledger).await;
    } else {
        // Recovery runs before the server listens: by now no temporary file may remain.
        let leftovers = files_under(&data_dir.join("blobs").join("tmp"));
        assert!(leftovers.is_empty(), "temporary files survived the restart: {leftovers:?}");
    }

    let Snapshot { uploads, files: listed, quota, usage } = cabinet.consistent_snapshot(ledger).await;

    // No listed file is partial: each reads back whole, as exactly the bytes that were uploaded.
    // New files are read back in full; a few older ones are read again, in case a later crash
    // or recovery damaged them.
    let (mut to_read, older): (Vec<&String>, Vec<&String>) =
        listed.keys().partition(|id| !ledger.read_back.contains(*id));
    to_read.extend(rand::seq::IteratorRandom::choose_multiple(older.into_iter(), rng, REREAD_PER_ROUND));
    for id in &to_read {
        let file = &listed[*id];
        let name = file["name"].as_str().expect("a file name");
        let bytes = cabinet.content(id).await;
        assert_eq!(bytes.len() as u64, file["size"], "{name} ({id}) reads back as many bytes as its size");
        assert_eq!(sha256_hex(&bytes), file["sha256"], "{name} ({id}) hashes to its sha256");
        let plan =
            ledger.planned.get(name).unwrap_or_else(|| panic!("{name} ({id}) is not a file the test made"));
        assert!(bytes == plan.content(), "{name} ({id}) holds exactly the bytes that were uploaded");
    }
    let files_read_back = to_read.len();
    ledger.read_back.extend(to_read.into_iter().cloned());

    // Every file the client was told about is still there.
    for (name, confirmed) in &ledger.confirmed {
        let file = listed.get(&confirmed.id).unwrap_or_else(|| {
            panic!("{name} was reported stored as {} but is gone after the crash", confirmed.id)
        });
        assert_eq!(file["size"], confirmed.size, "{name}");
        assert_eq!(file["sha256"], confirmed.sha256.as_str(), "{name}");
    }

    // Every upload ended or is still waiting for its bytes; none is left receiving.
    let mut waiting_bytes = 0;
    let mut survey = Survey { files: listed.len(), files_read_back, waiting_uploads: 0, failed_uploads: 0 };
    for (upload_id, plan) in &ledger.sessions {
        let upload = &uploads[upload_id];
        let confirmed = ledger.confirmed.get(&plan.name);
        match upload["status"].as_str() {
            Some("WAITING") => {
                assert!(confirmed.is_none(), "{} was reported stored but is WAITING: {upload}", plan.name);
                waiting_bytes += upload["size"].as_u64().expect("an upload size");
                survey.waiting_uploads += 1;
            }
            Some("SUCCESS") => {
                let file_id = upload["file"]["id"].as_str().unwrap_or_else(|| panic!("a file in {upload}"));
                assert!(listed.contains_key(file_id), "the file of SUCCESS upload {upload_id} is not listed");
                if let Some(confirmed) = confirmed {
                    assert_eq!(file_id, confirmed.id, "{}", plan.name);
                }
            }
            Some("FAILED") => {
                assert!(confirmed.is_none(), "{} was reported stored but FAILED: {upload}", plan.name);
                survey.failed_uploads += 1;
            }
            // With S3 and PostgreSQL a node cannot tell a completion the kill cut from one another
            // node is running, so a cut `complete` stays UPLOADING (its reservation held) until the
            // sweeper's grace ends it; on the embedded stores recovery ends it before listening.
            Some("UPLOADING") if stores.is_s3() => {
                assert!(confirmed.is_none(), "{} was reported stored but is UPLOADING: {upload}", plan.name);
                waiting_bytes += upload["size"].as_u64().expect("an upload size");
                survey.waiting_uploads += 1;
            }
            _ => panic!("after a restart no upload may be left receiving: {upload}"),
        }
    }

    // The ledger equals what is really stored and reserved.
    let used_bytes: u64 = listed.values().map(|file| file["size"].as_u64().unwrap()).sum();
    assert_eq!(quota["used_bytes"], used_bytes, "used_bytes is the sum of the files' sizes: {quota}");
    let reserved_bytes = quota["reserved_bytes"].as_u64().expect("reserved_bytes");
    if stores.is_s3() {
        // A direct upload the kill cut mid-stream holds its reservation (the cap: its body's
        // length is unknown) until the sweeper's grace ends it, for no node can tell it from one
        // another node is still receiving; its id was never given to the client.
        let held = reserved_bytes.checked_sub(waiting_bytes).unwrap_or_else(|| {
            panic!("reserved_bytes is at least the waiting uploads' sizes ({waiting_bytes}): {quota}")
        });
        assert!(
            held % DIRECT_UPLOAD_CAP == 0 && held / DIRECT_UPLOAD_CAP <= ledger.direct_uploads_cut,
            "reserved_bytes is the waiting uploads' sizes ({waiting_bytes}) plus the cap of at most \
             the {} direct uploads cut mid-stream: {quota}",
            ledger.direct_uploads_cut
        );
    } else {
        assert_eq!(
            reserved_bytes, waiting_bytes,
            "reserved_bytes is the sum of the waiting uploads' sizes: {quota}"
        );
    }
    assert_eq!(usage["total_size"], used_bytes, "{usage}");
    assert_eq!(usage["file_count"], listed.len(), "{usage}");

    // The stores agree: every file has its object, no object is an orphan, no ledger drifts.
    assert_stores_agree(data_dir, stores);
    if stores.is_s3() {
        return survey;
    }
    // Exactly one committed blob per file, of the file's size: none lost, none orphaned.
    let blobs: HashMap<String, u64> = files_under(&data_dir.join("blobs").join("objects"))
        .iter()
        .map(|path| {
            let size = std::fs::metadata(path).expect("a blob's metadata").len();
            (path.file_name().unwrap().to_string_lossy().into_owned(), size)
        })
        .collect();
    assert_eq!(blobs.len(), listed.len(), "one committed blob per file");
    for (id, file) in &listed {
        assert_eq!(blobs.get(id).copied(), file["size"].as_u64(), "the blob of file {id}");
    }
    survey
}

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(value.trim().parse().unwrap_or_else(|_| panic!("{name} must be a number, not {value:?}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reported_uploads_survive_repeated_crashes_and_the_ledger_matches_the_disk() {
    let rounds = env_number("CABINET_CRASH_ROUNDS").unwrap_or(3) as usize;
    crash_rounds(Stores::Embedded, rounds).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reported_uploads_survive_repeated_crashes_on_postgres_and_s3() {
    let test = "the PostgreSQL + S3 crash test";
    let Some(stores) = postgres_and_s3(test).await else { return };
    let rounds = env_number("CABINET_CRASH_ROUNDS_POSTGRES_S3").unwrap_or(2) as usize;
    crash_rounds(stores, rounds).await;
}

/// Kills the server `rounds` times while a round of uploads streams in, checking every
/// invariant after each restart.
async fn crash_rounds(stores: Stores, rounds: usize) {
    let label = if stores.is_s3() { "PostgreSQL + S3" } else { "SQLite + local folder" };
    let seed = env_number("CABINET_CRASH_SEED").unwrap_or_else(|| {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        now.as_secs() ^ u64::from(now.subsec_nanos())
    });
    println!("crash test on {label}: {rounds} rounds, seed {seed} (replay with CABINET_CRASH_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);

    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let key = create_tenant(&data_dir, &stores);
    let mut ledger = Ledger::default();
    let mut cabinet = Cabinet::start(&data_dir, &key, &stores);
    let mut cut_in_all_rounds = 0;

    for round in 1..=rounds {
        let round_started = Instant::now();
        let plans = plan_round(round, stores.routes(), &mut rng);
        let kill_after = Duration::from_millis(rng.gen_range(0..=KILL_WINDOW_MS));
        for plan in &plans {
            ledger.planned.insert(plan.name.clone(), plan.clone());
        }

        // Sessions start before the kill clock runs: a session whose creation the kill cut off
        // would hold a reservation under an id the client never learned, and the ledger check
        // could not tell it from a leak.
        let signed: Vec<&PlannedUpload> = plans.iter().filter(|plan| plan.route != Route::Direct).collect();
        let tickets = join_all(signed.iter().map(|plan| cabinet.start_upload(plan))).await;
        let mut tickets_by_name = HashMap::new();
        for (plan, ticket) in signed.into_iter().zip(tickets) {
            ledger.sessions.insert(ticket.upload_id.clone(), plan.clone());
            tickets_by_name.insert(plan.name.clone(), ticket);
        }

        let progress = Arc::new(Progress::default());
        let bytes_started = Instant::now();
        let transfers: Vec<_> = plans
            .iter()
            .map(|plan| {
                tokio::spawn(transfer(
                    cabinet.http.clone(),
                    cabinet.server.url.clone(),
                    key.clone(),
                    plan.clone(),
                    tickets_by_name.remove(&plan.name),
                    progress.clone(),
                ))
            })
            .collect();
        // Land the kill while an upload is in flight: at the first moment after the random one
        // when one is, and at the latest while one of the last two is, rather than hoping the
        // random moment hits one (the starts are staggered, and a fast round ends early).
        let kill_at = bytes_started + kill_after;
        loop {
            let ended = progress.ended.load(Ordering::SeqCst);
            let in_flight = progress.in_flight() > 0;
            if ended == plans.len() || (in_flight && (Instant::now() >= kill_at || ended + 2 >= plans.len()))
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let killed_at = Instant::now();
        cabinet.crash();

        let mut confirmed_this_round = 0;
        let mut cut_mid_flight = 0;
        for (plan, transfer) in plans.iter().zip(join_all(transfers).await) {
            let transfer = transfer.expect("a transfer task panicked");
            match transfer.outcome {
                Outcome::Confirmed(file) => {
                    ledger.confirmed.insert(plan.name.clone(), file);
                    confirmed_this_round += 1;
                }
                Outcome::CutOff if transfer.started_at < killed_at => {
                    cut_mid_flight += 1;
                    ledger.direct_uploads_cut += u64::from(plan.route == Route::Direct);
                }
                Outcome::CutOff => {}
            }
        }
        cut_in_all_rounds += cut_mid_flight;

        cabinet = Cabinet::start(&data_dir, &key, &stores);
        let survey = check_after_restart(&cabinet, &data_dir, &stores, &mut ledger, &mut rng).await;
        println!(
            "round {round}: killed {} ms after the bytes started, {cut_mid_flight} uploads cut mid-flight, \
             {confirmed_this_round}/{UPLOADS_PER_ROUND} confirmed before; now {} files ({} read back), \
             {} uploads waiting, {} failed ({:.1?})",
            killed_at.duration_since(bytes_started).as_millis(),
            survey.files,
            survey.files_read_back,
            survey.waiting_uploads,
            survey.failed_uploads,
            round_started.elapsed()
        );
    }
    // A kill can land just as the upload in flight finishes, so a single round may cut none;
    // a run in which no round cut any proved nothing about a crash during an upload.
    assert!(
        cut_in_all_rounds > 0,
        "no round's kill cut an upload mid-flight: the run proved nothing about a crash during an \
         upload (replay with CABINET_CRASH_SEED={seed})"
    );
    println!(
        "crash rounds on {label}: {rounds} passed, {cut_in_all_rounds} uploads cut mid-flight (seed {seed})"
    );
}
