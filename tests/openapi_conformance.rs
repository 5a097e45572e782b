//! The published OpenAPI document (`GET /openapi.json`) against the running hub, checked by an
//! independent tool: schemathesis (PyPI; `scripts/test.sh` installs the version below) sends
//! property-based requests to every operation but the never-ending streams (`/sse/…`,
//! `/ws/…`, which their own tests cover), once with a province admin's token and once with
//! none, and checks every response against the document: no 5xx, only documented status codes,
//! content types and headers, bodies valid against their schemas, requests that break the
//! document refused, authentication not ignored, unsupported methods answered 405.
//!
//! Not checked: that every request the document allows succeeds (schemathesis'
//! `positive_data_acceptance`). A schema cannot say which strings are SDP offers, CAP
//! documents, opaque cursors or current ETags, so those requests are refused as documented.
//! Half of the generated positive requests name what exists on the hub (`tests/openapi/hooks.py`:
//! the live room's sessions, stored alerts), so 2xx answers are checked as well as 4xx.

mod alerts_util;
mod common;

use std::process::Command;

use common::{Hub, call, sdp_offer};

/// The schemathesis release these seeds were checked with.
const VERSION: &str = "4.32.5";

/// Its command line, without relying on where pip put the `schemathesis` script.
const CLI: &str = "import sys\nfrom schemathesis.cli import schemathesis\nsys.exit(schemathesis())";

#[tokio::test]
async fn the_hub_answers_as_its_openapi_document_says() {
    let installed = Command::new("python3")
        .args(["-c", "import schemathesis; print(schemathesis.__version__)"])
        .output()
        .expect("python3");
    let version = String::from_utf8_lossy(&installed.stdout).trim().to_owned();
    assert_eq!(
        version,
        VERSION,
        "schemathesis {VERSION} (pip install schemathesis=={VERSION}; scripts/test.sh does): {}",
        String::from_utf8_lossy(&installed.stderr)
    );
    // Sessions that never connect stay for the whole run instead of the default 15 s.
    let hub = Hub::start(&[], &[("HUBCAST_SFU__CONNECT_TIMEOUT_SECS", "3600")]);
    let province = hub.token("province-admin", "330000", &[]);
    for xml in [alerts_util::FOOD_XML, alerts_util::SPOT_XML] {
        alerts_util::publish_xml(&hub, &province, xml).await;
    }
    let mut sessions = Vec::new();
    for (path, direction) in [("/whip/live", "a=sendonly"), ("/whep/live", "a=recvonly")] {
        let offer = sdp_offer(direction, "a=rtpmap:96 VP8/90000");
        let answer = call(
            &hub,
            "POST",
            path,
            Some(&province),
            "application/sdp",
            &offer,
        )
        .await;
        assert_eq!(answer.status, 201, "{path}: {}", answer.body);
        let location = answer.header("location").expect("Location");
        let id = location.rsplit('/').next().expect("session id").to_owned();
        sessions.push(id);
    }
    let dir = tempfile::tempdir().expect("tmp");
    let live = serde_json::json!({
        "room": "live",
        "publisher": sessions[0],
        "viewer": sessions[1],
        "files": ["1.xml", "1.json", "2.xml", "2.json"],
    });
    let live_path = dir.path().join("live.json");
    std::fs::write(&live_path, live.to_string()).expect("write live.json");

    let hooks = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openapi");
    let auth = format!("Authorization: Bearer {province}");
    // Seeds fix what is generated (one worker: the same requests in the same order).
    for (who, seed, header) in [
        ("a province admin", "1", Some(&auth)),
        ("no token", "4", None),
    ] {
        let mut command = Command::new("python3");
        command
            .args(["-c", CLI, "run", &format!("{}/openapi.json", hub.url)])
            .args(["--url", &hub.url])
            .args([
                "--checks",
                "all",
                "--exclude-checks",
                "positive_data_acceptance",
            ])
            .args(["--exclude-path-regex", "^/(sse|ws)/"])
            .args(["--max-examples", "50", "--seed", seed, "--workers", "1"])
            .args(["--request-timeout", "10", "--generation-database", "none"])
            .args(["--continue-on-failure", "--no-color"])
            .current_dir(dir.path())
            .env("SCHEMATHESIS_HOOKS", "hooks")
            .env("PYTHONPATH", hooks)
            .env("HUBCAST_ST_LIVE", &live_path);
        if let Some(header) = header {
            command.args(["-H", header]);
        }
        let run = command.output().expect("python3 runs schemathesis");
        let stdout = String::from_utf8_lossy(&run.stdout);
        println!("--- schemathesis, {who} ---\n{stdout}");
        assert!(
            run.status.success(),
            "the hub differs from its OpenAPI document ({who}; {}):\n{stdout}\n{}",
            run.status,
            String::from_utf8_lossy(&run.stderr)
        );
        assert!(
            stdout.contains("Tested: 20"),
            "every operation but the streams was tested ({who}):\n{stdout}"
        );
    }
    // Nothing generated took the hub down.
    let health = common::get(hub.addr, "/healthz", &[]).await;
    assert_eq!(health.status, 200, "{}", health.body);
}
