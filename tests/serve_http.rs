//! `hubcast serve` end to end: health, readiness, metrics in Prometheus text, JSON errors.

mod common;

use common::{Hub, get};

#[tokio::test]
async fn health_ready_and_metrics() {
    let hub = Hub::start(&[], &[]);

    let health = get(hub.addr, "/healthz", &[]).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");

    let ready = get(hub.addr, "/readyz", &[]).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.json()["status"], "ready");

    // Generate some traffic with known labels, including an unmatched route.
    let missing = get(hub.addr, "/no/such/page", &[]).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"], "not_found");
    let wrong_method = common::request(
        tokio::net::TcpStream::connect(hub.addr)
            .await
            .expect("connect"),
        "POST",
        "/healthz",
        &[("Content-Length", "0")],
    )
    .await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.json()["error"], "method_not_allowed");

    let metrics = get(hub.addr, "/metrics", &[]).await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .header("content-type")
            .is_some_and(|v| v.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        metrics.headers
    );
    let lines = metrics.body.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format");
    let samples = &scrape.samples;
    let find = |name: &'static str| samples.iter().filter(move |s| s.metric == name);

    let build: Vec<_> = find("hubcast_build_info").collect();
    assert_eq!(build.len(), 1, "one build_info series");
    assert_eq!(
        build[0].labels.get("version"),
        Some(env!("CARGO_PKG_VERSION"))
    );
    for process in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        assert!(find(process).next().is_some(), "{process} missing");
    }
    let health_hits = find("hubcast_http_requests_total")
        .filter(|s| {
            s.labels.get("route") == Some("/healthz") && s.labels.get("status") == Some("200")
        })
        .count();
    assert_eq!(health_hits, 1, "healthz counted by route and status");
    let unmatched = find("hubcast_http_requests_total")
        .find(|s| s.labels.get("route") == Some("unmatched"))
        .expect("unknown paths share one label value");
    assert_eq!(unmatched.labels.get("status"), Some("404"));
    assert!(
        !metrics.body.contains("/no/such/page"),
        "raw paths must never become label values"
    );
    assert!(
        find("hubcast_ready")
            .any(|s| matches!(s.value, prometheus_parse::Value::Gauge(v) if v == 1.0))
    );

    // Text exposition format, line by line: every sample line is `name{labels} value`.
    for line in metrics
        .body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (_, value) = line.rsplit_once(' ').expect("sample line");
        assert!(
            value.parse::<f64>().is_ok() || value == "+Inf" || value == "NaN",
            "{line}"
        );
    }
}

#[tokio::test]
async fn metrics_behind_a_token_answer_only_to_it() {
    let secret = "prometheus-scrape-secret-0123";
    let hub = Hub::start(&[], &[("HUBCAST_HTTP__METRICS_TOKEN", secret)]);
    let wrong = format!("Bearer {secret}x");
    let basic = format!("Basic {secret}");
    for (what, headers) in [
        ("no token", vec![]),
        ("a wrong token", vec![("authorization", wrong.as_str())]),
        ("another scheme", vec![("authorization", basic.as_str())]),
    ] {
        let response = get(hub.addr, "/metrics", &headers).await;
        assert_eq!(response.status, 401, "{what}: {}", response.body);
        assert_eq!(response.json()["error"], "unauthorized", "{what}");
        assert!(
            response
                .header("www-authenticate")
                .is_some_and(|h| h.starts_with("Bearer ")),
            "{what}"
        );
        assert!(!response.body.contains("hubcast_build_info"), "{what}");
    }
    // The scheme is case-insensitive (RFC 7235), as for every other bearer token here.
    let lower = format!("bearer {secret}");
    let response = get(hub.addr, "/metrics", &[("authorization", lower.as_str())]).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let right = format!("Bearer {secret}");
    let response = get(hub.addr, "/metrics", &[("authorization", right.as_str())]).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(response.body.contains("hubcast_build_info{"));
    // Health and readiness stay open to probes.
    assert_eq!(get(hub.addr, "/readyz", &[]).await.status, 200);
    // check-config shows that a token is set, not the token.
    let (status, out, err) = common::run(
        &[
            "check-config",
            "--data-dir",
            hub.data_dir.to_str().expect("path"),
        ],
        &[("HUBCAST_HTTP__METRICS_TOKEN", secret)],
    );
    assert!(status.success(), "{err}");
    assert!(out.contains("metrics_token = \"<redacted>\""), "{out}");
    assert!(!out.contains(secret), "{out}");
}

/// Every `$ref` in `value` (a JSON pointer into `doc`) resolves.
fn check_refs(doc: &serde_json::Value, value: &serde_json::Value, seen: &mut usize) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(target) = map.get("$ref").and_then(|r| r.as_str()) {
                let pointer = target.strip_prefix('#').expect("a local reference");
                assert!(doc.pointer(pointer).is_some(), "dangling $ref {target}");
                *seen += 1;
            }
            map.values().for_each(|v| check_refs(doc, v, seen));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| check_refs(doc, v, seen)),
        _ => {}
    }
}

#[tokio::test]
async fn the_openapi_description_matches_the_router() {
    let hub = Hub::start(&[], &[]);
    let response = get(hub.addr, "/openapi.json", &[]).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let doc = response.json();
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "{}",
        doc["openapi"]
    );
    let mut refs = 0;
    check_refs(&doc, &doc, &mut refs);
    assert!(refs > 50, "{refs} references");

    // Every documented operation is routed: neither the router's 404 nor a 405.
    let paths = doc["paths"].as_object().expect("paths");
    let mut operations = 0;
    let mut ids = std::collections::HashSet::new();
    for (path, item) in paths {
        let concrete = path
            .replace("{room}", "r1")
            .replace("{id}", "1")
            .replace("{publisher}", "1")
            .replace("{code}", "330100")
            .replace("{file}", "1.xml")
            .replace("{path}", "test/publish.html");
        assert!(!concrete.contains('{'), "unknown parameter in {path}");
        for method in ["get", "post", "patch", "delete"] {
            let Some(op) = item.get(method) else { continue };
            operations += 1;
            let id = op["operationId"].as_str().expect("operationId");
            assert!(ids.insert(id.to_owned()), "operationId {id} twice");
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path}: no responses"
            );
            let stream = tokio::net::TcpStream::connect(hub.addr)
                .await
                .expect("connect");
            let verb = method.to_ascii_uppercase();
            let answer = common::request(stream, &verb, &concrete, &[]).await;
            let unrouted = answer.status == 405
                || (answer.status == 404 && answer.body.contains("no route for"));
            assert!(
                !unrouted,
                "{verb} {concrete}: {} {}",
                answer.status, answer.body
            );
        }
    }
    // The routes `router()` serves, kept here by hand (axum cannot list them): the documented
    // paths must be exactly these, so a route added to both places needs its description.
    let routed = [
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/ws/health",
        "/api/v1/whoami",
        "/api/v1/regions",
        "/api/v1/regions/{code}",
        "/api/v1/rooms/{room}",
        "/sse/rooms/{room}",
        "/whip/{room}",
        "/whip/{room}/sessions/{id}",
        "/whep/{room}",
        "/whep/{room}/{publisher}",
        "/whep/{room}/sessions/{id}",
        "/whep/{room}/sessions/{id}/layer",
        "/api/v1/alerts",
        "/alerts/{file}",
        "/ws/alerts",
        "/sse/alerts",
        "/feeds/alerts.atom",
        "/assets/{path}",
    ];
    let mut documented: Vec<&str> = paths.keys().map(String::as_str).collect();
    documented.sort_unstable();
    let mut routed = routed.to_vec();
    routed.sort_unstable();
    assert_eq!(documented, routed);
    assert_eq!(operations, 25);
}

#[tokio::test]
async fn regions_api() {
    let hub = Hub::start(&[], &[]);
    let xihu = get(hub.addr, "/api/v1/regions/330106", &[]).await;
    assert_eq!(xihu.status, 200);
    let body = xihu.json();
    assert_eq!(body["name_zh"], "西湖区");
    assert_eq!(body["parent"], "330100");
    assert_eq!(body["level"], "county");

    let all = get(hub.addr, "/api/v1/regions", &[]).await.json();
    assert_eq!(all.as_array().map(Vec::len), Some(102));

    let bad = get(hub.addr, "/api/v1/regions/33x", &[]).await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"], "bad_region");
    let absent = get(hub.addr, "/api/v1/regions/320000", &[]).await;
    assert_eq!(absent.status, 404);
}

/// What axum's extractors refuse (a path segment that is not UTF-8 once percent-decoded, a
/// repeated query parameter, a plain GET on a WebSocket endpoint) is a JSON error like any
/// other bad request, not axum's plain text.
#[tokio::test]
async fn malformed_paths_queries_and_upgrades_get_json_errors() {
    let hub = Hub::start(&[], &[]);
    for path in ["/api/v1/regions/%FF", "/alerts/%FF.xml", "/assets/%FF"] {
        let r = get(hub.addr, path, &[]).await;
        assert_eq!(
            (r.status, r.json()["error"].as_str()),
            (400, Some("bad_path")),
            "{path}: {}",
            r.body
        );
    }
    let whip = |path: &'static str| async move {
        let stream = tokio::net::TcpStream::connect(hub.addr)
            .await
            .expect("connect");
        let headers = [("Content-Type", "application/sdp"), ("Content-Length", "3")];
        common::request_with_body(stream, "POST", path, &headers, b"v=0").await
    };
    let r = whip("/whip/%FF").await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (400, Some("bad_path")),
        "{}",
        r.body
    );
    let r = whip("/whip/weekly?region=330100&region=330200").await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (400, Some("bad_parameter")),
        "{}",
        r.body
    );
    let r = get(hub.addr, "/ws/health", &[]).await;
    assert!((400..500).contains(&r.status), "{}", r.body);
    assert_eq!(r.json()["error"], "not_a_websocket", "{}", r.body);
}

/// Reads until the server closes the connection; how long that took (panics after `limit`).
async fn closed_within(
    stream: &mut tokio::net::TcpStream,
    limit: std::time::Duration,
) -> std::time::Duration {
    use tokio::io::AsyncReadExt as _;
    let started = std::time::Instant::now();
    let mut sink = Vec::new();
    let read = tokio::time::timeout(limit, stream.read_to_end(&mut sink)).await;
    assert!(read.is_ok(), "still open after {limit:?}");
    started.elapsed()
}

#[tokio::test]
async fn silent_and_slow_clients_are_closed_after_the_header_timeout() {
    use tokio::io::AsyncWriteExt as _;
    let hub = Hub::start(&[], &[("HUBCAST_HTTP__HEADER_READ_TIMEOUT_SECS", "1")]);
    let limit = std::time::Duration::from_secs(5);
    // Connects and says nothing.
    let mut silent = tokio::net::TcpStream::connect(hub.addr)
        .await
        .expect("connect");
    let took = closed_within(&mut silent, limit).await;
    assert!(took >= std::time::Duration::from_millis(900), "{took:?}");
    // Starts a request line and stalls (hyper's header timeout); also for the SSE path.
    // Stalls inside the HTTP/2 preface (hyper is still choosing a protocol), or after it
    // (HTTP/2 handshake): no request within the header timeout either way.
    for start in [
        "GET /heal",
        "GET /sse/alerts?region=330100 HTTP/1.1\r\nHost: x\r\n",
        "PRI * HTTP/2.0\r\n",
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ] {
        let mut slow = tokio::net::TcpStream::connect(hub.addr)
            .await
            .expect("connect");
        slow.write_all(start.as_bytes()).await.expect("write");
        closed_within(&mut slow, limit).await;
    }
    // And the hub still serves.
    assert_eq!(get(hub.addr, "/healthz", &[]).await.status, 200);
}
