//! Every route Cabinet serves, in one place.

use axum::extract::DefaultBodyLimit;
use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use crate::openapi::ApiDoc;
use crate::surface::Surface;
use crate::v1::{access, audit, events, files, folders, quota, search, uploads, webhooks};
use crate::{compat, console, health, storage, AppState};

/// The routes and the OpenAPI documents they make, one per surface (native first).
pub fn routes(state: AppState) -> (Router, Vec<(Surface, utoipa::openapi::OpenApi)>) {
    let (json_routes, mut api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(uploads::create_upload))
        .routes(routes!(uploads::get_upload, uploads::cancel_upload))
        .routes(routes!(uploads::complete_upload))
        .routes(routes!(uploads::create_part_urls, uploads::list_parts))
        .routes(routes!(files::list_files))
        .routes(routes!(files::get_file, files::update_file, files::delete_file))
        .routes(routes!(files::toggle_favorite))
        .routes(routes!(files::restore_file))
        .routes(routes!(files::list_references, files::add_reference, files::remove_reference))
        .routes(routes!(files::download_url))
        .routes(routes!(files::get_content))
        .routes(routes!(files::get_thumbnail))
        .routes(routes!(folders::list_folders, folders::create_folder))
        .routes(routes!(folders::get_folder, folders::update_folder, folders::delete_folder))
        .routes(routes!(folders::list_children))
        .routes(routes!(folders::toggle_favorite))
        .routes(routes!(folders::restore_folder))
        .routes(routes!(search::search))
        .routes(routes!(search::list_tags))
        .routes(routes!(search::list_trash, search::empty_trash))
        .routes(routes!(access::create_token))
        .routes(routes!(access::revoke_tokens))
        .routes(routes!(access::revoke_links))
        .routes(routes!(access::get_workspace_rules, access::put_workspace_rules))
        .routes(routes!(access::get_file_rules, access::put_file_rules))
        .routes(routes!(access::get_folder_rules, access::put_folder_rules))
        .routes(routes!(quota::get_quota))
        .routes(routes!(quota::get_usage))
        .routes(routes!(events::list_events))
        .routes(routes!(audit::list_audit))
        .routes(routes!(webhooks::create_webhook, webhooks::list_webhooks))
        .routes(routes!(webhooks::get_webhook, webhooks::update_webhook, webhooks::delete_webhook))
        .routes(routes!(webhooks::rotate_secret))
        .routes(routes!(webhooks::replay))
        .routes(routes!(webhooks::list_deliveries))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .with_state(state.clone())
        .split_for_parts();
    // Routes that stream bodies enforce their own limits, by declared size or configuration.
    let (streaming_routes, streaming_api) = OpenApiRouter::new()
        .routes(routes!(files::upload_file))
        .routes(routes!(storage::put_upload, storage::post_upload))
        .routes(routes!(storage::put_part))
        .routes(routes!(storage::get_file))
        .routes(routes!(storage::get_thumbnail))
        .routes(routes!(access::public_file))
        .routes(routes!(access::public_file_version))
        .layer(DefaultBodyLimit::disable())
        .with_state(state.clone())
        .split_for_parts();
    api.merge(streaming_api);
    // Compatibility dialects: each documents its own error shapes under its own tag, and reads
    // its bodies under its own limits.
    let (compat_routes, compat_api) = OpenApiRouter::new()
        .merge(compat::mavera::routes())
        .merge(compat::mavi::routes())
        .merge(compat::cms::routes())
        .merge(compat::serenities::routes())
        .with_state(state.clone())
        .split_for_parts();
    api.merge(compat_api);
    crate::openapi::document_common_responses(&mut api);
    crate::openapi::document_optional_bodies(
        &mut api,
        &[crate::compat::serenities::PREFIX, crate::compat::mavera::PREFIX, crate::compat::cms::PREFIX],
    );
    crate::v1::uploads::document_part_size_rule(&mut api);
    crate::openapi::document_binary_bodies(&mut api);
    crate::openapi::document_item_union(&mut api);
    crate::openapi::document_operation_ids(&mut api);
    crate::openapi::document_error_examples(&mut api);
    crate::openapi::document_links(&mut api);
    // One document per surface, each at `<mount>/openapi.json`; `/docs` picks between them.
    let documents = crate::openapi::split(api);
    let urls = documents
        .iter()
        .map(|(surface, document)| {
            let url = utoipa_swagger_ui::Url::with_primary(
                surface.title(),
                surface.document_path(),
                *surface == Surface::Native,
            );
            (url, document.clone())
        })
        .collect();
    let router =
        json_routes.merge(streaming_routes).merge(compat_routes).merge(SwaggerUi::new("/docs").urls(urls));
    // Resumable upload protocols: headers, not JSON, so outside the documents.
    let router = router
        .merge(crate::tus::routes().with_state(state.clone()))
        .merge(crate::resumable::routes().with_state(state.clone()));
    // The web console: a UI over the routes above, so not in their document.
    let router = router.merge(console::routes(state.cabinet.storage_origin().as_deref()));
    // Server-sent events: a stream that does not end, outside the document (the feed it streams is
    // `GET /v1/events`).
    let router = router.merge(
        axum::Router::new()
            .route("/v1/events/stream", axum::routing::get(events::stream_events))
            .with_state(state.clone()),
    );
    (router, documents)
}
