//! `block/get|put|stat|rm` and `dag/get|put|export|import` over the RPC API.

use super::stream::{blocking_body, import_part};
use super::{blocking, parse_cid, ApiError, ApiState, Args};
use crate::dag;
use crate::unixfs::BlockSink as _;
use axum::extract::multipart::Field;
use axum::extract::{Multipart, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use cid::Cid;
use ipfs_kit_blockstore::{hash::HashFn, limits, Block};
use serde_json::json;

/// A codec by kubo's name (`raw`, `dag-pb`/`protobuf`, `dag-cbor`/`cbor`, `dag-json`).
pub fn codec_code(name: &str) -> Result<u64, ApiError> {
    Ok(match name {
        "raw" => dag::RAW_CODEC,
        "dag-pb" | "protobuf" => dag::DAG_PB_CODEC,
        "dag-cbor" | "cbor" => dag::DAG_CBOR_CODEC,
        "dag-json" => dag::DAG_JSON_CODEC,
        other => return Err(ApiError::internal(format!("unknown codec {other:?}"))),
    })
}

/// `block put`'s block: CIDv1 of `codec` over `data` hashed with `mhtype`. Bytes that do not
/// decode as the codec they claim are refused (shared with the CLI).
pub fn make_block(data: Bytes, codec_name: &str, mhtype: &str) -> Result<Block, ApiError> {
    if data.len() > limits::BLOCK_SIZE_BYTES_MAX {
        return Err(ApiError::too_large(format!(
            "block of {} bytes exceeds the {}-byte block limit",
            data.len(),
            limits::BLOCK_SIZE_BYTES_MAX
        )));
    }
    let hash = HashFn::from_name(mhtype)
        .ok_or_else(|| ApiError::internal(format!("unknown hash {mhtype:?}")))?;
    let codec = codec_code(codec_name)?;
    let cid = Cid::new_v1(codec, hash.digest(&data)?);
    if codec != dag::RAW_CODEC {
        dag::links::links(&cid, &data)
            .map_err(|e| ApiError::internal(format!("block is not valid {codec_name}: {e}")))?;
    }
    Ok(Block::new(cid, data)?)
}

/// Reads one uploaded part whole, refusing more than `max_bytes` (413).
pub async fn read_field(field: &mut Field<'_>, max_bytes: usize) -> Result<Bytes, ApiError> {
    let mut buf = Vec::new();
    while let Some(chunk) = field.chunk().await? {
        if buf.len() + chunk.len() > max_bytes {
            return Err(ApiError::too_large(format!(
                "upload exceeds the {max_bytes}-byte limit"
            )));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

/// The first file part of an upload, or kubo's 400.
async fn first_field<'a>(m: &'a mut Multipart) -> Result<Field<'a>, ApiError> {
    m.next_field()
        .await?
        .ok_or_else(|| ApiError::bad_request("file argument 'data' is required"))
}

/// `POST /api/v0/block/get?arg=<cid>`.
pub async fn block_get(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let args = Args::parse(q.as_deref())?;
    let cid = parse_cid(&args.required_arg("cid")?)?;
    super::ensure_block(&state, cid).await?;
    let repo = state.repo.clone();
    let data = blocking(move || {
        repo.blocks()
            .get(&cid)?
            .ok_or_else(|| ApiError::internal(format!("block {cid} not found locally")))
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], data).into_response())
}

/// `POST /api/v0/block/put` (multipart, one block): `{"Key","Size"}`.
pub async fn block_put(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
    mut multipart: Multipart,
) -> Result<Response, ApiError> {
    let args = Args::parse(q.as_deref())?;
    let codec = match args.get("format") {
        // kubo's deprecated --format: v0 means dag-pb.
        Some("v0") | Some("protobuf") => "dag-pb".to_owned(),
        Some("cbor") => "dag-cbor".to_owned(),
        _ => args.string("cid-codec", "raw"),
    };
    let mhtype = args.string("mhtype", "sha2-256");
    let pin = args.bool("pin", false)?;
    let mut field = first_field(&mut multipart).await?;
    let data = read_field(&mut field, limits::BLOCK_SIZE_BYTES_MAX).await?;
    let repo = state.repo.clone();
    let (cid, size) = blocking(move || {
        let size = data.len();
        let block = make_block(data, &codec, &mhtype)?;
        let cid = *block.cid();
        let session = repo.begin_write();
        session.put_blocks(&[block])?;
        if pin {
            repo.pin_add(&cid, false, None)?;
        }
        drop(session);
        Ok((cid, size))
    })
    .await?;
    super::provide(&state, cid).await;
    Ok(Json(json!({"Key": cid.to_string(), "Size": size})).into_response())
}

/// `POST /api/v0/block/stat?arg=<cid>`: `{"Key","Size"}`.
pub async fn block_stat(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let args = Args::parse(q.as_deref())?;
    let cid = parse_cid(&args.required_arg("cid")?)?;
    super::ensure_block(&state, cid).await?;
    let repo = state.repo.clone();
    let size = blocking(move || {
        repo.blocks()
            .size_of(&cid)?
            .ok_or_else(|| ApiError::internal(format!("block {cid} not found locally")))
    })
    .await?;
    Ok(Json(json!({"Key": cid.to_string(), "Size": size})).into_response())
}

/// `POST /api/v0/block/rm?arg=<cid>...&force=&quiet=`: NDJSON `{"Hash","Error"}` per block.
pub async fn block_rm(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let args = Args::parse(q.as_deref())?;
    let cids = args
        .required_args("cid")?
        .iter()
        .map(|s| parse_cid(s))
        .collect::<Result<Vec<_>, _>>()?;
    let force = args.bool("force", false)?;
    let quiet = args.bool("quiet", false)?;
    let repo = state.repo.clone();
    let body = blocking(move || {
        let mut out = Vec::new();
        for cid in cids {
            let error = if repo.is_pinned(&cid)?.is_some() {
                Some("pinned: cannot remove".to_owned())
            } else {
                let removed = repo.blocks().delete_many(&[cid])?;
                (removed == 0 && !force).then(|| "block not found".to_owned())
            };
            if quiet && error.is_none() {
                continue;
            }
            let line = json!({"Hash": cid.to_string(), "Error": error.unwrap_or_default()});
            push_line(&mut out, &line)?;
        }
        Ok(out)
    })
    .await?;
    Ok(ndjson(body))
}

/// An NDJSON answer (kubo's streamed command output): whole, or streamed as produced.
pub(crate) fn ndjson(body: impl Into<axum::body::Body>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::HeaderName::from_static("x-chunked-output"), "1"),
        ],
        body.into(),
    )
        .into_response()
}

/// Appends `v` as one NDJSON line.
pub(crate) fn push_line(out: &mut Vec<u8>, v: &impl serde::Serialize) -> Result<(), ApiError> {
    serde_json::to_writer(&mut *out, v).map_err(ApiError::internal)?;
    out.push(b'\n');
    Ok(())
}

/// `POST /api/v0/dag/get?arg=<path>&output-codec=`.
pub async fn dag_get(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let args = Args::parse(q.as_deref())?;
    let path = args.required_arg("ref")?;
    let codec = codec_code(&args.string("output-codec", "dag-json"))?;
    super::path_root(&path)?;
    // Only the blocks the path goes through (kubo's `dag get` fetches no more).
    let store = super::reading_store(&state);
    let out = blocking(move || Ok(dag::codec::dag_get(store.as_ref(), &path, codec)?)).await?;
    let ctype = match codec {
        dag::DAG_JSON_CODEC => "application/json",
        _ => "application/octet-stream",
    };
    Ok(([(header::CONTENT_TYPE, ctype)], out).into_response())
}

/// `POST /api/v0/dag/resolve?arg=<path>`: `{"Cid":{"/":cid},"RemPath":""}`, the block a path
/// names (through UnixFS directories, fetching only the blocks on the way).
pub async fn dag_resolve(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let args = Args::parse(q.as_deref())?;
    let path = args.required_arg("ref")?;
    let cid = super::resolve(&state, &path).await?;
    Ok(Json(json!({"Cid": {"/": cid.to_string()}, "RemPath": ""})).into_response())
}

/// `POST /api/v0/dag/put` (multipart): `{"Cid":{"/":...}}`.
pub async fn dag_put(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
    mut multipart: Multipart,
) -> Result<Response, ApiError> {
    let args = Args::parse(q.as_deref())?;
    let hash = args.string("hash", "sha2-256");
    let opts = dag::codec::DagPutOptions {
        input_codec: codec_code(&args.string("input-codec", "dag-json"))?,
        store_codec: codec_code(&args.string("store-codec", "dag-cbor"))?,
        hash: HashFn::from_name(&hash)
            .ok_or_else(|| ApiError::internal(format!("unknown hash {hash:?}")))?,
        allow_big_block: false,
    };
    let pin = args.bool("pin", false)?;
    let mut field = first_field(&mut multipart).await?;
    let input = read_field(&mut field, dag::codec::DAG_PUT_INPUT_BYTES_MAX).await?;
    let repo = state.repo.clone();
    let cid = blocking(move || {
        let block = dag::codec::dag_put_block(&input, &opts)?;
        let cid = *block.cid();
        let session = repo.begin_write();
        session.put_blocks(&[block])?;
        if pin {
            repo.pin_add(&cid, true, None)?;
        }
        drop(session);
        Ok(cid)
    })
    .await?;
    super::provide(&state, cid).await;
    Ok(Json(json!({"Cid": {"/": cid.to_string()}})).into_response())
}

/// `POST /api/v0/dag/export?arg=<cid>`: a CAR v1 stream.
pub async fn dag_export(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let args = Args::parse(q.as_deref())?;
    let cid = parse_cid(&args.required_arg("root")?)?;
    super::ensure_local(&state, cid).await?;
    let repo = state.repo.clone();
    // The root must be here before the headers go out.
    blocking(move || {
        if repo.blocks().has(&cid)? {
            Ok(())
        } else {
            Err(ApiError::internal(format!("block {cid} not found locally")))
        }
    })
    .await?;
    let store = state.repo.blocks().clone();
    let body = blocking_body(move |w| {
        crate::car::export_car(store.as_ref(), &[cid], w)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/vnd.ipld.car"),
            (header::HeaderName::from_static("x-stream-output"), "1"),
        ],
        body,
    )
        .into_response())
}

/// `POST /api/v0/dag/import` (multipart CAR files): NDJSON `{"Root":{"Cid","PinErrorMsg"}}`
/// per root, then `{"Stats":...}` with `stats=true`.
pub async fn dag_import(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
    mut multipart: Multipart,
) -> Result<Response, ApiError> {
    let args = Args::parse(q.as_deref())?;
    let pin_roots = args.bool("pin-roots", true)?;
    let stats = args.bool("stats", false)?;
    let mut roots: Vec<Cid> = Vec::new();
    let (mut blocks, mut bytes) = (0u64, 0u64);
    let mut files = 0usize;
    while let Some(mut field) = multipart.next_field().await? {
        files += 1;
        let repo = state.repo.clone();
        let imported = import_part(&mut field, move |mut reader| {
            repo.import_car(&mut reader, pin_roots)
        })
        .await?;
        blocks += imported.blocks;
        bytes += imported.block_bytes;
        roots.extend(imported.roots);
    }
    if files == 0 {
        return Err(ApiError::bad_request("file argument 'path' is required"));
    }
    let mut out = Vec::new();
    if pin_roots {
        for r in &roots {
            let line = json!({"Root": {"Cid": {"/": r.to_string()}, "PinErrorMsg": ""}});
            push_line(&mut out, &line)?;
        }
    }
    if stats {
        let line = json!({"Stats": {"BlockCount": blocks, "BlockBytesCount": bytes}});
        push_line(&mut out, &line)?;
    }
    Ok(ndjson(out))
}
