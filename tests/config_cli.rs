//! Configuration errors exit 2 with one line naming the setting (a start failure that may pass,
//! such as a port in use, exits 1); `check-config` shows the
//! effective values (secrets redacted) with flag > env > file > default; `regions` prints the
//! tree.

mod common;

use common::run;

fn assert_config_error(args: &[&str], env: &[(&str, &str)], setting: &str) {
    let (status, _out, err) = run(args, env);
    assert_eq!(status.code(), Some(2), "{args:?}: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one clear line, got: {err}");
    assert!(
        lines[0].starts_with(&format!("hubcast: invalid config: {setting}: ")),
        "{args:?} should name {setting}: {err}"
    );
}

#[test]
fn bad_values_exit_2_naming_the_setting() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("d");
    let data = data.to_str().expect("path");
    assert_config_error(
        &["serve", "--data-dir", data, "--listen", "127.0.0.1:70000"],
        &[],
        "listen",
    );
    assert_config_error(
        &["serve", "--data-dir", data],
        &[("HUBCAST_LISTEN", "127.0.0.1:99999")],
        "listen",
    );
    assert_config_error(
        &[
            "serve",
            "--data-dir",
            data,
            "--tls-cert",
            "/nonexistent/cert.pem",
            "--tls-key",
            "/nonexistent/key.pem",
        ],
        &[],
        "tls.cert",
    );
    let unreadable = tmp.path().join("cert-dir");
    std::fs::create_dir_all(&unreadable).expect("dir");
    assert_config_error(
        &[
            "serve",
            "--data-dir",
            data,
            "--tls-cert",
            unreadable.to_str().expect("p"),
            "--tls-key",
            "/nonexistent",
        ],
        &[],
        "tls.cert",
    );
    assert_config_error(
        &[
            "serve",
            "--data-dir",
            data,
            "--regions-file",
            "/nonexistent/regions.tsv",
        ],
        &[],
        "regions.file",
    );
    let garbage = tmp.path().join("regions.tsv");
    std::fs::write(&garbage, "this is not a region file\n").expect("write");
    assert_config_error(
        &[
            "serve",
            "--data-dir",
            data,
            "--regions-file",
            garbage.to_str().expect("p"),
        ],
        &[],
        "regions.file",
    );
    assert_config_error(
        &["serve", "--data-dir", data],
        &[("HUBCAST_HTTP__GRACE_PERIOD_SECS", "soon")],
        "http.grace_period_secs",
    );
    let typo = tmp.path().join("typo.toml");
    std::fs::write(&typo, "[http]\ngrace_perido_secs = 3\n").expect("write");
    assert_config_error(
        &[
            "serve",
            "--data-dir",
            data,
            "--config",
            typo.to_str().expect("p"),
        ],
        &[],
        "http.grace_perido_secs",
    );
    // An environment variable that names no setting is only a warning: platforms set
    // HUBCAST_* variables of their own (Kubernetes service links such as HUBCAST_PORT).
    let (status, _, err) = run(
        &["check-config", "--data-dir", data],
        &[("HUBCAST_PORT", "tcp://10.0.0.1:80")],
    );
    assert!(status.success(), "{err}");
    assert!(
        err.contains("ignoring environment variable HUBCAST_PORT"),
        "{err}"
    );
    assert_config_error(
        &["serve", "--data-dir", data, "--log-format", "xml"],
        &[],
        "log.format",
    );
    let file = tmp.path().join("hub.toml");
    std::fs::write(&file, "[auth]\nsecret = \"c2hvcnQ=\"\n").expect("write");
    assert_config_error(
        &["serve", "--config", file.to_str().expect("p")],
        &[],
        "auth.secret",
    );
    assert_config_error(
        &["serve", "--config", "/nonexistent/hub.toml"],
        &[],
        "config",
    );
    assert_config_error(
        &[
            "token",
            "--role",
            "mayor",
            "--region",
            "330100",
            "--data-dir",
            data,
        ],
        &[],
        "role",
    );
    assert_config_error(
        &[
            "token",
            "--role",
            "city-admin",
            "--region",
            "330106",
            "--data-dir",
            data,
        ],
        &[],
        "region",
    );
}

#[test]
fn check_config_shows_precedence_and_redacts() {
    let tmp = tempfile::tempdir().expect("tmp");
    let file = tmp.path().join("hub.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:9001\"\n[http]\nmax_connections = 500\ngrace_period_secs = 7\n[auth]\nsecret = \"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldC1zZWNyZXQ=\"\n",
    )
    .expect("write");
    let (status, out, err) = run(
        &[
            "check-config",
            "--config",
            file.to_str().expect("p"),
            "--listen",
            "127.0.0.1:9003",
        ],
        &[
            ("HUBCAST_LISTEN", "127.0.0.1:9002"),
            ("HUBCAST_HTTP__GRACE_PERIOD_SECS", "9"),
        ],
    );
    assert!(status.success(), "{err}");
    let parsed: toml::Table = toml::from_str(&out).expect("check-config prints TOML");
    assert_eq!(
        parsed["listen"].as_str(),
        Some("127.0.0.1:9003"),
        "flag > env > file"
    );
    assert_eq!(
        parsed["http"]["grace_period_secs"].as_integer(),
        Some(9),
        "env > file"
    );
    assert_eq!(
        parsed["http"]["max_connections"].as_integer(),
        Some(500),
        "file > default"
    );
    assert_eq!(
        parsed["http"]["backlog"].as_integer(),
        Some(4096),
        "default"
    );
    assert_eq!(parsed["auth"]["secret"].as_str(), Some("<redacted>"));
    assert!(!out.contains("c2VjcmV0"), "secret leaked: {out}");
    assert!(
        out.contains("102 regions: 1 province, 11 cities, 90 counties"),
        "{out}"
    );
}

#[test]
fn regions_prints_the_tree() {
    let (status, out, err) = run(&["regions"], &[]);
    assert!(status.success(), "{err}");
    assert_eq!(out.lines().count(), 102);
    assert!(
        out.lines()
            .next()
            .is_some_and(|l| l.starts_with("330000 浙江省")),
        "{out}"
    );
    let (status, out, _) = run(&["regions", "330100"], &[]);
    assert!(status.success());
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("330100 杭州市"), "{out}");
    assert!(
        lines
            .iter()
            .any(|l| l.trim_start().starts_with("330106 西湖区")),
        "{out}"
    );
    assert!(
        lines.iter().skip(1).all(|l| l.starts_with("  3301")),
        "{out}"
    );
    let (status, _, err) = run(&["regions", "320000"], &[]);
    assert_eq!(status.code(), Some(2), "{err}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    use std::io::{BufRead as _, BufReader};
    let tmp = tempfile::tempdir().expect("tmp");
    let mut child = std::process::Command::new(common::binary())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--data-dir",
        ])
        .arg(tmp.path().join("d"))
        .env("HUBCAST_SFU__UDP_LISTEN", "127.0.0.1:0")
        .env("HUBCAST_SFU__TCP_LISTEN", "127.0.0.1:0")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    while let Some(Ok(line)) = lines.next() {
        let value: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            value["level"].is_string() && value["timestamp"].is_string(),
            "{line}"
        );
        let ready = value["fields"]["message"] == "hubcast ready";
        seen.push(value);
        if ready {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen.iter()
            .any(|v| v["fields"]["message"] == "hubcast ready"),
        "{seen:?}"
    );
}

/// The shipped example (`deploy/hubcast.example.toml`) is a valid configuration and every
/// setting it writes out takes effect with the value it shows: a setting renamed or dropped
/// in the code, or a value the loader reads differently, fails here (settings left
/// commented out are not checked).
#[test]
fn the_shipped_example_config_is_valid_and_every_value_takes_effect() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/hubcast.example.toml");
    let (status, out, err) = run(&["check-config", "--config", example], &[]);
    assert!(status.success(), "{err}");
    let effective: toml::Table = toml::from_str(&out).expect("check-config prints TOML");
    let text = std::fs::read_to_string(example).expect("read the example");
    let written: toml::Table = toml::from_str(&text).expect("the example is TOML");
    let mut checked = 0;
    for (key, value) in &written {
        match value {
            toml::Value::Table(section) => {
                for (name, v) in section {
                    assert_eq!(
                        effective.get(key).and_then(|s| s.get(name)),
                        Some(v),
                        "[{key}] {name}"
                    );
                    checked += 1;
                }
            }
            v => {
                assert_eq!(effective.get(key), Some(v), "{key}");
                checked += 1;
            }
        }
    }
    assert!(checked > 40, "only {checked} settings checked");
}

/// A start that fails for a reason that may pass (here: the port is still held, as by a hub
/// that has not finished stopping) exits 1, which the systemd unit restarts; an invalid value
/// is 2, which it does not (`RestartPreventExitStatus=2`). Both name the setting.
#[test]
fn a_port_in_use_is_a_start_error_not_an_invalid_setting() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = held.local_addr().expect("addr").to_string();
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("d");
    let data = data.to_str().expect("path");
    let env = [
        ("HUBCAST_SFU__UDP_LISTEN", "127.0.0.1:0"),
        ("HUBCAST_SFU__TCP_LISTEN", "127.0.0.1:0"),
    ];
    let (status, _out, err) = run(&["serve", "--data-dir", data, "--listen", &addr], &env);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.lines()
            .any(|l| l.starts_with("hubcast: cannot start: listen: ")),
        "{err}"
    );
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    let udp_addr = udp.local_addr().expect("addr").to_string();
    let env = [
        ("HUBCAST_SFU__UDP_LISTEN", udp_addr.as_str()),
        ("HUBCAST_SFU__TCP_LISTEN", "127.0.0.1:0"),
    ];
    let (status, _out, err) = run(
        &["serve", "--data-dir", data, "--listen", "127.0.0.1:0"],
        &env,
    );
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("cannot start: sfu.udp_listen: "), "{err}");
}

/// `--log-level` is what the operator asked for: `RUST_LOG` in the environment does not
/// silence it, and text logs to a pipe or journal carry no colour codes.
#[test]
fn the_log_level_flag_wins_and_piped_logs_are_plain() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("d");
    let data = data.to_str().expect("path");
    let mut child = std::process::Command::new(common::binary())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data,
            "--log-level",
            "debug",
        ])
        .env("RUST_LOG", "error")
        .env("HUBCAST_SFU__UDP_LISTEN", "127.0.0.1:0")
        .env("HUBCAST_SFU__TCP_LISTEN", "127.0.0.1:0")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let lines = common::stdout_lines(&mut child);
    lines
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("listening");
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().expect("exit");
    let err = String::from_utf8_lossy(&out.stderr);
    // RUST_LOG=error would have hidden every INFO line.
    assert!(
        err.contains(" INFO "),
        "the flag's level despite RUST_LOG=error: {err}"
    );
    assert!(!err.contains('\u{1b}'), "no escape codes: {err}");
}

/// `hubcast token` traps: each bad flag is named; a new key is announced on stderr (a hub on
/// another data dir refuses its tokens); a mistyped variable is warned about, not ignored.
#[test]
fn token_names_its_flags_and_says_what_it_did() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("d");
    let data = data.to_str().expect("path");
    let base = [
        "token",
        "--data-dir",
        data,
        "--role",
        "wall",
        "--region",
        "330100",
    ];
    for (extra, flag) in [
        (&["--sub", ""][..], "sub"),
        (&["--meeting", "a b/.."][..], "meeting"),
        (&["--ttl", "999d"][..], "ttl"),
    ] {
        let args: Vec<&str> = base.iter().copied().chain(extra.iter().copied()).collect();
        assert_config_error(&args, &[], flag);
    }
    let (status, out, err) = run(&base, &[("HUBCAST_AUTH_SECRET", "typo")]);
    assert!(status.success(), "{err}");
    assert_eq!(out.trim().split('.').count(), 3, "a token: {out}");
    assert!(err.contains("generated a new signing key"), "{err}");
    assert!(
        err.contains("HUBCAST_AUTH_SECRET"),
        "the typo is warned about: {err}"
    );
    let (status, _, err) = run(&base, &[]);
    assert!(status.success(), "{err}");
    assert!(
        !err.contains("generated"),
        "the key is reused silently: {err}"
    );
    // A directory given as the config file is named as such.
    let (status, _, err) = run(&["check-config", "--config", data], &[]);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("{data} is not a file")), "{err}");
}

/// A second `serve` on a data directory a running hub holds does not start (each would fan
/// out only its own publishes); it exits 1 naming the directory and the holder, and starts
/// once the first has stopped.
#[test]
fn a_second_hub_on_one_data_dir_does_not_start() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data_dir = tmp.path().join("data");
    let first = common::Hub::start_in(&data_dir, &[], &[]);
    let data = data_dir.display().to_string();
    let env = [
        ("HUBCAST_SFU__UDP_LISTEN", "127.0.0.1:0"),
        ("HUBCAST_SFU__TCP_LISTEN", "127.0.0.1:0"),
    ];
    let serve = ["serve", "--data-dir", &data, "--listen", "127.0.0.1:0"];
    let (status, _out, err) = run(&serve, &env);
    assert_eq!(status.code(), Some(1), "{err}");
    let holder = format!("(pid {})", first.child.id());
    assert!(
        err.contains("cannot start: data_dir: ")
            && err.contains("in use by another hubcast")
            && err.contains(&holder),
        "{err}"
    );
    drop(first);
    let second = common::Hub::start_in(&data_dir, &[], &[]);
    assert!(
        second.url.starts_with("http://"),
        "the directory is free again"
    );
}

/// Commands that serve nothing do not read the listener's TLS files (an operator's account
/// may not be allowed to read the private key); `check-config` still checks them.
#[test]
fn commands_that_serve_nothing_do_not_read_the_tls_files() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("d");
    let data = data.to_str().expect("path");
    let env = [
        ("HUBCAST_TLS__CERT", "/nonexistent/fullchain.pem"),
        ("HUBCAST_TLS__KEY", "/nonexistent/privkey.pem"),
    ];
    let token = common::mint_token(
        std::path::Path::new(data),
        "city-admin",
        "330100",
        &[],
        &env,
    );
    assert_eq!(token.matches('.').count(), 2, "a JWT: {token}");
    let (status, _out, err) = run(&["regions", "330100", "--data-dir", data], &env);
    assert!(status.success(), "{err}");
    let (status, _out, err) = run(&["check-config", "--data-dir", data], &env);
    assert_eq!(
        status.code(),
        Some(2),
        "check-config still reads them: {err}"
    );
    assert!(err.contains("tls.cert"), "{err}");
}
