//! Headless Chromium through chromedriver, inside a loopback-only network namespace: pages
//! load, JS (and promises) evaluate, the fake camera works, WebRTC connects over loopback, the
//! test pages run, and closing leaves no Chromium process behind.

use std::time::Duration;

use serde_json::json;
use testkit::browser::Browser;

/// Processes (pid, state) whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains(needle) {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat
                .rsplit(") ")
                .next()
                .unwrap_or("?")
                .chars()
                .take(1)
                .collect();
            found.push((pid, state));
        }
    }
    found
}

/// Zombie children of this test process.
fn zombie_children() -> Vec<String> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("status")).ok())
        .filter(|s| s.contains("State:\tZ") && s.lines().any(|l| l == format!("PPid:\t{me}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_runs_js_media_and_loopback_webrtc() {
    testkit::isolated!();
    let browser = Browser::launch().await.expect("launch chromium");
    let profile = browser.profile_dir().display().to_string();
    assert!(
        !processes_mentioning(&profile).is_empty(),
        "chromium not running"
    );

    browser
        .goto("data:text/html;charset=utf-8,<title>测试</title><p id=x>你好</p>")
        .await
        .expect("goto");
    assert_eq!(
        browser.eval("document.title").await.expect("title"),
        json!("测试")
    );
    let later = "new Promise(r => setTimeout(() => r({n: 42}), 100))";
    assert_eq!(
        browser.eval(later).await.expect("promise"),
        json!({"n": 42})
    );
    let err = browser
        .eval("Promise.reject(new Error('nope'))")
        .await
        .expect_err("rejects");
    assert!(err.to_string().contains("nope"), "{err}");
    let two = browser
        .execute("return arguments[0] + 1;", vec![json!(1)])
        .await
        .expect("execute");
    assert_eq!(two, json!(2));

    // Media capture needs a secure context: file:// is one, data: is not.
    let page = format!("{profile}/blank.html");
    std::fs::write(&page, "<!doctype html><title>blank</title>").expect("write page");
    browser
        .goto(&format!("file://{page}"))
        .await
        .expect("goto file");
    let gum = "navigator.mediaDevices.getUserMedia({video: {width: 1280, height: 720}, audio: true})\
               .then(s => s.getTracks().map(t => t.kind + ':' + t.getSettings().width).sort())";
    assert_eq!(
        browser.eval(gum).await.expect("fake devices"),
        json!(["audio:undefined", "video:1280"])
    );

    // Two peer connections in the page, no ICE servers: loopback candidates must connect.
    let loopback = r#"(async () => {
        const a = new RTCPeerConnection({iceServers: []}), b = new RTCPeerConnection({iceServers: []});
        const cands = [];
        a.onicecandidate = e => { if (e.candidate) { cands.push(e.candidate.candidate); b.addIceCandidate(e.candidate); } };
        b.onicecandidate = e => e.candidate && a.addIceCandidate(e.candidate);
        const s = await navigator.mediaDevices.getUserMedia({video: true});
        a.addTrack(s.getVideoTracks()[0], s);
        const decoded = new Promise(r => b.ontrack = () => r());
        await a.setLocalDescription(); await b.setRemoteDescription(a.localDescription);
        await b.setLocalDescription(); await a.setRemoteDescription(b.localDescription);
        await decoded;
        for (let i = 0; i < 100; i++) {
          let frames = 0;
          (await b.getStats()).forEach(r => { if (r.type === 'inbound-rtp') frames = r.framesDecoded || 0; });
          if (frames > 5) return {frames, cands};
          await new Promise(r => setTimeout(r, 100));
        }
        return {frames: 0, cands, state: a.connectionState};
      })()"#;
    let v = browser.eval(loopback).await.expect("loopback webrtc");
    assert!(
        v["frames"].as_u64().unwrap_or(0) > 5,
        "no frames decoded: {v}"
    );
    let cands = v["cands"].as_array().expect("candidates");
    assert!(
        cands
            .iter()
            .all(|c| c.as_str().is_some_and(|c| c.contains("127.0.0.1"))),
        "{v}"
    );

    let png = browser.screenshot_png().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000);

    browser.close().await.expect("close");
    let left = processes_mentioning(&profile);
    assert!(
        left.iter().all(|(_, st)| st == "Z") && zombie_children().is_empty(),
        "{left:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_pages_start_and_report_a_missing_hub() {
    testkit::isolated!();
    let assets = concat!(env!("CARGO_MANIFEST_DIR"), "/../dashboard/assets/test");
    let browser = Browser::launch().await.expect("launch chromium");
    // Nothing listens on port 9: the pages must get as far as the POST and report the failure.
    // The token as a fragment (publish) and as a query parameter (view): either way the page
    // takes it and leaves it out of the address bar.
    for (page, expect, url_rest) in [
        (
            "publish.html",
            "WHIP",
            "?room=r1&base=http://127.0.0.1:9#token=t&x=1",
        ),
        (
            "view.html",
            "WHEP",
            "?room=r1&token=t&base=http://127.0.0.1:9",
        ),
    ] {
        let url = format!("file://{assets}/{page}{url_rest}");
        browser.goto(&url).await.expect("goto");
        let state = browser
            .wait_for(
                "hubcastState().error && hubcastState()",
                Duration::from_secs(15),
            )
            .await
            .unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(
            state["status"]
                .as_str()
                .is_some_and(|s| s.starts_with("失败")),
            "{page}: {state}"
        );
        assert!(state["location"].is_null(), "{page} ({expect}): {state}");
        let href = browser.eval("location.href").await.expect("href");
        let href = href.as_str().unwrap_or_default();
        assert!(
            !href.contains("token") && href.contains("room=r1"),
            "{page}: the token stays in the address bar: {href}"
        );
        assert_eq!(href.contains("#x=1"), page == "publish.html", "{href}");
        let stats = browser.eval("hubcastStats()").await.expect("stats");
        assert!(stats.is_object(), "{page}: {stats}");
    }
    // The relay rewrite in the page matches the Rust one: UDP candidates → via, TCP dropped.
    let sdp = "a=candidate:1 1 udp 2130706431 127.0.0.1 3478 typ host\\r\\n\
               a=candidate:2 1 tcp 1518280447 127.0.0.1 3479 typ host tcptype passive\\r\\n";
    let rewritten = browser
        .eval(&format!("rewriteCandidates(\"{sdp}\", '127.0.0.1:40000')"))
        .await
        .expect("rewrite");
    assert_eq!(
        rewritten,
        json!("a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\n")
    );
    let layer = browser
        .eval("hubcastSetLayer('q')")
        .await
        .expect_err("no session yet");
    assert!(layer.to_string().contains("no WHEP session"), "{layer}");
    browser.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_browser_without_close_kills_it() {
    testkit::isolated!();
    let browser = Browser::launch().await.expect("launch chromium");
    let profile = browser.profile_dir().display().to_string();
    browser.goto("data:text/html,<p>x</p>").await.expect("goto");
    // Waiting for a name the page never defines: the timeout says where the page got to.
    let err = browser
        .wait_for("neverDefined()", Duration::from_millis(300))
        .await
        .expect_err("never defined");
    let text = err.to_string();
    assert!(text.contains("ReferenceError"), "{text}");
    assert!(text.contains("\"readyState\":\"complete\""), "{text}");
    drop(browser);
    let left = processes_mentioning(&profile);
    assert!(
        left.iter().all(|(_, st)| st == "Z"),
        "still running after drop: {left:?}"
    );
    assert!(
        zombie_children().is_empty(),
        "zombies: {:?}",
        zombie_children()
    );
}
