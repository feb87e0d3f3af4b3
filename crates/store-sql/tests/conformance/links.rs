//! Signing keys and link generations.

use super::*;

pub(crate) async fn signing_keys_start_with_key_zero_and_retire_in_order(store: &dyn MetadataStore) {
    let keys = store.signing_keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!((keys[0].id, keys[0].salt.as_str(), keys[0].retired_at), (0, "", None));
    let at = now();
    assert_eq!(store.add_signing_key("aa11", at).await.unwrap(), 1);
    assert_eq!(store.add_signing_key("bb22", at).await.unwrap(), 2);
    assert_eq!(store.retire_signing_keys_before(2, at).await.unwrap(), 2);
    assert_eq!(store.retire_signing_keys_before(2, at).await.unwrap(), 0, "retiring is done once");
    let keys = store.signing_keys().await.unwrap();
    let summary: Vec<(u32, &str, bool)> =
        keys.iter().map(|key| (key.id, key.salt.as_str(), key.retired_at.is_some())).collect();
    assert_eq!(summary, [(0, "", true), (1, "aa11", true), (2, "bb22", false)]);
    assert_eq!(keys[2].created_at, at);
}

pub(crate) async fn link_generations_move_on_per_workspace(store: &dyn MetadataStore) {
    let (a, b) = (workspace(store, None).await, workspace(store, None).await);
    assert_eq!(store.link_generation(&a.id).await.unwrap(), 0);
    assert_eq!(store.advance_link_generation(&a.id).await.unwrap(), 1);
    assert_eq!(store.advance_link_generation(&a.id).await.unwrap(), 2);
    assert_eq!(store.link_generation(&a.id).await.unwrap(), 2);
    assert_eq!(store.link_generation(&b.id).await.unwrap(), 0, "another workspace's links are its own");
    let missing = WorkspaceId::generate();
    assert!(matches!(store.link_generation(&missing).await, Err(Error::NotFound(_))));
    assert!(matches!(store.advance_link_generation(&missing).await, Err(Error::NotFound(_))));
}

pub(crate) async fn a_public_read_rule_is_seen_at_any_level_and_only_in_its_workspace(
    store: &dyn MetadataStore,
) {
    use cabinet_core::rules::{AccessRules, Audience, RuleTarget};
    let (a, b) = (workspace(store, None).await, workspace(store, None).await);
    assert!(!store.any_public_read(&a.id).await.unwrap());
    let closed = AccessRules { read: Some(Audience::Authenticated), ..Default::default() };
    store.put_access_rules(&a.id, &RuleTarget::Workspace, &closed, now()).await.unwrap();
    assert!(!store.any_public_read(&a.id).await.unwrap(), "only `public` reading counts");
    let open = AccessRules { read: Some(Audience::Public), ..Default::default() };
    let file = RuleTarget::File(FileId::generate());
    store.put_access_rules(&a.id, &file, &open, now()).await.unwrap();
    assert!(store.any_public_read(&a.id).await.unwrap());
    assert!(!store.any_public_read(&b.id).await.unwrap(), "another workspace's rules are its own");
    store.put_access_rules(&a.id, &file, &closed, now()).await.unwrap();
    assert!(!store.any_public_read(&a.id).await.unwrap(), "closing the rule closes it");
}

pub(crate) async fn a_workspace_keeps_its_own_cors_list_until_it_inherits_again(store: &dyn MetadataStore) {
    let (a, b) = (workspace(store, None).await, workspace(store, None).await);
    assert_eq!(store.workspace_cors_origins(&a.id).await.unwrap(), None, "a new workspace inherits");
    store
        .set_workspace_cors_origins(&a.id, Some("https://app.example.com,http://localhost:3000"))
        .await
        .unwrap();
    assert_eq!(
        store.workspace_cors_origins(&a.id).await.unwrap().as_deref(),
        Some("https://app.example.com,http://localhost:3000")
    );
    assert_eq!(
        store.workspace_cors_origins(&b.id).await.unwrap(),
        None,
        "another workspace's list is its own"
    );
    store.set_workspace_cors_origins(&a.id, Some("none")).await.unwrap();
    assert_eq!(store.workspace_cors_origins(&a.id).await.unwrap().as_deref(), Some("none"));
    store.set_workspace_cors_origins(&a.id, None).await.unwrap();
    assert_eq!(store.workspace_cors_origins(&a.id).await.unwrap(), None, "back to the server's list");
    assert_eq!(
        store.get_workspace(&a.id).await.unwrap().name,
        a.name,
        "the rest of the workspace is untouched"
    );
    let missing = WorkspaceId::generate();
    assert!(matches!(store.workspace_cors_origins(&missing).await, Err(Error::NotFound(_))));
    assert!(matches!(store.set_workspace_cors_origins(&missing, Some("*")).await, Err(Error::NotFound(_))));
}
