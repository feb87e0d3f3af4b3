//! The Serenities AI Files API dialect, mounted at `/compat/serenities/api/v1`: fifteen RPC-style
//! `POST /files/<procedure>` endpoints with camelCase JSON bodies and the
//! `{"error": {"code", "message"}}` envelope, over the same core calls as the native API.
//! See `shared/seeds/reference.md` §4.

pub mod access;
pub mod error;
pub mod files;
pub mod folders;
pub mod shapes;

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

/// Where the dialect is mounted; clients set their base URL to this.
pub const PREFIX: &str = "/compat/serenities/api/v1";

/// The dialect's tag in the OpenAPI document.
#[derive(OpenApi)]
#[openapi(tags((
    name = "compat-serenities",
    description = "Serenities AI Files API dialect: every endpoint is `POST /files/<procedure>` with a \
                   JSON body (`{}` when there are no params). Errors: `{\"error\": {\"code\": \
                   BAD_REQUEST|UNAUTHORIZED|FORBIDDEN|NOT_FOUND|CONFLICT|PAYLOAD_TOO_LARGE, \"message\"}}`; \
                   an exceeded storage quota is 413 PAYLOAD_TOO_LARGE with a message naming the quota."
)))]
pub struct SerenitiesDoc;

/// The dialect's routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(SerenitiesDoc::openapi())
        .routes(routes!(files::list))
        .routes(routes!(files::get))
        .routes(routes!(files::get_download_url))
        .routes(routes!(files::delete))
        .routes(routes!(files::rename))
        .routes(routes!(files::move_file))
        .routes(routes!(folders::list_folders))
        .routes(routes!(folders::create_folder))
        .routes(routes!(folders::rename_folder))
        .routes(routes!(folders::delete_folder))
        .routes(routes!(files::get_usage))
        .routes(routes!(access::set_access_rules))
        .routes(routes!(access::get_access_rules))
        .routes(routes!(files::get_quota))
        .routes(routes!(files::upload))
        // Bodies are read with their own limits (see `error.rs`).
        .layer(axum::extract::DefaultBodyLimit::disable())
}
