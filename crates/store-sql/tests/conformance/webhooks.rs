//! Webhook endpoints: their cursor, their lease (one holder at a time, taken by a conditional
//! UPDATE) and the compare-and-set that moves the cursor.

use cabinet_core::webhooks::{Delivery, NewWebhook, Webhook, WebhookChange};
use cabinet_core::{DeliveryId, WebhookId};

use super::*;

fn new_webhook(ws: &WorkspaceId, at: DateTime<Utc>) -> NewWebhook {
    NewWebhook {
        id: WebhookId::generate(),
        workspace_id: ws.clone(),
        url: "https://1.1.1.1/hook".to_owned(),
        event_types: vec!["*".to_owned()],
        enabled: true,
        secret: "whsec_AAAA".to_owned(),
        at,
    }
}

fn delivery(hook: &WebhookId, ws: &WorkspaceId, seq: u64, status: Option<u16>) -> Delivery {
    Delivery {
        id: DeliveryId::generate_in_order(),
        webhook_id: hook.clone(),
        workspace_id: ws.clone(),
        seq,
        attempt: 1,
        at: now(),
        status,
        error: status.is_none().then(|| "refused".to_owned()),
        duration_ms: 3,
    }
}

/// A workspace with an endpoint and `events` events after it (folders made), the endpoint's
/// starting cursor, and the time it was made at.
async fn endpoint_with_events(
    store: &dyn MetadataStore,
    events: usize,
) -> (Workspace, Webhook, u64, DateTime<Utc>) {
    let ws = workspace(store, None).await;
    let at = now();
    let hook = store.create_webhook(&new_webhook(&ws.id, at)).await.unwrap();
    for n in 0..events {
        store.insert_folder(&folder(&ws.id, &format!("event-{n}"), None)).await.unwrap();
    }
    let from = hook.delivered_seq;
    (ws, hook, from, at)
}

pub(crate) async fn a_webhook_is_leased_to_one_node_at_a_time_and_its_cursor_moves_under_its_lease(
    store: &dyn MetadataStore,
) {
    let ws = workspace(store, None).await;
    store.insert_folder(&folder(&ws.id, "before", None)).await.unwrap();
    let at = now();
    let hook = store.create_webhook(&new_webhook(&ws.id, at)).await.unwrap();
    assert_eq!(hook.delivered_seq, 1, "a new endpoint starts after the newest event");
    assert!(store.due_webhooks(at, 10).await.unwrap().is_empty(), "nothing new: not due");
    store.insert_folder(&folder(&ws.id, "after", None)).await.unwrap();
    assert_eq!(store.due_webhooks(at, 10).await.unwrap(), vec![hook.id.clone()]);

    // Two nodes race for it: exactly one gets it, and it is no longer due.
    let until = at + Duration::seconds(20);
    let (first, second) = tokio::join!(
        store.claim_webhook(&hook.id, "node_a", at, until),
        store.claim_webhook(&hook.id, "node_b", at, until)
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    assert!(first.is_some() != second.is_some(), "one claim of two wins");
    let (winner, loser) = if first.is_some() { ("node_a", "node_b") } else { ("node_b", "node_a") };
    assert!(store.due_webhooks(at, 10).await.unwrap().is_empty(), "leased: not due");
    assert!(store.claim_webhook(&hook.id, loser, at, until).await.unwrap().is_none());

    // Only the holder moves the cursor, and only from where it is.
    assert!(!store.advance_webhook(&hook.id, loser, 1, 2, until, &[]).await.unwrap());
    assert!(!store.advance_webhook(&hook.id, winner, 0, 2, until, &[]).await.unwrap());
    let sent = delivery(&hook.id, &ws.id, 2, Some(204));
    assert!(store.advance_webhook(&hook.id, winner, 1, 2, until, std::slice::from_ref(&sent)).await.unwrap());
    store.release_webhook(&hook.id, winner).await.unwrap();
    assert_eq!(store.get_webhook(&ws.id, &hook.id).await.unwrap().delivered_seq, 2);
    assert!(store.due_webhooks(at, 10).await.unwrap().is_empty(), "caught up: not due");

    // A lease that ran out is anyone's.
    store.insert_folder(&folder(&ws.id, "third", None)).await.unwrap();
    assert!(store.claim_webhook(&hook.id, winner, at, at + Duration::seconds(1)).await.unwrap().is_some());
    let later = at + Duration::seconds(2);
    assert!(store
        .claim_webhook(&hook.id, loser, later, later + Duration::seconds(20))
        .await
        .unwrap()
        .is_some());
    assert!(!store.advance_webhook(&hook.id, winner, 2, 3, later, &[]).await.unwrap(), "the lease moved on");

    // A failure is logged and counted; with a reason it disables the endpoint and records
    // `webhook.disabled` in the feed.
    let failed = delivery(&hook.id, &ws.id, 3, None);
    store.webhook_failed(&hook.id, loser, &failed, later, Some("retries_exhausted")).await.unwrap();
    let now_disabled = store.get_webhook(&ws.id, &hook.id).await.unwrap();
    assert!(!now_disabled.enabled);
    assert_eq!(
        (now_disabled.failed_attempts, now_disabled.disabled_reason.as_deref()),
        (1, Some("retries_exhausted"))
    );
    let events = store.events_after(&ws.id, 3, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].kind.as_str(), events[0].object_id.as_str()),
        ("webhook.disabled", hook.id.as_str())
    );
    let log = store.webhook_deliveries(&ws.id, &hook.id, None, 10).await.unwrap();
    assert_eq!(log, vec![failed, sent], "newest first");

    // Another workspace sees none of it.
    let other = workspace(store, None).await;
    assert!(store.list_webhooks(&other.id).await.unwrap().is_empty());
    assert!(matches!(store.get_webhook(&other.id, &hook.id).await, Err(Error::NotFound(_))));
    assert!(store.webhook_deliveries(&other.id, &hook.id, None, 10).await.unwrap().is_empty());
}

pub(crate) async fn a_webhook_lease_is_renewed_only_by_its_holder(store: &dyn MetadataStore) {
    let ws = workspace(store, None).await;
    let at = now();
    let hook = store.create_webhook(&new_webhook(&ws.id, at)).await.unwrap();
    store.insert_folder(&folder(&ws.id, "new", None)).await.unwrap();
    assert!(store.claim_webhook(&hook.id, "node_a", at, at + Duration::seconds(5)).await.unwrap().is_some());

    // The holder's heartbeat carries the lease past its first end; nobody else's does.
    assert!(!store.renew_webhook(&hook.id, "node_b", at + Duration::seconds(60)).await.unwrap());
    assert!(store.renew_webhook(&hook.id, "node_a", at + Duration::seconds(10)).await.unwrap());
    let past_first = at + Duration::seconds(7);
    assert!(store.due_webhooks(past_first, 10).await.unwrap().is_empty(), "renewed: still leased");
    assert!(store
        .claim_webhook(&hook.id, "node_b", past_first, past_first + Duration::seconds(5))
        .await
        .unwrap()
        .is_none());

    // Once it runs out another node takes it, and the old holder's heartbeat no longer renews.
    let past_renewed = at + Duration::seconds(11);
    assert_eq!(store.due_webhooks(past_renewed, 10).await.unwrap(), vec![hook.id.clone()]);
    assert!(store
        .claim_webhook(&hook.id, "node_b", past_renewed, past_renewed + Duration::seconds(5))
        .await
        .unwrap()
        .is_some());
    assert!(!store.renew_webhook(&hook.id, "node_a", past_renewed + Duration::seconds(5)).await.unwrap());

    // Released, it is renewed by no one.
    store.release_webhook(&hook.id, "node_b").await.unwrap();
    assert!(!store.renew_webhook(&hook.id, "node_b", past_renewed + Duration::seconds(5)).await.unwrap());
}

pub(crate) async fn plain_webhook_secrets_are_found_and_replaced_only_as_read(store: &dyn MetadataStore) {
    let ws = workspace(store, None).await;
    let at = now();
    let sealed = NewWebhook { secret: "c2VhbGVk+/==".to_owned(), ..new_webhook(&ws.id, at) };
    let sealed = store.create_webhook(&sealed).await.unwrap();
    // `_` in the prefix is matched as itself, not as LIKE's any-character.
    let lookalike = NewWebhook { secret: "whsecXAAAA".to_owned(), ..new_webhook(&ws.id, at) };
    store.create_webhook(&lookalike).await.unwrap();
    let plain = store.create_webhook(&new_webhook(&ws.id, at)).await.unwrap();
    let rotated = store
        .create_webhook(&NewWebhook { secret: "c2VhbGVk".to_owned(), ..new_webhook(&ws.id, at) })
        .await
        .unwrap();
    let rotated = store
        .rotate_webhook_secret(&ws.id, &rotated.id, "c2VhbGVkMg==", at + Duration::hours(24), at)
        .await
        .unwrap();
    assert_eq!(rotated.previous_secret.as_deref(), Some("c2VhbGVk"));
    store
        .replace_webhook_secrets(
            &rotated.id,
            ("c2VhbGVkMg==", Some("c2VhbGVk")),
            ("c2VhbGVkMg==", Some("whsec_BBBB")),
        )
        .await
        .unwrap();

    let mut found: Vec<WebhookId> =
        store.webhooks_with_plain_secrets(10).await.unwrap().into_iter().map(|hook| hook.id).collect();
    found.sort();
    let mut expected = vec![plain.id.clone(), rotated.id.clone()];
    expected.sort();
    assert_eq!(found, expected, "the plain secret and the plain previous secret, not {}", sealed.id);

    // Replaced only from what was read: a rotation in between wins.
    assert!(!store
        .replace_webhook_secrets(&plain.id, ("whsec_AAAA", Some("whsec_ZZZZ")), ("x", None))
        .await
        .unwrap());
    assert!(!store.replace_webhook_secrets(&plain.id, ("whsec_OTHER", None), ("x", None)).await.unwrap());
    assert!(store
        .replace_webhook_secrets(&plain.id, ("whsec_AAAA", None), ("c2VhbGVkMw==", None))
        .await
        .unwrap());
    assert!(store
        .replace_webhook_secrets(
            &rotated.id,
            ("c2VhbGVkMg==", Some("whsec_BBBB")),
            ("c2VhbGVkMg==", Some("c2VhbGVkNA=="))
        )
        .await
        .unwrap());
    assert!(store.webhooks_with_plain_secrets(10).await.unwrap().is_empty());
    let plain = store.get_webhook(&ws.id, &plain.id).await.unwrap();
    assert_eq!((plain.secret.as_str(), plain.previous_secret), ("c2VhbGVkMw==", None));
    let rotated = store.get_webhook(&ws.id, &rotated.id).await.unwrap();
    assert_eq!(rotated.previous_secret.as_deref(), Some("c2VhbGVkNA=="));
}

pub(crate) async fn acknowledged_deliveries_are_logged_with_the_cursor_they_move(store: &dyn MetadataStore) {
    let (ws, hook, from, at) = endpoint_with_events(store, 3).await;
    assert!(store.claim_webhook(&hook.id, "node_a", at, at + Duration::seconds(5)).await.unwrap().is_some());
    let sent: Vec<Delivery> =
        (from + 1..=from + 3).map(|seq| delivery(&hook.id, &ws.id, seq, Some(200))).collect();
    assert!(store.advance_webhook(&hook.id, "node_a", from, from + 3, at, &sent).await.unwrap());
    assert_eq!(store.get_webhook(&ws.id, &hook.id).await.unwrap().delivered_seq, from + 3);
    let mut log = store.webhook_deliveries(&ws.id, &hook.id, None, 10).await.unwrap();
    log.reverse();
    assert_eq!(log, sent, "every acknowledged delivery, in one write");
}

pub(crate) async fn a_replay_takes_the_lease_from_the_node_that_was_sending(store: &dyn MetadataStore) {
    let (ws, hook, from, at) = endpoint_with_events(store, 3).await;
    let until = at + Duration::seconds(5);
    assert!(store.claim_webhook(&hook.id, "node_a", at, until).await.unwrap().is_some());
    assert!(store.advance_webhook(&hook.id, "node_a", from, from + 1, until, &[]).await.unwrap());

    // node_a has sent two more but not stored them when the replay after `from + 1` comes: the
    // stored cursor is already there, yet node_a must not move it past what is replayed.
    let rewound = store.rewind_webhook(&ws.id, &hook.id, from + 1, at).await.unwrap();
    assert_eq!(rewound.delivered_seq, from + 1);
    assert!(!store.advance_webhook(&hook.id, "node_a", from + 1, from + 3, until, &[]).await.unwrap());
    assert!(!store.renew_webhook(&hook.id, "node_a", until).await.unwrap());
    // Nobody else takes it while node_a may still be sending; once node_a gives it back, it is
    // due at once.
    assert!(store.due_webhooks(at, 10).await.unwrap().is_empty(), "still node_a's time");
    assert!(store.claim_webhook(&hook.id, "node_b", at, until).await.unwrap().is_none());
    store.release_webhook(&hook.id, "node_a").await.unwrap();
    assert_eq!(store.due_webhooks(at, 10).await.unwrap(), vec![hook.id.clone()], "due again at once");
    let claimed = store.claim_webhook(&hook.id, "node_b", at, until).await.unwrap().unwrap();
    assert_eq!(claimed.delivered_seq, from + 1);

    // A replay never moves the cursor forward.
    assert!(store.advance_webhook(&hook.id, "node_b", from + 1, from + 2, until, &[]).await.unwrap());
    assert_eq!(store.rewind_webhook(&ws.id, &hook.id, from + 3, at).await.unwrap().delivered_seq, from + 2);
}

pub(crate) async fn changing_an_endpoint_takes_the_lease_from_the_node_that_was_sending(
    store: &dyn MetadataStore,
) {
    let (ws, hook, from, at) = endpoint_with_events(store, 2).await;
    let until = at + Duration::seconds(5);
    assert!(store.claim_webhook(&hook.id, "node_a", at, until).await.unwrap().is_some());

    // A new URL: node_a, which sent to the old one, stores nothing more, and the endpoint is
    // due again from where its cursor is.
    let change = WebhookChange { url: Some("https://1.0.0.1/moved".to_owned()), ..Default::default() };
    let changed = store.update_webhook(&ws.id, &hook.id, &change, at).await.unwrap();
    assert_eq!((changed.url.as_str(), changed.delivered_seq), ("https://1.0.0.1/moved", from));
    assert!(!store.advance_webhook(&hook.id, "node_a", from, from + 2, until, &[]).await.unwrap());
    assert!(!store.renew_webhook(&hook.id, "node_a", until).await.unwrap());
    // A second change before node_a gives the lease back still lets node_a give it back.
    store.update_webhook(&ws.id, &hook.id, &change, at).await.unwrap();
    assert!(store.claim_webhook(&hook.id, "node_b", at, until).await.unwrap().is_none(), "node_a's time");
    // Had node_a died instead, the lease's time running out frees it.
    let past = until + Duration::seconds(1);
    assert_eq!(store.due_webhooks(past, 10).await.unwrap(), vec![hook.id.clone()]);
    // An attempt of node_a's that failed against the old URL is logged but schedules no retry
    // of the changed endpoint; node_a then gives the lease back.
    let failed = delivery(&hook.id, &ws.id, from + 1, None);
    store.webhook_failed(&hook.id, "node_a", &failed, until, None).await.unwrap();
    let after_failure = store.get_webhook(&ws.id, &hook.id).await.unwrap();
    assert_eq!((after_failure.failed_attempts, after_failure.next_attempt_at), (0, changed.next_attempt_at));
    assert!(store.claim_webhook(&hook.id, "node_b", at, until).await.unwrap().is_none(), "node_a's time");
    store.release_webhook(&hook.id, "node_a").await.unwrap();
    assert_eq!(store.due_webhooks(at, 10).await.unwrap(), vec![hook.id.clone()]);
    let claimed = store.claim_webhook(&hook.id, "node_b", at, until).await.unwrap().unwrap();
    assert_eq!((claimed.url.as_str(), claimed.delivered_seq), ("https://1.0.0.1/moved", from));
}

pub(crate) async fn events_are_pruned_oldest_first_and_never_one_an_enabled_endpoint_still_needs(
    store: &dyn MetadataStore,
) {
    // Workspace B's endpoint has acknowledged nothing of its three events; a disabled endpoint
    // of workspace C keeps nothing.
    let b = workspace(store, None).await;
    store.create_webhook(&new_webhook(&b.id, now())).await.unwrap();
    let c = workspace(store, None).await;
    let disabled =
        store.create_webhook(&NewWebhook { enabled: false, ..new_webhook(&c.id, now()) }).await.unwrap();
    assert!(!disabled.enabled);
    for n in 0..3 {
        store.insert_folder(&folder(&b.id, &format!("b-{n}"), None)).await.unwrap();
        store.insert_folder(&folder(&c.id, &format!("c-{n}"), None)).await.unwrap();
    }
    // Workspace A's events a few milliseconds apart, so the retention's edge falls between them.
    let a = workspace(store, None).await;
    for n in 0..4 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        store.insert_folder(&folder(&a.id, &format!("a-{n}"), None)).await.unwrap();
    }
    let written = store.events_after(&a.id, 0, 10).await.unwrap();
    assert_eq!(written.len(), 4);
    let edge = written[2].at;
    assert!(written[1].at < edge, "{written:?}");

    assert_eq!(store.prune_events(edge).await.unwrap(), 2 + 3, "A's two older events and all of C's");
    let seqs = |events: Vec<cabinet_core::EventRecord>| events.iter().map(|e| e.seq).collect::<Vec<_>>();
    assert_eq!(seqs(store.events_after(&a.id, 0, 10).await.unwrap()), [3, 4]);
    assert_eq!(seqs(store.events_after(&b.id, 0, 10).await.unwrap()), [1, 2, 3]);
    assert!(store.events_after(&c.id, 0, 10).await.unwrap().is_empty());
    // The numbering goes on after what was pruned.
    assert_eq!(store.newest_event(&c.id).await.unwrap(), 3);
    store.insert_folder(&folder(&c.id, "c-next", None)).await.unwrap();
    assert_eq!(seqs(store.events_after(&c.id, 0, 10).await.unwrap()), [4]);
    assert_eq!(store.prune_events(edge).await.unwrap(), 0, "nothing older is left that may go");
}
