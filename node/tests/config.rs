//! End-to-end tests of `ipfs-kit init --role` and `ipfs-kit config`: the real binary against a
//! fresh repository in a temp dir, checking its output, exit code and `config.toml`.

#![allow(clippy::unwrap_used)]

use crate::common;

use common::Env;

#[test]
fn init_with_role_then_config_role() {
    let env = Env::new();
    env.ok(&["init", "--role", "master"]);
    assert_eq!(env.ok(&["config", "role"]), "master\n");
    let file = std::fs::read_to_string(env.config_file()).unwrap();
    assert!(file.contains("role = \"master\""), "{file}");
    // The master's defaults show through.
    assert_eq!(env.ok(&["config", "swarm.conns_high"]), "192\n");
    // A second init is refused and changes nothing.
    env.fails_one_line(&["init", "--role", "leecher"]);
    assert_eq!(env.ok(&["config", "role"]), "master\n");
}

#[test]
fn plain_init_and_first_use_write_the_worker_default() {
    let env = Env::new();
    env.ok(&["init"]);
    assert_eq!(env.ok(&["config", "role"]), "worker\n");
    assert_eq!(env.ok(&["config", "addresses.api"]), "127.0.0.1:5001\n");

    // A repository created by first use (not `init`) gets one too.
    let env = Env::new();
    env.ok(&["repo", "stat"]);
    assert!(env.config_file().is_file());
    assert_eq!(env.ok(&["config", "routing.mode"]), "auto\n");
}

#[test]
fn set_then_show() {
    let env = Env::new();
    env.ok(&["init"]);
    env.ok(&["config", "set", "swarm.conns_high", "50"]);
    let show = env.ok(&["config", "show"]);
    assert!(show.contains("conns_high = 50"), "{show}");
    assert_eq!(env.ok(&["config", "swarm.conns_high"]), "50\n");
    // kubo's two-argument form, and JSON values.
    env.ok(&["config", "provide.strategy", "roots"]);
    assert_eq!(env.ok(&["config", "provide.strategy"]), "roots\n");
    env.ok(&[
        "config",
        "set",
        "--json",
        "addresses.swarm",
        r#"["/ip4/127.0.0.1/tcp/4101"]"#,
    ]);
    assert_eq!(
        env.ok(&["config", "addresses.swarm"]),
        "[\"/ip4/127.0.0.1/tcp/4101\"]\n"
    );
    // The show output is itself a valid config: it parses back to the same values.
    let show = env.ok(&["config", "show"]);
    std::fs::write(env.config_file(), &show).unwrap();
    assert_eq!(env.ok(&["config", "show"]), show);
}

#[test]
fn environment_overrides_the_file() {
    let env = Env::new();
    env.ok(&["init", "--role", "master"]);
    let leecher = [("IPFS_KIT_ROLE", "leecher")];
    assert_eq!(env.ok_with(&["config", "role"], &leecher), "leecher\n");
    // The leecher's limits come with its role.
    assert_eq!(
        env.ok_with(&["config", "swarm.conns_high"], &leecher),
        "32\n"
    );
    assert_eq!(
        env.ok_with(
            &["config", "addresses.gateway"],
            &[("IPFS_KIT_GATEWAY", "127.0.0.1:9999")]
        ),
        "127.0.0.1:9999\n"
    );
    // The environment is not written to the file.
    env.ok_with(&["config", "set", "swarm.conns_low", "5"], &leecher);
    assert_eq!(env.ok(&["config", "role"]), "master\n");
    // A bad value in the environment is named.
    let err = env.fails_one_line_with(&["config", "role"], &[("IPFS_KIT_ROLE", "boss")]);
    assert!(err.contains("IPFS_KIT_ROLE"), "{err}");
}

#[test]
fn bad_values_leave_the_file_unchanged() {
    let env = Env::new();
    env.ok(&["init"]);
    let before = std::fs::read(env.config_file()).unwrap();
    for (args, expect) in [
        (
            &["config", "set", "swarm.conns_high", "lots"][..],
            "swarm.conns_high",
        ),
        (&["config", "set", "role", "boss"][..], "role"),
        (
            &["config", "set", "swarm.conns_hgih", "5"][..],
            "swarm.conns_hgih",
        ),
        (
            &["config", "set", "addresses.api", "0.0.0.0:5001"][..],
            "api.token",
        ),
        (
            &["config", "set", "addresses.swarm", "[\"/ip4/1.2.3/tcp/1\"]"][..],
            "multiaddr",
        ),
        (&["config", "set", "--json", "bootstrap", "[1,"][..], "JSON"),
    ] {
        let err = env.fails_one_line(args);
        assert!(err.contains(expect), "{args:?}: {err}");
        assert_eq!(
            std::fs::read(env.config_file()).unwrap(),
            before,
            "{args:?} changed config.toml"
        );
    }
    assert!(!env.repo().join("config.toml.tmp").exists());
}

#[test]
fn unknown_key_in_the_file_is_an_error_naming_it() {
    let env = Env::new();
    env.ok(&["init"]);
    let mut file = std::fs::read_to_string(env.config_file()).unwrap();
    file = file.replace("[datastore]", "[datastore]\nsnyc = true");
    std::fs::write(env.config_file(), file).unwrap();
    let err = env.fails_one_line(&["repo", "stat"]);
    assert!(err.contains("datastore.snyc"), "{err}");
    let err = env.fails_one_line(&["config", "show"]);
    assert!(err.contains("datastore.snyc"), "{err}");
}

#[test]
fn datastore_sync_from_the_config_is_used() {
    // Observable effect: the CLI accepts and runs with it; `add` then works as with --sync.
    let env = Env::new();
    env.ok(&["init"]);
    env.ok(&["config", "set", "datastore.sync", "true"]);
    assert_eq!(env.ok(&["config", "datastore.sync"]), "true\n");
    let file = env.path("f.txt");
    std::fs::write(&file, b"hello config\n").unwrap();
    let cid = env.ok(&["add", "-Q", file.to_str().unwrap()]);
    assert_eq!(env.ok(&["cat", cid.trim()]), "hello config\n");
    // IPFS_KIT_SYNC=0 overrides the file.
    assert_eq!(
        env.ok_with(&["config", "datastore.sync"], &[("IPFS_KIT_SYNC", "0")]),
        "false\n"
    );
}

/// `ipfs-kit bootstrap`: kubo's verbs and text over `config.toml`'s `bootstrap` list.
#[test]
fn bootstrap_list_add_rm() {
    let env = Env::new();
    env.ok(&["init"]);
    assert_eq!(env.ok(&["bootstrap"]), "");
    let mars = "QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ";
    let added = env.ok(&["bootstrap", "add", "default"]);
    let defaults = ipfs_kit::config::KUBO_DEFAULT_BOOTSTRAP;
    let expected: String = defaults.iter().map(|p| format!("added {p}\n")).collect();
    assert_eq!(added, expected);
    let listed = env.ok(&["bootstrap", "list"]);
    assert_eq!(listed.lines().collect::<Vec<_>>(), defaults.to_vec());
    assert_eq!(
        env.ok(&["config", "bootstrap"]).lines().count(),
        1,
        "one TOML array"
    );
    // Already there: nothing added.
    assert_eq!(env.ok(&["bootstrap", "add", "--default"]), "");
    // By peer: both of mars's entries.
    let removed = env.ok(&["bootstrap", "rm", &format!("/p2p/{mars}")]);
    assert_eq!(removed.lines().count(), 2, "{removed}");
    assert!(removed
        .lines()
        .all(|l| l.starts_with("removed ") && l.ends_with(mars)));
    let own = "/ip4/10.1.2.3/tcp/4001/p2p/12D3KooWNVpCvnBmKMBJLG4eoEhKwv6BPR3jxJCusMfYDXMRtv7E";
    assert_eq!(env.ok(&["bootstrap", "add", own]), format!("added {own}\n"));
    // Refused, file unchanged: no peer ID, nothing to add or remove.
    let before = std::fs::read_to_string(env.config_file()).unwrap();
    let e = env.fails_one_line(&["bootstrap", "add", "/ip4/10.1.2.3/tcp/4001"]);
    assert!(e.contains("/p2p/"), "{e}");
    assert!(env
        .fails_one_line(&["bootstrap", "add"])
        .contains("no bootstrap peers to add"));
    assert!(env
        .fails_one_line(&["bootstrap", "rm"])
        .contains("no bootstrap peers to remove"));
    assert_eq!(std::fs::read_to_string(env.config_file()).unwrap(), before);
    let all = env.ok(&["bootstrap", "rm", "all"]);
    assert_eq!(all.lines().count(), defaults.len() - 2 + 1);
    assert_eq!(env.ok(&["bootstrap"]), "");
}
