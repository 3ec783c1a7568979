//! `stats/provide`: the sweeping reprovider's counters in kubo's shape.
//!
//! kubo (`ipfs stats provide`, boxo's batched provider) answers `TotalProvides`,
//! `AvgProvideDuration`, `LastReprovideDuration` (Go `time.Duration`: integer nanoseconds) and
//! `LastReprovideBatchSize`. We add our own counters after them: the regions, lookups and
//! ADD_PROVIDER records of the sweep (see [`crate::net::provide::ReprovideStat`]).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::{ApiError, ApiState};

/// `POST /api/v0/stats/provide`.
pub async fn stats_provide(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let reprovider = state.reprovider.as_ref().ok_or_else(|| {
        ApiError::internal("the reprovider is not running (offline mode or no network node)")
    })?;
    let s = reprovider.stat();
    Ok(Json(json!({
        "TotalProvides": s.keys_announced,
        "AvgProvideDuration": s.avg_provide_nanos(),
        "LastReprovideDuration": s.last_sweep_nanos,
        "LastReprovideBatchSize": s.last_sweep_keys,
        "KeysProvided": s.keys_provided,
        "RegionsSwept": s.regions_swept,
        "Lookups": s.lookups,
        "RecordsSent": s.records_sent,
        "RecordsFailed": s.records_failed,
        "BatchesFailed": s.send_failures,
        "Sweeps": s.cycles,
        "NetworkSizeEstimate": s.network_size,
        "LastSweepStartedUnixMs": s.last_sweep_started_unix_ms,
        "NextSweepDueUnixMs": s.next_sweep_due_unix_ms,
    }))
    .into_response())
}
