//! `refs`, `refs/local` and `dag/stat` (kubo's shapes): walks that report what they pass,
//! streamed as they go.

use super::{blocking, resolve, ApiError, ApiState, Args};
use crate::dag::links::DagError;
use crate::dag::refs::{self, DagStats, RefsOptions, RefsSeen};
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};

/// An NDJSON answer written on the blocking pool as it is produced.
fn streamed_ndjson<F>(produce: F) -> Response
where
    F: FnOnce(&mut dyn std::io::Write) -> Result<(), String> + Send + 'static,
{
    super::blocks::ndjson(super::stream::blocking_body(move |w| produce(w)))
}

fn line(w: &mut dyn std::io::Write, v: &serde_json::Value) -> std::io::Result<()> {
    serde_json::to_writer(&mut *w, v)?;
    w.write_all(b"\n")
}

/// `POST /api/v0/refs?arg=<path>...&format=&edges=&unique=&recursive=&max-depth=`: NDJSON
/// `{"Ref","Err"}` per link. A failure mid-walk (a block that does not come) is a last line
/// with `Err`, as kubo ends it.
pub async fn refs(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let args = Args::parse(q.as_deref())?;
    let paths = args.required_args("ipfs-path")?;
    let edges = args.bool("edges", false)?;
    let mut format = args.string("format", refs::REFS_FORMAT_DEFAULT);
    if edges {
        if format != refs::REFS_FORMAT_DEFAULT {
            return Err(ApiError::bad_request(
                "using format argument with edges is not allowed",
            ));
        }
        format = refs::REFS_FORMAT_EDGES.to_owned();
    }
    let max_depth = match args.get("max-depth") {
        None | Some("") => -1,
        Some(v) => v.parse::<i64>().map_err(|_| {
            ApiError::bad_request(format!(
                "could not convert value {v:?} to type int (for option \"max-depth\")"
            ))
        })?,
    };
    let opts = RefsOptions {
        format,
        unique: args.bool("unique", false)?,
        max_depth: if !args.bool("recursive", false)? {
            Some(1)
        } else {
            u64::try_from(max_depth).ok()
        },
    };
    let mut roots = Vec::with_capacity(paths.len());
    for p in &paths {
        roots.push(resolve(&state, p).await?);
    }
    // A walk of whole DAGs reads behind a bulk fetch of each (not one block at a time); a
    // bounded one reads what it lists.
    let mut readers = Vec::with_capacity(roots.len());
    for root in &roots {
        readers.push(match opts.max_depth {
            None => super::read_dag(&state, *root).await?,
            Some(_) => {
                // A directory's entries are its refs: their blocks fetched many at once.
                super::prefetch_dir_links(&state, *root).await?;
                super::read_parts(&state)
            }
        });
    }
    Ok(streamed_ndjson(move |w| {
        let mut seen = RefsSeen::default();
        for (root, reader) in roots.iter().zip(&readers) {
            let walked = refs::refs::<DagError>(reader.store(), root, &opts, &mut seen, &mut |r| {
                line(w, &serde_json::json!({"Ref": r, "Err": ""})).map_err(|e| DagError::Encode {
                    codec: "json",
                    reason: e.to_string(),
                })
            });
            if let Err(e) = walked {
                let _ = line(w, &serde_json::json!({"Ref": "", "Err": e.to_string()}));
                break;
            }
        }
        Ok(())
    }))
}

/// `POST /api/v0/refs/local`: NDJSON `{"Ref","Err"}` for every block here (CIDv1 raw of its
/// multihash, as kubo lists its multihash-keyed store).
pub async fn refs_local(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let repo = state.repo.clone();
    let cids = blocking(move || Ok(repo.blocks().all_cids()?)).await?;
    Ok(streamed_ndjson(move |w| {
        for c in cids {
            line(w, &serde_json::json!({"Ref": c.to_string(), "Err": ""}))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }))
}

/// `POST /api/v0/dag/stat?arg=<root>...&progress=`: each DAG's distinct blocks and bytes and
/// what they share (kubo's `DagStatSummary`); with `progress` (kubo's default), a line after
/// each block before the summary.
pub async fn dag_stat(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let args = Args::parse(q.as_deref())?;
    let paths = args.required_args("root")?;
    let progress = args.bool("progress", true)?;
    let mut readers = Vec::with_capacity(paths.len());
    for p in &paths {
        let root = resolve(&state, p).await?;
        readers.push((root, super::read_dag(&state, root).await?));
    }
    if !progress {
        let stats = blocking(move || {
            let mut stats = DagStats::new();
            for (root, reader) in &readers {
                stats.add::<ApiError>(reader.store(), root, &mut |_| Ok(()))?;
            }
            Ok(stats)
        })
        .await?;
        return Ok(axum::Json(stats.to_json(true)).into_response());
    }
    Ok(streamed_ndjson(move |w| {
        let mut stats = DagStats::new();
        for (root, reader) in &readers {
            stats
                .add::<ApiError>(reader.store(), root, &mut |s| {
                    line(w, &s.to_json(false)).map_err(ApiError::internal)
                })
                .map_err(|e| e.to_string())?;
        }
        line(w, &stats.to_json(true)).map_err(|e| e.to_string())
    }))
}
