//! The CMS media library dialect, mounted at `/compat/cms`: Django REST framework-style
//! `GET|POST /files/` and `GET|PATCH|DELETE /files/{api_id}/` (with or without the trailing
//! slash) over the same core calls as the native API. `organization_id` is the workspace id;
//! `Authorization` takes `Bearer <key>` or `Token <key>`. See `shared/seeds/reference.md` §3.

pub mod auth;
pub mod error;
pub mod files;
pub mod shapes;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

/// Where the dialect is mounted.
pub const PREFIX: &str = "/compat/cms";

/// The dialect's tag in the OpenAPI document.
#[derive(OpenApi)]
#[openapi(tags((
    name = "compat-cms",
    description = "CMS media library dialect (DRF style): organization-scoped files, tags, \
                   page/page_size pagination, multipart or base64 upload, alt text/caption/copyright, \
                   usage and `force` delete. Auth: `Bearer <key>` or `Token <key>`; errors \
                   `{\"detail\"}` or `{\"field\": [\"message\"]}`."
)))]
pub struct CmsDoc;

/// The dialect's routes, with and without the trailing slash; both spellings are documented.
pub fn routes() -> OpenApiRouter<AppState> {
    let mut router = OpenApiRouter::with_openapi(CmsDoc::openapi())
        .routes(routes!(files::list_files, files::upload_file))
        .routes(routes!(files::get_file, files::update_file, files::delete_file))
        .route("/compat/cms/files", get(files::list_files).post(files::upload_file))
        .route(
            "/compat/cms/files/{api_id}",
            get(files::get_file).patch(files::update_file).delete(files::delete_file),
        )
        // Uploads and PATCH bodies are read with their own limits (see `files.rs`).
        .layer(DefaultBodyLimit::disable());
    document_unslashed(router.get_openapi_mut());
    router
}

/// Documents each path mounted without its trailing slash as well, with the same operations (their
/// ids suffixed `_unslashed`), so the fuzzer and the isolation matrix reach both spellings.
fn document_unslashed(api: &mut utoipa::openapi::OpenApi) {
    let aliases: Vec<(String, utoipa::openapi::PathItem)> = api
        .paths
        .paths
        .iter()
        .filter(|(path, _)| path.starts_with(PREFIX) && path.len() > 1 && path.ends_with('/'))
        .map(|(path, item)| {
            let mut item = item.clone();
            for operation in [&mut item.get, &mut item.post, &mut item.put, &mut item.patch, &mut item.delete]
                .into_iter()
                .flatten()
            {
                if let Some(id) = operation.operation_id.as_mut() {
                    id.push_str("_unslashed");
                }
            }
            (path.trim_end_matches('/').to_owned(), item)
        })
        .collect();
    for (path, item) in aliases {
        api.paths.paths.entry(path).or_insert(item);
    }
}
