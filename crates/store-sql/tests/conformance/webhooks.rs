//! Webhook endpoints: their cursor, their lease (one holder at a time, taken by a conditional
//! UPDATE) and the compare-and-set that moves the cursor.

use cabinet_core::webhooks::{Delivery, NewWebhook};
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
        id: DeliveryId::generate(),
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
    assert!(!store.advance_webhook(&hook.id, loser, 1, 2, until, None).await.unwrap());
    assert!(!store.advance_webhook(&hook.id, winner, 0, 2, until, None).await.unwrap());
    let sent = delivery(&hook.id, &ws.id, 2, Some(204));
    assert!(store.advance_webhook(&hook.id, winner, 1, 2, until, Some(&sent)).await.unwrap());
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
    assert!(!store.advance_webhook(&hook.id, winner, 2, 3, later, None).await.unwrap(), "the lease moved on");

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
