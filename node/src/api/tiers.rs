//! `tier/ls|stat|move` and `index/query|export` over the RPC API: what `ipfs-kit tier` and
//! `ipfs-kit index` do while a daemon holds the repository (the CLI calls these then).
//!
//! Answers (ipfs-kit's own commands, so kubo has no shape for them; keys capitalised as kubo's):
//! - `tier/ls`: `{"Tiers":[{"Name","Blocks","Error","Detail"}]}` (`Blocks` null when the tier is
//!   not configured);
//! - `tier/stat?arg=<cid>`: `{"Cid","Tiers":[names]}`;
//! - `tier/move?arg=<cid>&arg=<tier>`: `{"Cid","Tier","Blocks","Moved","Bytes"}`;
//! - `index/query?where=&sort=&desc=&limit=`: `{"Matched","Rows":[row]}`, a row as
//!   [`row_json`] writes it;
//! - `index/export`: the Parquet file itself, streamed.

use super::stream::blocking_body;
use super::{blocking, parse_cid, ApiError, ApiState, Args};
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ipfs_kit_tiers::index::query::codec_name;
use ipfs_kit_tiers::index::{IndexRow, Query};
use ipfs_kit_tiers::tier::TierKind;
use serde_json::{json, Value};

/// A row of the index as JSON (the CLI's `index query --json` prints the same).
pub fn row_json(r: &IndexRow, tiers: &[String]) -> Value {
    let tier_names: Vec<&str> = (0..32)
        .filter(|i| r.tiers & (1 << i) != 0)
        .filter_map(|i| tiers.get(i).map(String::as_str))
        .collect();
    json!({
        "cid": r.cid.to_string(),
        "size": r.size,
        "codec": codec_name(r.codec),
        "pin_type": r.pin.name(),
        "pin_name": r.pin_name,
        "tiers": tier_names,
        "first_seen": r.first_seen_ms,
        "last_access": r.last_access_ms,
        "access_count": r.access_count,
        "heat": r.heat,
        "replication": r.replication,
    })
}

/// `POST /api/v0/tier/ls`.
pub async fn tier_ls(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let repo = state.repo.clone();
    let lines = blocking(move || Ok(repo.tier_ls()?)).await?;
    let tiers: Vec<Value> = lines
        .iter()
        .map(|l| {
            let (blocks, error) = match &l.blocks {
                None => (Value::Null, Value::Null),
                Some(Ok(n)) => (json!(n), Value::Null),
                Some(Err(e)) => (Value::Null, json!(e)),
            };
            json!({"Name": l.kind.as_str(), "Blocks": blocks, "Error": error, "Detail": l.detail})
        })
        .collect();
    Ok(Json(json!({ "Tiers": tiers })).into_response())
}

/// `POST /api/v0/tier/stat?arg=<cid>`.
pub async fn tier_stat(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let args = Args::parse(q.as_deref())?;
    let cid = parse_cid(&args.required_arg("cid")?)?;
    let repo = state.repo.clone();
    let at = blocking(move || Ok(repo.tier_stat(&cid)?)).await?;
    if at.is_empty() {
        return Err(ApiError::internal(format!("block {cid} is in no tier")));
    }
    let names: Vec<&str> = at.iter().map(|k| k.as_str()).collect();
    Ok(Json(json!({"Cid": cid.to_string(), "Tiers": names})).into_response())
}

/// `POST /api/v0/tier/move?arg=<cid>&arg=<tier>`.
pub async fn tier_move(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let args = Args::parse(q.as_deref())?;
    let all = args.all("arg");
    let [cid, tier] = all.as_slice() else {
        return Err(ApiError::bad_request(
            "arguments \"cid\" and \"tier\" are required",
        ));
    };
    let cid = parse_cid(cid)?;
    let to: TierKind = tier.parse().map_err(ApiError::internal)?;
    let repo = state.repo.clone();
    let r = blocking(move || Ok(repo.tier_move(&cid, to)?)).await?;
    Ok(Json(json!({
        "Cid": cid.to_string(),
        "Tier": to.as_str(),
        "Blocks": r.blocks,
        "Moved": r.moved,
        "Bytes": r.bytes,
    }))
    .into_response())
}

/// `POST /api/v0/index/query?where=&sort=&desc=&limit=`.
pub async fn index_query(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let args = Args::parse(q.as_deref())?;
    let limit = args.u64("limit")?.unwrap_or(20);
    let query = Query::parse(
        args.get("where").filter(|w| !w.is_empty()),
        args.get("sort").filter(|s| !s.is_empty()),
        args.bool("desc", false)?,
        usize::try_from(limit).unwrap_or(usize::MAX),
    )
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let repo = state.repo.clone();
    let answer = blocking(move || {
        let ix = repo
            .index()
            .ok_or_else(|| ApiError::internal("the index is off (tiers.index = false)"))?;
        let result = ix.query(&query).map_err(ApiError::internal)?;
        let tiers = ix.tier_names();
        let rows: Vec<Value> = result
            .rows()
            .map_err(ApiError::internal)?
            .iter()
            .map(|r| row_json(r, &tiers))
            .collect();
        Ok(json!({"Matched": result.matched, "Rows": rows}))
    })
    .await?;
    Ok(Json(answer).into_response())
}

/// `POST /api/v0/index/export`: the index as one Parquet file, streamed.
pub async fn index_export(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let repo = state.repo.clone();
    if repo.index().is_none() {
        return Err(ApiError::internal("the index is off (tiers.index = false)"));
    }
    let body = blocking_body(move |w| {
        let Some(ix) = repo.index() else {
            return Err("the index is off".into());
        };
        // Written inside the repository (same disk, private to it), streamed, then removed.
        static EXPORTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = EXPORTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = repo.path().join(format!("index-export-{n}.parquet.tmp"));
        let result = ix
            .export_parquet(&tmp)
            .map_err(|e| e.to_string())
            .and_then(|_| std::fs::File::open(&tmp).map_err(|e| e.to_string()))
            .and_then(|mut f| std::io::copy(&mut f, w).map_err(|e| e.to_string()));
        let _ = std::fs::remove_file(&tmp);
        result.map(|_| ())
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/vnd.apache.parquet"),
            (header::HeaderName::from_static("x-stream-output"), "1"),
        ],
        body,
    )
        .into_response())
}
