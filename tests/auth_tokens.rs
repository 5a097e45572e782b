//! Tokens minted by `hubcast token` are accepted by `/api/v1/whoami`, and so are an identity
//! provider's (minted by PyJWT, with its issuer, audience and extra claims); expired, wrongly
//! signed, `alg: none`, alg-confused and malformed tokens, and tokens for another issuer or
//! audience, get 401 with a JSON body; nothing panics.

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

/// PyJWT (an implementation that shares nothing with the hub's), minting as an identity
/// provider would: hubcast's claims plus `jti`, `azp`, `scope`, `iss`, `aud`, `nbf` and a
/// `kid` header.
fn idp_token(alg: &str, key: &std::path::Path, claims: &serde_json::Value) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/jwt/idp_mint.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(alg)
        .arg(key)
        .arg(claims.to_string())
        .output()
        .expect("python3 (scripts/test.sh installs PyJWT)");
    assert!(
        out.status.success(),
        "PyJWT: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A change to an identity provider's claims.
type Edit = dyn Fn(&mut serde_json::Value);

/// Tokens of the organisation's own identity provider: with `auth.issuer` and
/// `auth.audience` set, PyJWT tokens carrying them (HS256 with the hub's secret, EdDSA with
/// its Ed25519 key) are accepted whatever else they carry; another issuer or audience, a
/// future `nbf`, or no `aud` are 401 `invalid_claims` / `token_not_yet_valid`; and
/// `hubcast token` writes `iss` and `aud` so its tokens still pass.
#[tokio::test]
async fn tokens_of_an_identity_provider_are_accepted() {
    const ISS: &str = "https://idp.scjg.zj.gov.cn/realms/hub";
    for (alg, key_file) in [("HS256", "jwt-hs256.key"), ("EdDSA", "jwt-ed25519.key.pem")] {
        let env = [
            ("HUBCAST_AUTH__ALGORITHM", alg),
            ("HUBCAST_AUTH__ISSUER", ISS),
            ("HUBCAST_AUTH__AUDIENCE", "hubcast"),
        ];
        let hub = Hub::start(&[], &env);
        let key = hub.data_dir.join(key_file);
        let idp = |edit: &Edit| {
            let mut claims = serde_json::json!({
                "sub": "zhang.wei", "role": "city-admin", "region": "330100",
                "exp": 300, "iat": 0, "nbf": 0, "iss": ISS, "aud": ["account", "hubcast"],
                "jti": "b2f6a3", "azp": "wall-console", "scope": "openid profile",
                "preferred_username": "张伟",
            });
            edit(&mut claims);
            idp_token(alg, &key, &claims)
        };
        let accepted = whoami(&hub, &idp(&|_| {})).await;
        assert_eq!(accepted.status, 200, "{alg}: {}", accepted.body);
        assert_eq!(accepted.json()["subject"], "zhang.wei", "{}", accepted.body);
        let refused: [(&str, &Edit, &str); 4] = [
            (
                "another issuer",
                &|c| c["iss"] = "https://evil.example".into(),
                "invalid_claims",
            ),
            (
                "another audience",
                &|c| c["aud"] = "wiki".into(),
                "invalid_claims",
            ),
            (
                "no audience",
                &|c| {
                    c.as_object_mut().map(|o| o.remove("aud"));
                },
                "invalid_claims",
            ),
            (
                "not yet valid",
                &|c| c["nbf"] = 600.into(),
                "token_not_yet_valid",
            ),
        ];
        for (what, edit, code) in refused {
            assert_401(
                &whoami(&hub, &idp(edit)).await,
                code,
                &format!("{alg}: {what}"),
            );
        }
        let ours = common::mint_token(&hub.data_dir, "wall", "330000", &[], &env);
        let response = whoami(&hub, &ours).await;
        assert_eq!(
            response.status, 200,
            "{alg}: hubcast token: {}",
            response.body
        );
    }
}
