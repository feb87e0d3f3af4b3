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

/// The dialect's routes, documented with the trailing slash; the same paths without it also work.
pub fn routes(state: AppState) -> OpenApiRouter {
    OpenApiRouter::with_openapi(CmsDoc::openapi())
        .routes(routes!(files::list_files, files::upload_file))
        .routes(routes!(files::get_file, files::update_file, files::delete_file))
        .route("/compat/cms/files", get(files::list_files).post(files::upload_file))
        .route(
            "/compat/cms/files/{api_id}",
            get(files::get_file).patch(files::update_file).delete(files::delete_file),
        )
        // Uploads and PATCH bodies are read with their own limits (see `files.rs`).
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}
