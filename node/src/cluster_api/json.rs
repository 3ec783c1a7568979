//! ipfs-cluster's JSON shapes (`api/types.go` of ipfs-cluster v1): `ID`, `Version`, `Pin`
//! (with its `PinOptions` inline), `GlobalPinInfo` and `PinInfoShort`, `Error`. Field names,
//! string enums (`"recursive"`, `"pin"`, `"pinned"`) and Go's RFC 3339 times are ipfs-cluster's,
//! so its clients (`ipfs-cluster-ctl`, the Go and JS REST clients) read our answers.
//!
//! Also the conversions of the query parameters of `POST /pins/{cid}` (`name`, `mode`,
//! `replication[-min|-max]`, `user-allocations`, `expire-in`, `expire-at`, `meta-*`) into a
//! cluster-sync [`PinSpec`].

use std::collections::BTreeMap;

use cid::Cid;
use ipfs_kit_cluster_sync::{PeerKey, Pin, PinMode, PinSpec};
use serde::{Deserialize, Serialize};

use crate::cluster::{PeerPinStatus, PinStatus};

/// Go's zero `time.Time` as ipfs-cluster prints it (a time that was never set).
pub const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";
/// Longest `expire-in` / `expire-at` value accepted.
pub const DURATION_TEXT_BYTES_MAX: usize = 64;
/// Longest `expire-in` accepted: 100 years.
pub const EXPIRE_IN_MS_MAX: u64 = 100 * 365 * 24 * 3600 * 1000;

/// ipfs-cluster's `Error`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorJson {
    pub code: u16,
    pub message: String,
}

/// ipfs-cluster's `IPFSID`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct IpfsIdJson {
    pub id: String,
    pub addresses: Vec<String>,
    pub error: String,
}

/// ipfs-cluster's `ID` (`GET /id`, each line of `GET /peers`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct IdJson {
    pub id: String,
    pub addresses: Vec<String>,
    pub cluster_peers: Vec<String>,
    pub cluster_peers_addresses: Vec<String>,
    pub version: String,
    pub commit: String,
    pub rpc_protocol_version: String,
    pub error: String,
    pub ipfs: IpfsIdJson,
    pub peername: String,
}

/// ipfs-cluster's `Version`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VersionJson {
    pub version: String,
}

/// ipfs-cluster's `Pin`, `PinOptions` flattened in as Go embeds it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PinJson {
    pub replication_factor_min: i32,
    pub replication_factor_max: i32,
    pub name: String,
    pub mode: String,
    pub shard_size: u64,
    pub user_allocations: Vec<String>,
    pub expire_at: String,
    pub metadata: BTreeMap<String, String>,
    pub origins: Vec<String>,
    pub cid: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub allocations: Vec<String>,
    pub max_depth: i32,
    pub reference: Option<String>,
    pub timestamp: String,
}

/// ipfs-cluster's `PinInfoShort`: one peer's entry of a `GlobalPinInfo`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PinInfoShortJson {
    pub peername: String,
    pub ipfs_peer_id: String,
    pub ipfs_peer_addresses: Vec<String>,
    pub status: String,
    pub timestamp: String,
    pub error: String,
    pub attempt_count: u32,
    pub priority_pin: bool,
}

/// ipfs-cluster's `GlobalPinInfo` (`GET /pins`, `GET /pins/{cid}`, recover).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GlobalPinInfoJson {
    pub cid: String,
    pub name: String,
    pub allocations: Vec<String>,
    pub origins: Vec<String>,
    pub created: String,
    pub metadata: BTreeMap<String, String>,
    /// Peer id → that peer's state, as ipfs-cluster keys it.
    pub peer_map: BTreeMap<String, PinInfoShortJson>,
}

fn peers(keys: &[PeerKey]) -> Vec<String> {
    keys.iter().map(|k| k.to_string()).collect()
}

/// A pin as ipfs-cluster prints it.
pub fn pin_json(cid: &Cid, spec: &PinSpec) -> PinJson {
    PinJson {
        replication_factor_min: spec.replication_factor_min,
        replication_factor_max: spec.replication_factor_max,
        name: spec.name.clone(),
        mode: spec.mode.as_str().to_owned(),
        shard_size: 0,
        user_allocations: peers(&spec.user_allocations),
        expire_at: spec
            .expire_at_ms
            .map_or_else(|| GO_ZERO_TIME.to_owned(), rfc3339_from_ms),
        metadata: spec.metadata.clone(),
        origins: Vec::new(),
        cid: cid.to_string(),
        kind: "pin".into(),
        allocations: peers(&spec.allocations),
        max_depth: match spec.mode {
            PinMode::Recursive => -1,
            PinMode::Direct => 0,
        },
        reference: None,
        // The pinset keeps no submission time.
        timestamp: GO_ZERO_TIME.into(),
    }
}

/// A cluster-sync pin as ipfs-cluster prints it.
pub fn from_pin(p: &Pin) -> PinJson {
    pin_json(&p.cid, &p.spec)
}

fn short(p: &PeerPinStatus) -> PinInfoShortJson {
    PinInfoShortJson {
        peername: String::new(),
        ipfs_peer_id: p.peer.to_string(),
        ipfs_peer_addresses: Vec::new(),
        status: p.status.as_str().to_owned(),
        timestamp: rfc3339_from_ms(p.ts_ms),
        error: p.error.clone().unwrap_or_default(),
        attempt_count: p.attempts,
        priority_pin: false,
    }
}

/// A pin's cluster-wide status as ipfs-cluster prints it.
pub fn global_pin_info(s: &PinStatus) -> GlobalPinInfoJson {
    let (name, allocations, metadata) = match &s.pin {
        Some(spec) => (
            spec.name.clone(),
            peers(&spec.allocations),
            spec.metadata.clone(),
        ),
        None => (String::new(), Vec::new(), BTreeMap::new()),
    };
    GlobalPinInfoJson {
        cid: s.cid.to_string(),
        name,
        allocations,
        origins: Vec::new(),
        created: GO_ZERO_TIME.into(),
        metadata,
        peer_map: s
            .peers
            .iter()
            .map(|p| (p.peer.to_string(), short(p)))
            .collect(),
    }
}

/// Whether any peer's state matches ipfs-cluster's `filter` (a comma-separated list of states;
/// `error` and `queued` are its composite filters).
pub fn status_matches(s: &GlobalPinInfoJson, filter: &[String]) -> bool {
    if filter.is_empty() {
        return true;
    }
    s.peer_map.values().any(|p| {
        filter.iter().any(|f| match f.as_str() {
            "error" => p.status.ends_with("error"),
            "queued" => p.status.ends_with("queued"),
            other => p.status == other,
        })
    })
}

/// ipfs-cluster's tracker state names, the values `filter` accepts.
pub const STATUS_FILTERS: &[&str] = &[
    "error",
    "cluster_error",
    "pin_error",
    "unpin_error",
    "pinned",
    "pinning",
    "unpinning",
    "unpinned",
    "remote",
    "pin_queued",
    "unpin_queued",
    "queued",
    "sharded",
    "unexpectedly_unpinned",
];

/// Reads the options of `POST /pins/{cid}` from its query parameters (ipfs-cluster's
/// `PinOptions.FromQuery`). `now_ms` turns `expire-in` into a time.
pub fn pin_options(args: &crate::api::Args, now_ms: u64) -> Result<PinSpec, String> {
    let mut spec = PinSpec {
        name: args.string("name", ""),
        ..PinSpec::default()
    };
    spec.mode = match args.get("mode").unwrap_or("") {
        "" | "recursive" => PinMode::Recursive,
        "direct" => PinMode::Direct,
        other => return Err(format!("unknown pin mode {other:?} (recursive or direct)")),
    };
    let int = |key: &str| -> Result<Option<i32>, String> {
        match args.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse::<i32>()
                .map(Some)
                .map_err(|_| format!("parameter {key} is invalid: {v:?}")),
        }
    };
    let both = int("replication")?;
    spec.replication_factor_min = int("replication-min")?
        .or(both)
        .unwrap_or(spec.replication_factor_min);
    spec.replication_factor_max = int("replication-max")?
        .or(both)
        .unwrap_or(spec.replication_factor_max);
    // ipfs-cluster: 0 means "the cluster's default", which is -1 (everywhere) here.
    if spec.replication_factor_min == 0 {
        spec.replication_factor_min = -1;
    }
    if spec.replication_factor_max == 0 {
        spec.replication_factor_max = -1;
    }
    if let Some(list) = args.get("user-allocations").filter(|s| !s.is_empty()) {
        for p in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if spec.user_allocations.len() >= ipfs_kit_cluster_sync::limits::PIN_ALLOCATIONS_MAX {
                return Err(format!(
                    "more than {} user allocations",
                    ipfs_kit_cluster_sync::limits::PIN_ALLOCATIONS_MAX
                ));
            }
            let id: libp2p::PeerId = p.parse().map_err(|_| format!("invalid peer id {p:?}"))?;
            let key = PeerKey::from_peer_id(&id)
                .ok_or_else(|| format!("peer id {p} is not an Ed25519 key"))?;
            spec.user_allocations.push(key);
        }
    }
    if let Some(at) = args.get("expire-at").filter(|s| !s.is_empty()) {
        spec.expire_at_ms = Some(parse_rfc3339_ms(at).ok_or("expire-at cannot be parsed")?);
    } else if let Some(d) = args.get("expire-in").filter(|s| !s.is_empty()) {
        let ms = parse_go_duration_ms(d).ok_or("expire-in cannot be parsed")?;
        if ms < 1000 {
            return Err("expire-in duration too short".into());
        }
        spec.expire_at_ms = Some(now_ms.saturating_add(ms));
    }
    for (k, v) in args.pairs() {
        if let Some(key) = k.strip_prefix("meta-").filter(|k| !k.is_empty()) {
            spec.metadata.insert(key.to_owned(), v.to_owned());
        }
    }
    spec.validate().map_err(|e| e.to_string())?;
    Ok(spec)
}

/// Parses a Go duration (`90s`, `1h30m`, `500ms`, `2.5h`) into milliseconds, up to
/// [`EXPIRE_IN_MS_MAX`].
pub fn parse_go_duration_ms(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > DURATION_TEXT_BYTES_MAX {
        return None;
    }
    let mut rest = text;
    let mut total_ms = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit_ms = match &rest[..unit_len] {
            "ns" => 1e-6,
            "us" | "µs" => 1e-3,
            "ms" => 1.0,
            "s" => 1e3,
            "m" => 60e3,
            "h" => 3600e3,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total_ms += value * unit_ms;
    }
    if !total_ms.is_finite() || total_ms > EXPIRE_IN_MS_MAX as f64 {
        return None;
    }
    Some(total_ms as u64)
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Unix milliseconds as RFC 3339 UTC (`2026-11-22T00:10:00.123Z`), as Go marshals a time.
pub fn rfc3339_from_ms(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let frac = ms % 1000;
    let base = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    );
    if frac == 0 {
        format!("{base}Z")
    } else {
        format!("{base}.{frac:03}Z")
    }
}

/// Parses RFC 3339 with a `Z` or `±hh:mm` offset (`2026-11-22T00:10:00Z`,
/// `2026-11-22T01:10:00.5+01:00`) into unix milliseconds.
pub fn parse_rfc3339_ms(text: &str) -> Option<u64> {
    let t = text.trim();
    if t.len() > DURATION_TEXT_BYTES_MAX || t.len() < 20 || !t.is_ascii() {
        return None;
    }
    let num = |s: &str| s.parse::<u32>().ok();
    let (y, mo, d) = (
        t[0..4].parse::<i64>().ok()?,
        num(&t[5..7])?,
        num(&t[8..10])?,
    );
    if &t[4..5] != "-" || &t[7..8] != "-" || !matches!(&t[10..11], "T" | "t" | " ") {
        return None;
    }
    let (h, mi, s) = (num(&t[11..13])?, num(&t[14..16])?, num(&t[17..19])?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut rest = &t[19..];
    let mut frac_ms = 0u64;
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
        let digits = &r[..n];
        if digits.is_empty() {
            return None;
        }
        let padded = format!("{:0<3}", &digits[..digits.len().min(3)]);
        frac_ms = padded.parse().ok()?;
        rest = &r[n..];
    }
    let offset_secs: i64 = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && matches!(&o[0..1], "+" | "-") && &o[3..4] == ":" => {
            let secs = i64::from(num(&o[1..3])?) * 3600 + i64::from(num(&o[4..6])?) * 60;
            if &o[0..1] == "+" {
                secs
            } else {
                -secs
            }
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400
        + i64::from(h) * 3600
        + i64::from(mi) * 60
        + i64::from(s)
        - offset_secs;
    u64::try_from(secs)
        .ok()?
        .checked_mul(1000)?
        .checked_add(frac_ms)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn times_round_trip() {
        assert_eq!(rfc3339_from_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_from_ms(951_782_400_500), "2000-02-29T00:00:00.500Z");
        for ms in [0, 1, 951_782_400_500, 1_795_000_000_123, 4_102_444_800_000] {
            assert_eq!(parse_rfc3339_ms(&rfc3339_from_ms(ms)), Some(ms));
        }
        assert_eq!(
            parse_rfc3339_ms("2000-02-29T01:00:00+01:00"),
            Some(951_782_400_000)
        );
        assert_eq!(parse_rfc3339_ms("2000-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration_ms("90s"), Some(90_000));
        assert_eq!(parse_go_duration_ms("1h30m"), Some(5_400_000));
        assert_eq!(parse_go_duration_ms("1.5h"), Some(5_400_000));
        assert_eq!(parse_go_duration_ms("500ms"), Some(500));
        assert_eq!(parse_go_duration_ms("10"), None);
        assert_eq!(parse_go_duration_ms("h"), None);
        assert_eq!(parse_go_duration_ms("1y"), None);
        assert_eq!(parse_go_duration_ms("1000000h"), None);
        assert_eq!(parse_go_duration_ms(&"1s".repeat(40)), None);
    }

    #[test]
    fn pin_query_options() {
        let a = crate::api::Args::parse(Some(
            "name=backup&mode=direct&replication-min=2&replication-max=3&expire-in=1m&meta-team=x",
        ))
        .unwrap();
        let s = pin_options(&a, 1_000).unwrap();
        assert_eq!(s.name, "backup");
        assert_eq!(s.mode, PinMode::Direct);
        assert_eq!((s.replication_factor_min, s.replication_factor_max), (2, 3));
        assert_eq!(s.expire_at_ms, Some(61_000));
        assert_eq!(s.metadata.get("team").map(String::as_str), Some("x"));
        let a = crate::api::Args::parse(Some("replication=2")).unwrap();
        let s = pin_options(&a, 0).unwrap();
        assert_eq!((s.replication_factor_min, s.replication_factor_max), (2, 2));
        let a = crate::api::Args::parse(None).unwrap();
        let s = pin_options(&a, 0).unwrap();
        assert_eq!(
            (s.replication_factor_min, s.replication_factor_max),
            (-1, -1)
        );
        for bad in [
            "mode=sideways",
            "replication-min=x",
            "replication-min=3&replication-max=2",
            "expire-in=10ms",
            "user-allocations=nope",
        ] {
            let a = crate::api::Args::parse(Some(bad)).unwrap();
            assert!(pin_options(&a, 0).is_err(), "{bad}");
        }
        let long = format!(
            "name={}",
            "n".repeat(ipfs_kit_cluster_sync::limits::PIN_NAME_BYTES_MAX + 1)
        );
        let a = crate::api::Args::parse(Some(&long)).unwrap();
        assert!(pin_options(&a, 0).is_err());
    }
}
