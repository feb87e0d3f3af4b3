//! What the core counts for `/metrics`, through the `metrics` facade (the server installs the
//! Prometheus recorder; without one, recording costs next to nothing). Every name is written here
//! once. No label names a file, a key or a workspace: labels take only a fixed set of values, so
//! what an exporter holds does not grow with the data.

use std::time::Duration;

use metrics::{counter, gauge, histogram};

use crate::model::FailureReason;

/// Uploads that ended, by `outcome` (`succeeded`, `held`, `failed`) and failure `reason`.
pub const UPLOADS: &str = "cabinet_uploads_total";
/// Uploads refused before their bytes were taken, by `reason` (`quota_exceeded`, or the code of
/// the size limit: `file_too_large`, …).
pub const RESERVATIONS_REFUSED: &str = "cabinet_reservations_refused_total";
/// Bodies being received or sent now, by `direction` (`upload`, `download`).
pub const TRANSFERS_IN_FLIGHT: &str = "cabinet_transfers_in_flight";
/// Thumbnails rendered, by `outcome` (`made`, `refused`, `failed`).
pub const THUMBNAILS: &str = "cabinet_thumbnails_total";
/// How long a thumbnail took to render, in seconds.
pub const THUMBNAIL_SECONDS: &str = "cabinet_thumbnail_render_seconds";
/// Background passes, by `job` and `outcome` (`ok`, `error`).
pub const MAINTENANCE_RUNS: &str = "cabinet_maintenance_runs_total";
/// What background passes found and fixed, by `job` and `finding`.
pub const MAINTENANCE_FINDINGS: &str = "cabinet_maintenance_findings_total";
/// Connections of the metadata store's pools, by `pool` and `state` (`busy`, `idle`).
pub const STORE_CONNECTIONS: &str = "cabinet_store_pool_connections";
/// The most connections each pool opens, by `pool`: busy at this, requests wait.
pub const STORE_CONNECTIONS_MAX: &str = "cabinet_store_pool_max_connections";

pub(crate) fn upload_succeeded() {
    counter!(UPLOADS, "outcome" => "succeeded", "reason" => "").increment(1);
}

pub(crate) fn upload_held() {
    counter!(UPLOADS, "outcome" => "held", "reason" => "").increment(1);
}

pub(crate) fn upload_failed(reason: FailureReason) {
    counter!(UPLOADS, "outcome" => "failed", "reason" => reason.as_str()).increment(1);
}

/// Counts a refusal of an upload before its bytes, when `error` is one.
pub(crate) fn count_if_reservation_refused(error: &crate::Error) {
    let reason = match error {
        crate::Error::QuotaExceeded { .. } => "quota_exceeded",
        crate::Error::TooLarge { code, .. } => code.as_str(),
        _ => return,
    };
    counter!(RESERVATIONS_REFUSED, "reason" => reason).increment(1);
}

pub(crate) fn thumbnail_rendered(outcome: &'static str, took: Duration) {
    counter!(THUMBNAILS, "outcome" => outcome).increment(1);
    histogram!(THUMBNAIL_SECONDS).record(took.as_secs_f64());
}

/// A background pass of `job` ended: `findings` are what it found, by kind.
pub fn maintenance_ran(job: &'static str, findings: &[(&'static str, u64)]) {
    counter!(MAINTENANCE_RUNS, "job" => job, "outcome" => "ok").increment(1);
    for &(finding, count) in findings {
        counter!(MAINTENANCE_FINDINGS, "job" => job, "finding" => finding).increment(count);
    }
}

/// A background pass of `job` failed.
pub fn maintenance_failed(job: &'static str) {
    counter!(MAINTENANCE_RUNS, "job" => job, "outcome" => "error").increment(1);
}

/// A body being received or sent: counted in flight from its creation until it is dropped.
pub struct TransferInFlight(&'static str);

impl TransferInFlight {
    pub fn upload() -> Self {
        Self::start("upload")
    }

    pub fn download() -> Self {
        Self::start("download")
    }

    fn start(direction: &'static str) -> Self {
        gauge!(TRANSFERS_IN_FLIGHT, "direction" => direction).increment(1.0);
        Self(direction)
    }
}

impl Drop for TransferInFlight {
    fn drop(&mut self) {
        gauge!(TRANSFERS_IN_FLIGHT, "direction" => self.0).decrement(1.0);
    }
}

impl crate::Cabinet {
    /// Sets the gauges sampled rather than counted (the store's pools), just before a scrape.
    pub fn sample_gauges(&self) {
        for pool in self.store.pools() {
            let busy = pool.open.saturating_sub(pool.idle);
            gauge!(STORE_CONNECTIONS, "pool" => pool.name, "state" => "busy").set(f64::from(busy));
            gauge!(STORE_CONNECTIONS, "pool" => pool.name, "state" => "idle").set(f64::from(pool.idle));
            gauge!(STORE_CONNECTIONS_MAX, "pool" => pool.name).set(f64::from(pool.max));
        }
    }
}
