//! Unit tests of the configuration: defaults per role, layering, unknown keys, every
//! validation error, and get/set round trips.

#![allow(clippy::unwrap_used)]

use super::*;
use std::collections::HashMap;
use std::time::Duration;

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, Path::new("config.toml"))
}

const PEER: &str = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";

#[test]
fn defaults_per_role() {
    let worker = Config::default();
    assert_eq!(worker.role, Role::Worker);
    let s = worker.resolve().unwrap();
    assert_eq!(s.api_addr, "127.0.0.1:5001".parse().unwrap());
    assert_eq!(s.gateway_addr, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(s.swarm_addrs.len(), 2);
    assert!(s.bootstrap.is_empty());
    assert!(!s.sync_blocks);
    assert_eq!(s.dht_mode, DhtMode::ByReachability);
    assert_eq!(s.limits.conns_high, 96);
    assert_eq!(s.limits.conns_low, 32);
    assert_eq!(s.provide, ProvideStrategy::All);

    let leecher = Config::for_role(Role::Leecher).resolve().unwrap();
    assert_eq!(leecher.dht_mode, DhtMode::Client);
    assert!(leecher.limits.conns_high < s.limits.conns_high);
    assert!(leecher.limits.memory_max_bytes < s.limits.memory_max_bytes);

    let master = Config::for_role(Role::Master).resolve().unwrap();
    assert_eq!(master.dht_mode, DhtMode::ByReachability);
    assert!(master.limits.conns_high > s.limits.conns_high);
    for role in [Role::Leecher, Role::Worker, Role::Master] {
        let l = SwarmLimits::for_role(role);
        assert!(l.conns_low <= l.conns_high && l.memory_max_bytes >= SWARM_MEMORY_BYTES_MIN);
    }
}

#[test]
fn routing_mode_overrides_role() {
    let mut c = Config::for_role(Role::Leecher);
    c.routing.mode = RoutingMode::Dhtserver;
    assert_eq!(c.dht_mode(), DhtMode::Server);
    c.role = Role::Master;
    c.routing.mode = RoutingMode::Dhtclient;
    assert_eq!(c.dht_mode(), DhtMode::Client);
    c.routing.mode = RoutingMode::Dht;
    assert_eq!(c.dht_mode(), DhtMode::ByReachability);
}

#[test]
fn empty_and_default_files_are_the_default() {
    assert_eq!(parse("").unwrap(), Config::default());
    let text = Config::default().to_toml().unwrap();
    assert_eq!(parse(&text).unwrap(), Config::default());
    let master = Config::for_role(Role::Master);
    assert_eq!(parse(&master.to_toml().unwrap()).unwrap(), master);
}

#[test]
fn missing_file_loads_defaults() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(Config::load(dir.path()).unwrap(), Config::default());
}

#[test]
fn save_load_round_trip_and_write_default_keeps_existing() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Config::for_role(Role::Leecher);
    c.swarm.conns_high = Some(10);
    c.bootstrap = vec![format!("/ip4/1.2.3.4/tcp/4001/p2p/{PEER}")];
    c.save(dir.path()).unwrap();
    write_default_if_absent(dir.path()).unwrap();
    assert_eq!(Config::load(dir.path()).unwrap(), c);
    assert!(!dir.path().join("config.toml.tmp").exists());

    let fresh = tempfile::tempdir().unwrap();
    write_default_if_absent(fresh.path()).unwrap();
    assert_eq!(Config::load(fresh.path()).unwrap(), Config::default());
}

#[test]
fn role_defaults_follow_the_effective_role() {
    // The file says worker and leaves the limits unset; the environment says leecher.
    let mut c = parse("role = \"worker\"\n").unwrap();
    c.apply_env(env_of(&[("IPFS_KIT_ROLE", "leecher")]))
        .unwrap();
    assert_eq!(c.swarm_limits(), SwarmLimits::for_role(Role::Leecher));
    assert_eq!(c.dht_mode(), DhtMode::Client);
    // A limit set in the file stays whatever the role.
    let mut c = parse("[swarm]\nconns_high = 7\nconns_low = 1\n").unwrap();
    c.apply_env(env_of(&[("IPFS_KIT_ROLE", "master")])).unwrap();
    assert_eq!(c.swarm_limits().conns_high, 7);
    assert_eq!(
        c.swarm_limits().memory_max_bytes,
        SwarmLimits::for_role(Role::Master).memory_max_bytes
    );
}

#[test]
fn one_watermark_set_moves_the_other_default() {
    let mut c = Config::for_role(Role::Master);
    c.swarm.conns_high = Some(50);
    let l = c.swarm_limits();
    assert_eq!((l.conns_high, l.conns_low), (50, 50));
    c.resolve().unwrap();
    let mut c = Config::for_role(Role::Leecher);
    c.swarm.conns_low = Some(100);
    let l = c.swarm_limits();
    assert_eq!((l.conns_high, l.conns_low), (100, 100));
    c.resolve().unwrap();
    c.swarm.conns_high = Some(10);
    assert!(matches!(
        c.resolve(),
        Err(ConfigError::BadLimit {
            key: "conns_low",
            ..
        })
    ));
}

#[test]
fn precedence_flag_over_env_over_file() {
    let file = "role = \"master\"\n[addresses]\napi = \"127.0.0.1:1111\"\n\
                gateway = \"127.0.0.1:2222\"\nswarm = [\"/ip4/127.0.0.1/tcp/1\"]\n";
    let mut c = parse(file).unwrap();
    // File only.
    assert_eq!(c.role, Role::Master);
    assert_eq!(c.addresses.api, "127.0.0.1:1111");
    // The environment overrides the file where set.
    c.apply_env(env_of(&[
        ("IPFS_KIT_ROLE", "leecher"),
        ("IPFS_KIT_API", "127.0.0.1:3333"),
        (
            "IPFS_KIT_SWARM",
            "/ip4/127.0.0.1/tcp/2, /ip4/127.0.0.1/udp/2/quic-v1",
        ),
        (
            "IPFS_KIT_BOOTSTRAP",
            &format!("/ip4/1.2.3.4/tcp/4001/p2p/{PEER}"),
        ),
        ("IPFS_KIT_SYNC", "1"),
    ]))
    .unwrap();
    assert_eq!(c.role, Role::Leecher);
    assert_eq!(c.addresses.api, "127.0.0.1:3333");
    assert_eq!(c.addresses.gateway, "127.0.0.1:2222");
    assert_eq!(c.addresses.swarm.len(), 2);
    assert_eq!(c.bootstrap.len(), 1);
    assert!(c.datastore.sync);
    // Flags override both.
    c.apply_overrides(&Overrides {
        role: Some(Role::Worker),
        api: Some("127.0.0.1:4444".into()),
        swarm: Some(vec!["/ip4/127.0.0.1/tcp/5".into()]),
        bootstrap: Some(vec![]),
        ..Overrides::default()
    });
    let s = c.resolve().unwrap();
    assert_eq!(s.role, Role::Worker);
    assert_eq!(s.api_addr, "127.0.0.1:4444".parse().unwrap());
    assert_eq!(s.gateway_addr, "127.0.0.1:2222".parse().unwrap());
    assert_eq!(s.swarm_addrs, vec!["/ip4/127.0.0.1/tcp/5".parse().unwrap()]);
    assert!(s.bootstrap.is_empty());
    assert!(
        s.sync_blocks,
        "an absent --sync flag does not turn sync off"
    );
}

#[test]
fn env_sync_can_turn_the_file_off_and_bad_env_names_the_variable() {
    let mut c = parse("[datastore]\nsync = true\n").unwrap();
    c.apply_env(env_of(&[("IPFS_KIT_SYNC", "0")])).unwrap();
    assert!(!c.datastore.sync);
    for (var, value) in [
        ("IPFS_KIT_ROLE", "boss"),
        ("IPFS_KIT_API", "localhost:5001"),
        ("IPFS_KIT_GATEWAY", "8080"),
        ("IPFS_KIT_SWARM", "/ip4/1.2.3/tcp/1"),
        ("IPFS_KIT_BOOTSTRAP", "/ip4/1.2.3.4/tcp/1"),
        ("IPFS_KIT_SYNC", "maybe"),
    ] {
        let mut c = Config::default();
        let err = c.apply_env(env_of(&[(var, value)])).unwrap_err();
        assert!(
            matches!(err, ConfigError::Env { var: v, .. } if v == var),
            "{var}: {err}"
        );
        assert!(err.to_string().contains(var));
        assert_eq!(c, Config::default(), "{var}: a bad value changes nothing");
    }
}

#[test]
fn unknown_keys_are_named() {
    for (text, key) in [
        ("rol = \"worker\"\n", "rol"),
        ("[swarm]\nconns_hgih = 5\n", "swarm.conns_hgih"),
        ("[addresses]\nAPI = \"127.0.0.1:1\"\n", "addresses.API"),
        ("[nope]\nx = 1\n", "nope"),
    ] {
        match parse(text) {
            Err(ConfigError::UnknownKey { key: k }) => assert_eq!(k, key),
            other => panic!("{text:?}: {other:?}"),
        }
    }
}

#[test]
fn type_errors_and_syntax_errors_name_the_place() {
    let err = parse("[swarm]\nconns_high = \"lots\"\n").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("swarm.conns_high"), "{msg}");
    let err = parse("role = \"boss\"\n").unwrap_err();
    assert!(err.to_string().contains("role"), "{err}");
    let err = parse("role = \n").unwrap_err();
    assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
    assert!(err.to_string().contains("line 1"), "{err}");
    assert!(!err.to_string().contains('\n'), "one line: {err}");
}

#[test]
fn every_validation_error() {
    let check = |edit: &dyn Fn(&mut Config), want: &dyn Fn(&ConfigError) -> bool| {
        let mut c = Config::default();
        edit(&mut c);
        let err = c.resolve().unwrap_err();
        assert!(want(&err), "unexpected {err:?}");
    };
    check(
        &|c| c.addresses.swarm = vec!["/ip4/999.0.0.1/tcp/1".into()],
        &|e| matches!(e, ConfigError::BadMultiaddr { key, .. } if key == "addresses.swarm"),
    );
    check(&|c| c.addresses.swarm = vec!["ip4/1.2.3.4".into()], &|e| {
        matches!(e, ConfigError::BadMultiaddr { .. })
    });
    check(
        &|c| c.addresses.swarm = vec!["/ip4/127.0.0.1/tcp/1".into(); LIST_ENTRIES_MAX + 1],
        &|e| matches!(e, ConfigError::TooManyEntries { count, .. } if *count == LIST_ENTRIES_MAX + 1),
    );
    check(
        &|c| c.bootstrap = vec!["/ip4/1.2.3.4/tcp/4001".into()],
        &|e| matches!(e, ConfigError::BootstrapWithoutPeerId(_)),
    );
    check(
        &|c| c.addresses.api = "localhost:5001".into(),
        &|e| matches!(e, ConfigError::BadSocketAddr { key, .. } if key == "addresses.api"),
    );
    check(
        &|c| c.addresses.gateway = "127.0.0.1".into(),
        &|e| matches!(e, ConfigError::BadSocketAddr { key, .. } if key == "addresses.gateway"),
    );
    check(
        &|c| c.addresses.api = "0.0.0.0:5001".into(),
        &|e| matches!(e, ConfigError::TokenRequired { key, .. } if key == "addresses.api"),
    );
    check(
        &|c| c.addresses.gateway = "[::]:8080".into(),
        &|e| matches!(e, ConfigError::TokenRequired { key, .. } if key == "addresses.gateway"),
    );
    check(&|c| c.api.token = Some("short".into()), &|e| {
        matches!(e, ConfigError::BadToken { .. })
    });
    check(
        &|c| c.api.token = Some("has white space in it!".into()),
        &|e| matches!(e, ConfigError::BadToken { .. }),
    );
    check(
        &|c| c.api.token = Some("x".repeat(API_TOKEN_BYTES_MAX + 1)),
        &|e| matches!(e, ConfigError::BadToken { .. }),
    );
    check(&|c| c.swarm.conns_high = Some(0), &|e| {
        matches!(
            e,
            ConfigError::BadLimit {
                key: "conns_high",
                ..
            }
        )
    });
    let inverted = |c: &mut Config| {
        c.swarm.conns_high = Some(10);
        c.swarm.conns_low = Some(11);
    };
    check(&inverted, &|e| {
        matches!(
            e,
            ConfigError::BadLimit {
                key: "conns_low",
                ..
            }
        )
    });
    check(
        &|c| c.swarm.memory_max_bytes = Some(SWARM_MEMORY_BYTES_MIN - 1),
        &|e| {
            matches!(
                e,
                ConfigError::BadLimit {
                    key: "memory_max_bytes",
                    ..
                }
            )
        },
    );
    check(
        &|c| c.swarm.idle_timeout_secs = Some(IDLE_TIMEOUT_SECS_MAX + 1),
        &|e| {
            matches!(
                e,
                ConfigError::BadLimit {
                    key: "idle_timeout_secs",
                    ..
                }
            )
        },
    );
    check(&|c| c.cluster.secret = Some("abcd".into()), &|e| {
        matches!(e, ConfigError::BadClusterSecret)
    });
    check(&|c| c.cluster.secret = Some("zz".repeat(32)), &|e| {
        matches!(e, ConfigError::BadClusterSecret)
    });
    check(
        &|c| c.cluster.trusted_peers = vec!["not-a-peer".into()],
        &|e| matches!(e, ConfigError::BadPeerId(_)),
    );
}

#[test]
fn valid_non_defaults_resolve() {
    let mut c = Config::default();
    c.addresses.api = "0.0.0.0:5001".into();
    c.addresses.gateway = "[::1]:8080".into();
    c.api.token = Some("0123456789abcdef".into());
    c.cluster.secret = Some("ab".repeat(32));
    c.cluster.trusted_peers = vec![PEER.into()];
    c.swarm.idle_timeout_secs = Some(5);
    let s = c.resolve().unwrap();
    assert_eq!(s.cluster_secret, Some([0xab; 32]));
    assert_eq!(s.cluster_trusted_peers.len(), 1);
    assert_eq!(s.limits.idle_timeout, Duration::from_secs(5));
    assert!(s.api_token.is_some());
}

#[test]
fn load_settings_applies_overrides_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    Config::for_role(Role::Master).save(dir.path()).unwrap();
    let overrides = Overrides {
        api: Some("127.0.0.1:15001".into()),
        ..Overrides::default()
    };
    let s = Config::load_settings(dir.path(), &overrides).unwrap();
    assert_eq!(s.api_addr, "127.0.0.1:15001".parse().unwrap());
    // A bad flag value is caught by validation, named by its key.
    let bad = Overrides {
        gateway: Some("nowhere".into()),
        ..Overrides::default()
    };
    assert!(matches!(
        Config::load_settings(dir.path(), &bad),
        Err(ConfigError::BadSocketAddr { key, .. }) if key == "addresses.gateway"
    ));
}

#[test]
fn oversized_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let big = format!("# {}\n", "x".repeat(CONFIG_FILE_BYTES_MAX as usize));
    std::fs::write(dir.path().join(CONFIG_FILE), big).unwrap();
    assert!(matches!(
        Config::load(dir.path()),
        Err(ConfigError::TooLarge { .. })
    ));
}

#[test]
fn get_prints_effective_values() {
    let c = Config::for_role(Role::Leecher);
    assert_eq!(
        c.get("role").unwrap(),
        Some(toml::Value::String("leecher".into()))
    );
    assert_eq!(
        c.get("swarm.conns_high").unwrap(),
        Some(toml::Value::Integer(32))
    );
    assert_eq!(
        c.get("addresses.api").unwrap(),
        Some(toml::Value::String("127.0.0.1:5001".into()))
    );
    assert_eq!(c.get("api.token").unwrap(), None);
    assert!(c.get("addresses").unwrap().unwrap().is_table());
    assert!(matches!(
        c.get("swarm.nope"),
        Err(ConfigError::UnknownKey { .. })
    ));
}

#[test]
fn set_parses_toml_then_strings_then_json() {
    let c = Config::default();
    let c = c.with_text_value("swarm.conns_high", "50", false).unwrap();
    assert_eq!(c.swarm.conns_high, Some(50));
    let c = c.with_text_value("role", "master", false).unwrap();
    assert_eq!(c.role, Role::Master);
    let c = c.with_text_value("datastore.sync", "true", false).unwrap();
    assert!(c.datastore.sync);
    let c = c
        .with_text_value("addresses.swarm", "[\"/ip4/127.0.0.1/tcp/9\"]", false)
        .unwrap();
    assert_eq!(c.addresses.swarm, vec!["/ip4/127.0.0.1/tcp/9".to_string()]);
    let c = c
        .with_text_value(
            "bootstrap",
            &format!("[\"/ip4/1.2.3.4/tcp/1/p2p/{PEER}\"]"),
            true,
        )
        .unwrap();
    assert_eq!(c.bootstrap.len(), 1);
    // A string that parses as a number goes in as the string the key wants.
    let c = c
        .with_text_value("api.token", "1234567890123456", false)
        .unwrap();
    assert_eq!(c.api.token.as_deref(), Some("1234567890123456"));
    // JSON null resets to the default.
    let c = c.with_text_value("swarm.conns_high", "null", true).unwrap();
    assert_eq!(c.swarm.conns_high, None);
    // Round trip through the file text.
    assert_eq!(parse(&c.to_toml().unwrap()).unwrap(), c);

    // Bad values and keys.
    assert!(matches!(
        c.with_text_value("swarm.conns_high", "many", false),
        Err(ConfigError::BadValue { key, .. }) if key == "swarm.conns_high"
    ));
    assert!(matches!(
        c.with_text_value("role", "boss", false),
        Err(ConfigError::BadValue { key, .. }) if key == "role"
    ));
    assert!(matches!(
        c.with_text_value("swarm.conns_hgih", "5", false),
        Err(ConfigError::UnknownKey { .. })
    ));
    assert!(matches!(
        c.with_text_value("bootstrap", "[1,", true),
        Err(ConfigError::BadValue { .. })
    ));
    assert!(matches!(
        c.with_text_value("swarm.conns_high", "-1", false),
        Err(ConfigError::BadValue { .. })
    ));
}

#[test]
fn save_refuses_an_invalid_config_and_keeps_the_file() {
    let dir = tempfile::tempdir().unwrap();
    Config::default().save(dir.path()).unwrap();
    let before = std::fs::read(dir.path().join(CONFIG_FILE)).unwrap();
    let bad = Config::default()
        .with_text_value("addresses.api", "0.0.0.0:5001", false)
        .unwrap();
    assert!(matches!(
        bad.save(dir.path()),
        Err(ConfigError::TokenRequired { .. })
    ));
    assert_eq!(std::fs::read(dir.path().join(CONFIG_FILE)).unwrap(), before);
}

#[test]
fn known_keys_match_the_structs() {
    // A config with every optional field set serializes to exactly the known keys.
    let mut c = Config::default().effective();
    c.api.token = Some("0123456789abcdef".into());
    c.cluster.secret = Some("ab".repeat(32));
    c.cluster.metric_ttl_secs = Some(5);
    c.dns.resolvers = vec!["127.0.0.1:53".into()];
    c.peering.peers = vec![format!("/ip4/1.2.3.4/tcp/4001/p2p/{PEER}")];
    c.tiers.s3 = Some(crate::config::TierS3 {
        endpoint: Some("http://127.0.0.1:9000".into()),
        region: Some("us-east-1".into()),
        ..Default::default()
    });
    let mut found = Vec::new();
    fn walk(t: &toml::Table, prefix: &str, found: &mut Vec<String>) {
        for (k, v) in t {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            if let toml::Value::Table(inner) = v {
                walk(inner, &key, found);
            }
            found.push(key);
        }
    }
    walk(&c.to_table().unwrap(), "", &mut found);
    found.sort();
    let mut known: Vec<String> = KNOWN_KEYS.iter().map(|s| s.to_string()).collect();
    known.sort();
    assert_eq!(found, known);
}

#[test]
fn dns_resolvers_are_socket_addrs() {
    let mut c = Config::default();
    assert!(c.resolve().unwrap().network.dns_resolvers.is_empty());
    assert!(
        !c.to_toml().unwrap().contains("[dns]"),
        "the default stays out of the file"
    );
    c.dns.resolvers = vec!["127.0.0.1:5353".into(), "[::1]:53".into()];
    let r = c.resolve().unwrap().network.dns_resolvers;
    assert_eq!(r[0].to_string(), "127.0.0.1:5353");
    assert_eq!(r[1].to_string(), "[::1]:53");
    c.dns.resolvers = vec!["ns.example".into()];
    let e = c.resolve().unwrap_err().to_string();
    assert!(e.contains("dns.resolvers"), "{e}");
}

#[test]
fn cluster_keys_env_and_flag_layers() {
    let c = Config::default();
    let s = c.resolve().unwrap();
    assert_eq!(
        s.cluster_api_addr,
        CLUSTER_API_ADDR_DEFAULT.parse().unwrap()
    );
    assert_eq!(s.cluster_metric_ttl, None);
    assert_eq!(
        c.get("cluster.api").unwrap().unwrap().as_str(),
        Some("127.0.0.1:9094")
    );

    let mut c = Config::default();
    let secret = "cd".repeat(32);
    c.apply_env(env_of(&[
        ("IPFS_KIT_CLUSTER_API", "127.0.0.1:19094"),
        ("IPFS_KIT_CLUSTER_SECRET", &secret),
        ("IPFS_KIT_CLUSTER_TRUSTED_PEERS", &format!("{PEER}, {PEER}")),
        ("IPFS_KIT_CLUSTER_METRIC_TTL_SECS", "3"),
    ]))
    .unwrap();
    c.apply_overrides(&Overrides {
        cluster_api: Some("127.0.0.1:29094".into()),
        ..Overrides::default()
    });
    let s = c.resolve().unwrap();
    assert_eq!(s.cluster_api_addr, "127.0.0.1:29094".parse().unwrap());
    assert_eq!(s.cluster_secret, Some([0xcd; 32]));
    assert_eq!(s.cluster_trusted_peers.len(), 2);
    assert_eq!(s.cluster_metric_ttl, Some(Duration::from_secs(3)));

    // An empty secret variable clears the file's secret.
    c.apply_env(env_of(&[("IPFS_KIT_CLUSTER_SECRET", "")]))
        .unwrap();
    assert_eq!(c.cluster.secret, None);
    // Malformed variables are errors naming the variable.
    for (var, value) in [
        ("IPFS_KIT_CLUSTER_API", "nowhere"),
        ("IPFS_KIT_CLUSTER_SECRET", "abcd"),
        ("IPFS_KIT_CLUSTER_TRUSTED_PEERS", "not-a-peer"),
        ("IPFS_KIT_CLUSTER_METRIC_TTL_SECS", "soon"),
    ] {
        let err = Config::default()
            .apply_env(env_of(&[(var, value)]))
            .unwrap_err();
        assert!(
            matches!(err, ConfigError::Env { var: v, .. } if v == var),
            "{var}"
        );
    }
    // A non-loopback cluster API needs a token; the TTL is bounded.
    let mut c = Config::default();
    c.cluster.api = "0.0.0.0:9094".into();
    assert!(matches!(
        c.resolve(),
        Err(ConfigError::TokenRequired { key, .. }) if key == "cluster.api"
    ));
    c.api.token = Some("0123456789abcdef".into());
    assert!(c.resolve().is_ok());
    let mut c = Config::default();
    c.cluster.metric_ttl_secs = Some(CLUSTER_METRIC_TTL_SECS_MAX + 1);
    assert!(c.resolve().is_err());
    c.cluster.metric_ttl_secs = Some(0);
    assert!(c.resolve().is_err());
    // Too many trusted peers: limit + 1.
    let mut c = Config::default();
    c.cluster.trusted_peers = vec![PEER.to_string(); LIST_ENTRIES_MAX + 1];
    assert!(matches!(
        c.resolve(),
        Err(ConfigError::TooManyEntries { .. })
    ));
    // `config set` of the new keys round-trips through the file format.
    let c = Config::default()
        .with_text_value("cluster.api", "127.0.0.1:9999", false)
        .unwrap()
        .with_text_value("cluster.metric_ttl_secs", "5", false)
        .unwrap();
    assert_eq!(parse(&c.to_toml().unwrap()).unwrap(), c);
}

#[test]
fn network_keys_defaults_env_and_limits() {
    let s = Config::default().resolve().unwrap();
    assert!(s.network.relay_client && !s.network.relay_service && !s.network.mdns);
    assert!(s.network.autonat_only_global_ips && s.network.relays.is_empty());
    assert!(
        Config::for_role(Role::Master)
            .resolve()
            .unwrap()
            .network
            .relay_service
    );
    let shown = Config::default();
    assert_eq!(
        shown.get("discovery.mdns").unwrap(),
        Some(toml::Value::Boolean(false))
    );
    assert_eq!(
        shown.get("swarm.relay_client").unwrap(),
        Some(toml::Value::Boolean(true))
    );

    let relay = format!("/ip4/1.2.3.4/tcp/4001/p2p/{PEER}");
    let mut c = Config::default();
    c.apply_env(env_of(&[
        ("IPFS_KIT_RELAY_CLIENT", "off"),
        ("IPFS_KIT_RELAYS", &format!("{relay}, {relay}")),
        ("IPFS_KIT_RELAY_SERVICE", "yes"),
        ("IPFS_KIT_AUTONAT_ONLY_GLOBAL_IPS", "0"),
        ("IPFS_KIT_MDNS", "true"),
        ("IPFS_KIT_LAN_DHT", "false"),
    ]))
    .unwrap();
    let n = c.resolve().unwrap().network;
    assert!(!n.relay_client && n.relay_service && n.mdns && !n.autonat_only_global_ips);
    assert!(!n.lan_dht);
    assert!(Config::default().resolve().unwrap().network.lan_dht);
    assert_eq!(
        Config::default().get("routing.lan_dht").unwrap(),
        Some(toml::Value::Boolean(true))
    );
    assert_eq!(n.relays.len(), 2);

    // A bad boolean names the variable; a relay without /p2p/ is refused.
    let err = Config::default()
        .apply_env(env_of(&[("IPFS_KIT_MDNS", "maybe")]))
        .unwrap_err();
    assert!(err.to_string().contains("IPFS_KIT_MDNS"), "{err}");
    let mut c = Config::default();
    c.swarm.relays = vec!["/ip4/1.2.3.4/tcp/4001".into()];
    assert!(matches!(c.resolve(), Err(ConfigError::BadValue { .. })));
    // STATIC_RELAYS_MAX is accepted, one more is not.
    let max = crate::net::relay::STATIC_RELAYS_MAX;
    c.swarm.relays = vec![relay.clone(); max];
    assert_eq!(c.resolve().unwrap().network.relays.len(), max);
    c.swarm.relays = vec![relay; max + 1];
    assert!(matches!(
        c.resolve(),
        Err(ConfigError::TooManyEntries { .. })
    ));
}

#[test]
fn cluster_tags_and_allocate_by() {
    use ipfs_kit_cluster_sync::allocator::METRIC_TAGS_MAX;
    let mut c = Config::default();
    c.apply_env(env_of(&[
        ("IPFS_KIT_CLUSTER_TAGS", "group=eu, rack=2"),
        ("IPFS_KIT_CLUSTER_ALLOCATE_BY", "tag:group,freespace"),
    ]))
    .unwrap();
    let s = c.resolve().unwrap();
    assert_eq!(s.cluster_tags.get("group").map(String::as_str), Some("eu"));
    assert_eq!(s.cluster_tags.get("rack").map(String::as_str), Some("2"));
    assert_eq!(s.cluster_spread_tags, vec!["group".to_string()]);
    assert!(Config::default()
        .apply_env(env_of(&[("IPFS_KIT_CLUSTER_TAGS", "no-equals")]))
        .is_err());
    for order in [vec!["freespace", "tag:group"], vec!["cpu"], vec!["tag:"]] {
        let mut c = Config::default();
        c.cluster.allocate_by = order.iter().map(|s| s.to_string()).collect();
        assert!(c.resolve().is_err(), "{order:?}");
    }
    // One tag over the metric's limit.
    let mut c = Config::default();
    c.cluster.tags = (0..=METRIC_TAGS_MAX)
        .map(|i| (format!("k{i}"), "v".to_string()))
        .collect();
    assert!(c.resolve().is_err());
    c.cluster.tags.pop_last();
    assert!(c.resolve().is_ok());
}
