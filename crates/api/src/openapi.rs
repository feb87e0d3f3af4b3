//! The OpenAPI document's frame: info, tags and the bearer scheme. The paths come from the routes
//! themselves (see `router.rs`), so a mounted route is always a documented one.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The frame of `/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Cabinet",
        description = "A self-hostable, multi-tenant Files API: signed uploads, verified files, signed downloads.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerScheme),
    tags(
        (name = "uploads", description = "Upload sessions: reserve, send bytes to the signed URL, done"),
        (name = "files", description = "Finished files: details, metadata, favorites, references, trash"),
        (name = "folders", description = "The folder tree"),
        (name = "search", description = "Search and tags across the workspace"),
        (name = "trash", description = "Deleted files and folders, until purged"),
        (name = "workspace", description = "Quota and usage"),
        (name = "storage", description = "The signed storage endpoint; the URL is the credential"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
pub struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            crate::v1::BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key. Keys scoped to several workspaces name one with the \
                         X-Cabinet-Workspace header or the workspace_id query parameter.",
                    ))
                    .build(),
            ),
        );
    }
}
