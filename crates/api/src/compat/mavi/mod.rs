//! The MAVI dialect (`/compat/mavi/serve/api/v2`): memories.ai's asset API — a signed URL that
//! takes a multipart `file` of any size up to the workspace's limits and completes by itself, a
//! direct multipart upload, metadata, download and delete — over the same core calls as `/v1`.
//!
//! Asset ids are Cabinet file ids: `POST /upload/signed-url` answers with the id the file will
//! have (fixed when the upload starts), which names the pending upload and then the file, on
//! every surface; `POST /upload` answers with the file's id. An upload id (`upl_…`) is accepted
//! too wherever an `asset_id` is.

pub mod assets;
pub mod envelope;

use axum::extract::DefaultBodyLimit;

use axum::http::HeaderMap;
use cabinet_core::Caller;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::envelope::MaviResult;
use crate::credentials::{named_workspace, Presented};
use crate::surface::Surface;
use crate::AppState;

/// Where the dialect is mounted.
pub const PREFIX: &str = "/compat/mavi/serve/api/v2";
/// The OpenAPI tag of its routes.
pub const TAG: &str = "compat-mavi";
/// The security scheme its routes document: the raw key in `Authorization`.
pub const RAW_KEY: &str = "mavi_key";

/// The dialect's routes.
pub fn routes() -> OpenApiRouter<AppState> {
    let streaming = OpenApiRouter::new().routes(routes!(assets::upload)).layer(DefaultBodyLimit::disable());
    OpenApiRouter::new()
        .routes(routes!(assets::signed_url))
        .routes(routes!(assets::metadata))
        .routes(routes!(assets::download))
        .routes(routes!(assets::download_by_bucket_blob))
        .routes(routes!(assets::delete_asset))
        .merge(streaming)
    // No catch-all under the prefix: it would collide with `/{asset_id}`.
}

/// Authenticates `Authorization: <key>` (MAVI sends the raw key; `Bearer <key>` is accepted too).
/// A key of several workspaces names one with `X-Cabinet-Workspace`.
pub async fn caller(state: &AppState, headers: &HeaderMap) -> MaviResult<Caller> {
    let Some(secret) = Presented::of(headers, Surface::Mavi.schemes()).secret() else {
        return Err(cabinet_core::Error::Unauthenticated("missing key").into());
    };
    let workspace = named_workspace(headers);
    Ok(state.cabinet.authenticate(secret, workspace.as_deref()).await?)
}
