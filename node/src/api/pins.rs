//! `pin/add|ls|rm` and `repo/stat|gc` over the RPC API.

use super::blocks::ndjson;
use super::{blocking, ApiError, ApiState, Args};
use crate::repo::{PinFilter, PinKind};
use crate::unixfs::export;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

/// `POST /api/v0/pin/add?arg=<path>...&recursive=&name=`: `{"Pins":[...]}`.
pub async fn pin_add(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let args = Args::parse(q.as_deref())?;
    let paths = args.required_args("ipfs-path")?;
    let recursive = args.bool("recursive", true)?;
    let name = args
        .get("name")
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    // Each fetch holds a temporary pin on its DAG until the real pin is in.
    // Only the blocks on each path, then the DAG (or block) the path names.
    let mut fetched = Vec::new();
    let mut cids = Vec::new();
    for p in &paths {
        super::path_root(p)?;
        let cid = super::resolve(&state, p).await?;
        if recursive {
            fetched.push(super::ensure_local(&state, cid).await?);
        } else {
            super::ensure_block(&state, cid).await?;
        }
        cids.push(cid);
    }
    let repo = state.repo.clone();
    let pinned = blocking(move || {
        let mut pinned = Vec::new();
        for cid in cids {
            repo.pin_add(&cid, recursive, name.clone())?;
            pinned.push(cid);
        }
        drop(fetched);
        Ok(pinned)
    })
    .await?;
    for cid in &pinned {
        super::provide(&state, *cid).await;
    }
    let pins: Vec<String> = pinned.iter().map(|c| c.to_string()).collect();
    Ok(Json(json!({ "Pins": pins })).into_response())
}

/// `POST /api/v0/pin/update?arg=<from>&arg=<to>&unpin=`: `{"Pins":[from,to]}`. `from` must be
/// pinned recursively; `to`'s DAG is fetched, then pinned in `from`'s place (with its name)
/// in one transaction, `from` kept too with `unpin=false`.
pub async fn pin_update(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let args = Args::parse(q.as_deref())?;
    let paths = args.all("arg");
    let [from, to] = paths.as_slice() else {
        return Err(ApiError::bad_request(
            "pin update takes two arguments: from-path and to-path",
        ));
    };
    let unpin = args.bool("unpin", true)?;
    let from = super::resolve(&state, from).await?;
    let to = super::resolve(&state, to).await?;
    let fetched = super::ensure_local(&state, to).await?;
    let repo = state.repo.clone();
    blocking(move || {
        repo.pin_update(&from, &to, unpin)?;
        drop(fetched);
        Ok(())
    })
    .await?;
    super::provide(&state, to).await;
    Ok(Json(json!({ "Pins": [from.to_string(), to.to_string()] })).into_response())
}

/// `POST /api/v0/pin/rm?arg=<path>...`: `{"Pins":[...]}`.
pub async fn pin_rm(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let args = Args::parse(q.as_deref())?;
    let paths = args.required_args("ipfs-path")?;
    let repo = state.repo.clone();
    let removed = blocking(move || {
        let mut removed = Vec::new();
        for p in paths {
            let cid = export::resolve_path(repo.blocks().as_ref(), &p)?;
            repo.pin_rm(&cid)?;
            removed.push(cid.to_string());
        }
        Ok(removed)
    })
    .await?;
    Ok(Json(json!({ "Pins": removed })).into_response())
}

/// `POST /api/v0/pin/ls?arg=&type=&quiet=&stream=&names=`: `{"Keys":{cid:{"Type"}}}`, or with
/// `stream=true` NDJSON `{"Cid","Type"}` lines.
pub async fn pin_ls(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let args = Args::parse(q.as_deref())?;
    let filter = match args.string("type", "all").as_str() {
        "all" => PinFilter::All,
        "recursive" => PinFilter::Recursive,
        "direct" => PinFilter::Direct,
        "indirect" => PinFilter::Indirect,
        other => {
            return Err(ApiError::internal(format!(
                "invalid type '{other}', must be one of {{direct, indirect, recursive, all}}"
            )))
        }
    };
    let stream = args.bool("stream", false)?;
    let names = args.bool("names", false)?;
    let name_filter = args.get("name").map(str::to_owned);
    let paths = args.all("arg");
    let repo = state.repo.clone();
    let entries = blocking(move || {
        let mut found = Vec::new();
        if paths.is_empty() {
            found = repo.pin_ls(filter, None)?;
        } else {
            for p in &paths {
                let cid = export::resolve_path(repo.blocks().as_ref(), p)?;
                let these = repo.pin_ls(filter, Some(&cid))?;
                if these.is_empty() {
                    return Err(ApiError::internal(format!("path '{p}' is not pinned")));
                }
                found.extend(these);
            }
        }
        Ok(found)
    })
    .await?;
    let kind_text = |kind: PinKind, via: Option<cid::Cid>| match (kind, via) {
        (PinKind::Indirect, Some(root)) => format!("indirect through {root}"),
        (k, _) => k.name().to_owned(),
    };
    let entries = entries
        .into_iter()
        .filter(|e| {
            name_filter
                .as_deref()
                .is_none_or(|n| e.name.as_deref() == Some(n))
        })
        .collect::<Vec<_>>();
    if stream {
        let mut out = Vec::new();
        for e in entries {
            let mut line = Map::new();
            line.insert("Cid".into(), Value::String(e.cid.to_string()));
            line.insert("Type".into(), Value::String(kind_text(e.kind, e.via)));
            if names {
                line.insert("Name".into(), Value::String(e.name.unwrap_or_default()));
            }
            super::blocks::push_line(&mut out, &line)?;
        }
        return Ok(ndjson(out));
    }
    let mut keys = Map::new();
    for e in entries {
        let mut v = Map::new();
        v.insert("Type".into(), Value::String(kind_text(e.kind, e.via)));
        if names {
            v.insert("Name".into(), Value::String(e.name.unwrap_or_default()));
        }
        keys.insert(e.cid.to_string(), Value::Object(v));
    }
    Ok(Json(json!({ "Keys": keys })).into_response())
}

/// `POST /api/v0/repo/stat`: kubo's `{"RepoSize","StorageMax","NumObjects","RepoPath","Version"}`.
pub async fn repo_stat(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let args = Args::parse(q.as_deref())?;
    let size_only = args.bool("size-only", false)?;
    let repo = state.repo.clone();
    let s = blocking(move || Ok(repo.stat()?)).await?;
    if size_only {
        return Ok(
            Json(json!({"RepoSize": s.repo_size, "StorageMax": s.storage_max})).into_response(),
        );
    }
    Ok(Json(json!({
        "RepoSize": s.repo_size,
        "StorageMax": s.storage_max,
        "NumObjects": s.num_objects,
        "RepoPath": s.path.display().to_string(),
        "Version": s.version,
    }))
    .into_response())
}

/// `POST /api/v0/repo/gc`: NDJSON `{"Key":{"/":cid}}` per removed block.
pub async fn repo_gc(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let args = Args::parse(q.as_deref())?;
    let quiet = args.bool("quiet", false)?;
    let repo = state.repo.clone();
    let report = blocking(move || Ok(repo.gc()?)).await?;
    let mut out = Vec::new();
    if !quiet {
        for cid in &report.removed {
            let line = json!({"Key": {"/": cid.to_string()}});
            super::blocks::push_line(&mut out, &line)?;
        }
    }
    Ok(ndjson(out))
}

/// `POST /api/v0/repo/verify`: NDJSON `{"Msg","Progress"}`: a line per corrupt block, then
/// kubo's closing line; a corrupt block makes the last line an error, as kubo ends it.
pub async fn repo_verify(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let repo = state.repo.clone();
    let bad = blocking(move || Ok(repo.verify()?)).await?;
    let mut out = Vec::new();
    let put = super::blocks::push_line;
    for cid in &bad {
        put(
            &mut out,
            &json!({"Msg": format!("block {cid} was corrupt"), "Progress": 0}),
        )?;
    }
    if bad.is_empty() {
        put(
            &mut out,
            &json!({"Msg": "verify complete, all blocks validated.", "Progress": 0}),
        )?;
    } else {
        put(
            &mut out,
            &json!({
                "Message": format!("verify complete, some blocks were corrupt ({} of them)", bad.len()),
                "Code": 0,
                "Type": "error",
            }),
        )?;
    }
    Ok(ndjson(out))
}

/// `POST /api/v0/repo/version`: `{"Version"}`, the repository format's version.
pub async fn repo_version() -> Response {
    Json(json!({"Version": crate::repo::REPO_VERSION.to_string()})).into_response()
}
