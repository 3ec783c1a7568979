//! Dotted keys (`addresses.api`, `swarm.conns_high`): the schema's list of keys, the unknown
//! key check, and reading or setting one value of a config.

use super::{Config, ConfigError};

/// Every key a config may hold, dotted. Sections are keys too (`config addresses` prints the
/// section). A test checks this list against the structs.
pub const KNOWN_KEYS: &[&str] = &[
    "role",
    "bootstrap",
    "addresses",
    "addresses.swarm",
    "addresses.api",
    "addresses.gateway",
    "datastore",
    "datastore.sync",
    "routing",
    "routing.mode",
    "routing.lan_dht",
    "swarm",
    "swarm.conns_high",
    "swarm.conns_low",
    "swarm.memory_max_bytes",
    "swarm.idle_timeout_secs",
    "swarm.relay_client",
    "swarm.relays",
    "swarm.relay_service",
    "swarm.autonat_only_global_ips",
    "discovery",
    "discovery.mdns",
    "dns",
    "dns.resolvers",
    "peering",
    "peering.peers",
    "provide",
    "provide.strategy",
    "api",
    "api.token",
    "cluster",
    "cluster.secret",
    "cluster.trusted_peers",
    "cluster.api",
    "cluster.metric_ttl_secs",
    "cluster.tags",
    "cluster.allocate_by",
    "tiers",
    "tiers.cache_bytes",
    "tiers.index",
    "tiers.placement_interval_secs",
    "tiers.demote_idle_secs",
    "tiers.local_capacity_bytes",
    "tiers.s3",
    "tiers.s3.bucket",
    "tiers.s3.prefix",
    "tiers.s3.endpoint",
    "tiers.s3.region",
    "tiers.s3.path_style",
];

/// Sections: keys whose value is a table.
fn is_section(key: &str) -> bool {
    KNOWN_KEYS
        .iter()
        .any(|k| k.len() > key.len() && k.starts_with(key) && k.as_bytes()[key.len()] == b'.')
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Fails on the first key of `table` (under `prefix`) that the schema does not have.
pub(super) fn check_known(table: &toml::Table, prefix: &str) -> Result<(), ConfigError> {
    for (k, v) in table {
        let key = join(prefix, k);
        if !KNOWN_KEYS.contains(&key.as_str()) {
            return Err(ConfigError::UnknownKey { key });
        }
        if let (toml::Value::Table(inner), true) = (v, is_section(&key)) {
            check_known(inner, &key)?;
        }
    }
    Ok(())
}

/// The dotted key whose value makes `table` fail to deserialize, found by deserializing one
/// key at a time (a config has a few dozen keys, so this costs nothing).
pub(super) fn locate_bad_key(table: &toml::Table) -> Option<String> {
    for (k, v) in table {
        let mut alone = toml::Table::new();
        alone.insert(k.clone(), v.clone());
        if toml::Value::Table(alone).try_into::<Config>().is_ok() {
            continue;
        }
        if let toml::Value::Table(inner) = v {
            for (ik, iv) in inner {
                let mut section = toml::Table::new();
                section.insert(ik.clone(), iv.clone());
                let mut alone = toml::Table::new();
                alone.insert(k.clone(), toml::Value::Table(section));
                if toml::Value::Table(alone).try_into::<Config>().is_err() {
                    return Some(format!("{k}.{ik}"));
                }
            }
        }
        return Some(k.clone());
    }
    None
}

/// Checks a dotted key against the schema.
fn check_key(key: &str) -> Result<(), ConfigError> {
    if KNOWN_KEYS.contains(&key) {
        Ok(())
    } else {
        Err(ConfigError::UnknownKey {
            key: key.to_string(),
        })
    }
}

/// The value at a dotted key of a table; `None` when unset.
pub(super) fn get<'t>(
    table: &'t toml::Table,
    key: &str,
) -> Result<Option<&'t toml::Value>, ConfigError> {
    check_key(key)?;
    let mut parts = key.split('.');
    let first = parts.next().unwrap_or_default();
    let mut value = match table.get(first) {
        Some(v) => v,
        None => return Ok(None),
    };
    for part in parts {
        value = match value.as_table().and_then(|t| t.get(part)) {
            Some(v) => v,
            None => return Ok(None),
        };
    }
    Ok(Some(value))
}

/// Sets (or with `None` removes, returning it to its default) a dotted key of a table.
pub(super) fn set(
    table: &mut toml::Table,
    key: &str,
    value: Option<toml::Value>,
) -> Result<(), ConfigError> {
    check_key(key)?;
    let parts: Vec<&str> = key.split('.').collect();
    let (last, sections) = match parts.split_last() {
        Some(split) => split,
        None => return Err(ConfigError::UnknownKey { key: key.into() }),
    };
    let mut at = table;
    for (i, part) in sections.iter().enumerate() {
        let entry = at
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        at = match entry {
            toml::Value::Table(t) => t,
            _ => {
                return Err(ConfigError::BadValue {
                    key: parts[..=i].join("."),
                    message: "is not a table".into(),
                })
            }
        };
    }
    match value {
        Some(v) => {
            at.insert(last.to_string(), v);
        }
        None => {
            at.remove(*last);
        }
    }
    Ok(())
}

impl Config {
    /// The effective value at a dotted key: role defaults filled in, as `config show` prints.
    /// `None` for an unset optional value (`api.token`, `cluster.secret`).
    pub fn get(&self, key: &str) -> Result<Option<toml::Value>, ConfigError> {
        let table = self.effective().to_table()?;
        Ok(get(&table, key)?.cloned())
    }

    /// A copy with `key` set to `value` (`None`: back to its default). Fails when the key is
    /// unknown or the value has the wrong type; does not validate the whole config.
    pub fn with_value(&self, key: &str, value: Option<toml::Value>) -> Result<Config, ConfigError> {
        let mut table = self.to_table()?;
        set(&mut table, key, value)?;
        Config::from_table(table).map_err(|e| match e {
            ConfigError::BadValue { message, .. } => ConfigError::BadValue {
                key: key.to_string(),
                message,
            },
            other => other,
        })
    }

    /// `config set KEY VALUE`: `value` is read as a TOML value (`50`, `true`, `["a", "b"]`)
    /// when it parses as one and has the type the key wants, else as a string (`master`,
    /// `/ip4/1.2.3.4/tcp/1`). With `json`, it is JSON (`null` resets the key).
    pub fn with_text_value(
        &self,
        key: &str,
        value: &str,
        json: bool,
    ) -> Result<Config, ConfigError> {
        if json {
            let parsed: serde_json::Value =
                serde_json::from_str(value).map_err(|e| ConfigError::BadValue {
                    key: key.to_string(),
                    message: format!("invalid JSON: {e}"),
                })?;
            let toml_value = json_to_toml(&parsed).map_err(|message| ConfigError::BadValue {
                key: key.to_string(),
                message,
            })?;
            return self.with_value(key, toml_value);
        }
        let as_string = toml::Value::String(value.to_string());
        match value.parse::<toml::Value>() {
            Ok(typed) if typed != as_string => match self.with_value(key, Some(typed)) {
                Ok(config) => Ok(config),
                // `api.token 1234567890123456` is a string that happens to parse as a number.
                Err(first) => self.with_value(key, Some(as_string)).map_err(|_| first),
            },
            _ => self.with_value(key, Some(as_string)),
        }
    }
}

/// JSON to TOML: `null` at the top means "unset"; TOML has no null elsewhere.
fn json_to_toml(value: &serde_json::Value) -> Result<Option<toml::Value>, String> {
    fn convert(value: &serde_json::Value) -> Result<toml::Value, String> {
        Ok(match value {
            serde_json::Value::Null => return Err("null is only allowed as the whole value".into()),
            serde_json::Value::Bool(b) => toml::Value::Boolean(*b),
            serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => toml::Value::Integer(i),
                (None, Some(f)) => toml::Value::Float(f),
                _ => return Err(format!("number {n} does not fit in TOML")),
            },
            serde_json::Value::String(s) => toml::Value::String(s.clone()),
            serde_json::Value::Array(a) => {
                toml::Value::Array(a.iter().map(convert).collect::<Result<_, _>>()?)
            }
            serde_json::Value::Object(o) => toml::Value::Table(
                o.iter()
                    .map(|(k, v)| Ok((k.clone(), convert(v)?)))
                    .collect::<Result<_, String>>()?,
            ),
        })
    }
    match value {
        serde_json::Value::Null => Ok(None),
        other => convert(other).map(Some),
    }
}
