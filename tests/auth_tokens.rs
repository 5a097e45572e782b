//! Tokens minted by `hubcast token` are accepted by `/api/v1/whoami`; expired, wrongly signed,
//! `alg: none`, alg-confused and malformed tokens get 401 with a JSON body; nothing panics.

mod common;

use base64::Engine as _;
use common::{Hub, get};

fn b64(json: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

async fn whoami(hub: &Hub, token: &str) -> common::Response {
    let auth = format!("Bearer {token}");
    get(hub.addr, "/api/v1/whoami", &[("Authorization", &auth)]).await
}

fn assert_401(response: &common::Response, code: &str, what: &str) {
    assert_eq!(response.status, 401, "{what}: {}", response.body);
    let body = response.json();
    assert_eq!(body["error"], code, "{what}: {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}"
    );
    assert!(
        response
            .header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer")),
        "{what}: RFC 6750 challenge"
    );
}

#[tokio::test]
async fn minted_token_is_accepted() {
    let hub = Hub::start(&[], &[]);
    for (role, region) in [
        ("province-admin", "330000"),
        ("city-admin", "330100"),
        ("county-operator", "330106"),
        ("wall", "330100"),
        ("public", "330000"),
    ] {
        let token = hub.token(role, region, &["--sub", "张三", "--ttl", "15m"]);
        let response = whoami(&hub, &token).await;
        assert_eq!(response.status, 200, "{role}: {}", response.body);
        let body = response.json();
        assert_eq!(body["role"], role);
        assert_eq!(body["region"], region);
        assert_eq!(body["subject"], "张三");
    }
    let token = hub.token("county-operator", "330106", &["--meeting", "m-1"]);
    let body = whoami(&hub, &token).await.json();
    assert_eq!(body["meeting"], "m-1");
    // Without --sub each token has a subject of its own (media sessions answer to it).
    let subject = |body: &serde_json::Value| body["subject"].as_str().unwrap_or("").to_owned();
    let first = subject(&body);
    let tag = first.strip_prefix("county-operator@330106#").unwrap_or("");
    assert!(
        tag.len() == 16 && tag.bytes().all(|b| b.is_ascii_hexdigit()),
        "{first}"
    );
    let other = hub.token("county-operator", "330106", &[]);
    let second = subject(&whoami(&hub, &other).await.json());
    assert!(
        second.starts_with("county-operator@330106#") && second != first,
        "{second}"
    );
    assert_eq!(body["region_info"]["name_zh"], "西湖区");
}

#[tokio::test]
async fn bad_tokens_are_refused_with_json() {
    let hub = Hub::start(&[], &[("HUBCAST_AUTH__LEEWAY_SECS", "0")]);
    let good = hub.token("city-admin", "330100", &[]);
    let (head, rest) = good.split_once('.').expect("jwt");
    let (payload, _signature) = rest.split_once('.').expect("jwt");

    // Expired: minted with a 1 s lifetime against a hub with no leeway.
    let short = {
        let dir = hub.data_dir.display().to_string();
        let (status, out, err) = common::run(
            &[
                "token",
                "--role",
                "wall",
                "--region",
                "330100",
                "--ttl",
                "1s",
                "--data-dir",
                &dir,
            ],
            &[],
        );
        assert!(status.success(), "{err}");
        out.trim().to_owned()
    };
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_401(&whoami(&hub, &short).await, "token_expired", "expired");

    // Signed with another hub's key.
    let other = Hub::start(&[], &[]);
    let foreign = other.token("city-admin", "330100", &[]);
    assert_401(
        &whoami(&hub, &foreign).await,
        "bad_signature",
        "foreign key",
    );

    // Payload altered after signing (role escalated).
    let forged_payload = b64(&String::from_utf8(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("payload"),
    )
    .expect("utf8")
    .replace("city-admin", "province-admin")
    .replace("330100", "330000"));
    let forged = format!("{head}.{forged_payload}.{_signature}");
    assert_401(
        &whoami(&hub, &forged).await,
        "bad_signature",
        "forged payload",
    );

    // alg: none, with and without a trailing signature.
    let none_head = b64(r#"{"alg":"none","typ":"JWT"}"#);
    assert_401(
        &whoami(&hub, &format!("{none_head}.{payload}.")).await,
        "unsupported_algorithm",
        "alg none",
    );
    assert_401(
        &whoami(&hub, &format!("{none_head}.{payload}.{_signature}")).await,
        "unsupported_algorithm",
        "alg none signed",
    );
    // Algorithm confusion: claims HS512 / EdDSA on an HS256 hub.
    let hs512 = b64(r#"{"alg":"HS512","typ":"JWT"}"#);
    assert_401(
        &whoami(&hub, &format!("{hs512}.{payload}.{_signature}")).await,
        "unsupported_algorithm",
        "HS512",
    );

    // Malformed shapes.
    for (what, token) in [
        ("one segment", "abc".to_owned()),
        ("two segments", format!("{head}.{payload}")),
        ("four segments", format!("{good}.x")),
        ("not base64", "!!!.???.***".to_owned()),
        (
            "header not JSON",
            format!("{}.{payload}.{_signature}", b64("hello")),
        ),
        ("huge", "a".repeat(20_000)),
    ] {
        let response = whoami(&hub, &token).await;
        assert_eq!(response.status, 401, "{what}: {}", response.body);
        assert!(response.json()["error"].is_string(), "{what}");
    }

    // No credentials, or the wrong scheme.
    let none = get(hub.addr, "/api/v1/whoami", &[]).await;
    assert_401(&none, "missing_token", "no header");
    let basic = get(
        hub.addr,
        "/api/v1/whoami",
        &[("Authorization", "Basic dXNlcjpwYXNz")],
    )
    .await;
    assert_401(&basic, "missing_token", "basic auth");

    // The hub survived all of it.
    assert_eq!(get(hub.addr, "/healthz", &[]).await.status, 200);
    assert_eq!(whoami(&hub, &good).await.status, 200);
}

#[tokio::test]
async fn eddsa_tokens_work_end_to_end() {
    let env = [("HUBCAST_AUTH__ALGORITHM", "EdDSA")];
    let hub = Hub::start(&[], &env);
    let dir = hub.data_dir.display().to_string();
    let (status, out, err) = common::run(
        &[
            "token",
            "--role",
            "county-operator",
            "--region",
            "330106",
            "--data-dir",
            &dir,
        ],
        &env,
    );
    assert!(status.success(), "{err}");
    let response = whoami(&hub, out.trim()).await;
    assert_eq!(response.status, 200, "{}", response.body);
    // An HS256 token presented to an EdDSA hub is an algorithm mismatch.
    let hs = Hub::start(&[], &[]).token("wall", "330100", &[]);
    assert_401(
        &whoami(&hub, &hs).await,
        "unsupported_algorithm",
        "HS256 on EdDSA hub",
    );
}
