//! Minting and verifying tokens: round trips, and each way a token is refused.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};
use tiers::{
    Principal, RegionCode, RegionTree, Role, SigningKey, TokenError, TokenIssuer, TokenVerifier,
};

const NOW: u64 = 1_700_000_000;
const SECRET: [u8; 32] = [0x5a; 32];

fn code(s: &str) -> RegionCode {
    RegionCode::parse(s).expect("valid code")
}

fn hs_pair() -> (TokenIssuer, TokenVerifier) {
    let key = SigningKey::generate_hs256(SECRET);
    let issuer = TokenIssuer::new(&key).expect("issuer");
    let verifier = TokenVerifier::new(&key, 30, RegionTree::zhejiang()).expect("verifier");
    (issuer, verifier)
}

fn city_admin() -> Principal {
    Principal::new(
        &RegionTree::zhejiang(),
        "hz-admin",
        Role::CityAdmin,
        code("330100"),
        None,
    )
    .expect("valid")
}

/// Signs arbitrary claims with the test HS256 secret (what an attacker holding the secret, or
/// a buggy issuer, could produce).
fn hs_sign(claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(&SECRET),
    )
    .expect("encodes")
}

/// Signs a payload given as JSON text (e.g. with a repeated key, which `Value` cannot hold).
fn hs_sign_raw(payload: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(payload);
    let signed = format!("{header}.{body}");
    let signature = jsonwebtoken::crypto::sign(
        signed.as_bytes(),
        &EncodingKey::from_secret(&SECRET),
        jsonwebtoken::Algorithm::HS256,
    )
    .expect("signs");
    format!("{signed}.{signature}")
}

fn claims(role: &str, region: &str) -> Value {
    json!({"sub": "s", "role": role, "region": region, "exp": NOW + 60, "iat": NOW})
}

#[test]
fn hs256_round_trip() {
    let (issuer, verifier) = hs_pair();
    let token = issuer.mint(&city_admin(), NOW, 3600).expect("mints");
    assert_eq!(verifier.verify(&token, NOW + 10), Ok(city_admin()));
}

#[test]
fn eddsa_round_trip_with_meeting() {
    let key = SigningKey::generate_eddsa([3; 32]).expect("key");
    let issuer = TokenIssuer::new(&key).expect("issuer");
    let SigningKey::EdDsa { public_pem, .. } = &key else {
        panic!("EdDSA")
    };
    // A verifier needs only the public half.
    let public_only = SigningKey::EdDsa {
        private_pem: String::new(),
        public_pem: public_pem.clone(),
    };
    let verifier = TokenVerifier::new(&public_only, 0, RegionTree::zhejiang()).expect("verifier");
    let wall = Principal::new(
        &RegionTree::zhejiang(),
        "wall-1",
        Role::Wall,
        code("330000"),
        Some("m-42".into()),
    )
    .expect("valid");
    let token = issuer.mint(&wall, NOW, 60).expect("mints");
    assert!(token.starts_with(&URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT","alg":"EdDSA"}"#)));
    assert_eq!(verifier.verify(&token, NOW), Ok(wall));
    let other = SigningKey::generate_eddsa([4; 32]).expect("key");
    let wrong = TokenVerifier::new(&other, 0, RegionTree::zhejiang()).expect("verifier");
    assert_eq!(wrong.verify(&token, NOW), Err(TokenError::BadSignature));
}

#[test]
fn alg_none_is_refused_before_anything_else() {
    let (_, verifier) = hs_pair();
    let payload = URL_SAFE_NO_PAD.encode(claims("province-admin", "330000").to_string());
    for header in [
        r#"{"alg":"none","typ":"JWT"}"#,
        r#"{"alg":"None"}"#,
        r#"{"alg":"NONE"}"#,
    ] {
        let token = format!("{}.{payload}.", URL_SAFE_NO_PAD.encode(header));
        let got = verifier.verify(&token, NOW);
        assert!(
            matches!(got, Err(TokenError::UnsupportedAlgorithm(_))),
            "{header}: {got:?}"
        );
    }
}

#[test]
fn algorithm_confusion_is_refused() {
    // An EdDSA deployment; the attacker HMACs a token with the public key as the secret.
    let key = SigningKey::generate_eddsa([5; 32]).expect("key");
    let verifier = TokenVerifier::new(&key, 0, RegionTree::zhejiang()).expect("verifier");
    let SigningKey::EdDsa { public_pem, .. } = &key else {
        panic!("EdDSA")
    };
    let forged = jsonwebtoken::encode(
        &Header::new(jsonwebtoken::Algorithm::HS256),
        &claims("province-admin", "330000"),
        &EncodingKey::from_secret(public_pem.as_bytes()),
    )
    .expect("encodes");
    assert_eq!(
        verifier.verify(&forged, NOW),
        Err(TokenError::UnsupportedAlgorithm("HS256".into()))
    );
    // And the other way: an HS256 deployment refuses EdDSA tokens, even validly signed ones.
    let ed_token = TokenIssuer::new(&key)
        .expect("issuer")
        .mint(&city_admin(), NOW, 60)
        .expect("mints");
    let (_, hs_verifier) = hs_pair();
    assert_eq!(
        hs_verifier.verify(&ed_token, NOW),
        Err(TokenError::UnsupportedAlgorithm("EdDSA".into()))
    );
    // HS384/HS512 with the right secret are refused too.
    let hs512 = jsonwebtoken::encode(
        &Header::new(jsonwebtoken::Algorithm::HS512),
        &claims("city-admin", "330100"),
        &EncodingKey::from_secret(&SECRET),
    )
    .expect("encodes");
    assert!(matches!(
        hs_verifier.verify(&hs512, NOW),
        Err(TokenError::UnsupportedAlgorithm(_))
    ));
}

#[test]
fn tampering_breaks_the_signature() {
    let (issuer, verifier) = hs_pair();
    let token = issuer.mint(&city_admin(), NOW, 60).expect("mints");
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = URL_SAFE_NO_PAD.encode(claims("province-admin", "330000").to_string());
    assert_eq!(
        verifier.verify(&parts.join("."), NOW),
        Err(TokenError::BadSignature)
    );
    let other = TokenVerifier::new(
        &SigningKey::generate_hs256([1; 32]),
        0,
        RegionTree::zhejiang(),
    )
    .expect("v");
    assert_eq!(other.verify(&token, NOW), Err(TokenError::BadSignature));
    let unsigned = format!("{}.{}.", parts[0], parts[1]);
    assert_eq!(
        verifier.verify(&unsigned, NOW),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn expiry_and_issue_time_use_the_callers_clock_with_leeway() {
    let (issuer, verifier) = hs_pair(); // leeway 30 s
    let token = issuer.mint(&city_admin(), NOW, 60).expect("mints");
    assert!(
        verifier.verify(&token, NOW + 89).is_ok(),
        "within exp + leeway"
    );
    assert_eq!(verifier.verify(&token, NOW + 90), Err(TokenError::Expired));
    assert_eq!(verifier.verify(&token, u64::MAX), Err(TokenError::Expired));
    assert!(
        verifier.verify(&token, NOW - 30).is_ok(),
        "iat within leeway"
    );
    assert_eq!(
        verifier.verify(&token, NOW - 31),
        Err(TokenError::NotYetValid)
    );
    assert_eq!(verifier.verify(&token, 0), Err(TokenError::NotYetValid));
    // What a stream opened with it must not outlive: the first second it is refused.
    let (_, until) = verifier.verify_until(&token, NOW).expect("valid");
    assert_eq!(until, NOW + 90);
}

#[test]
fn claims_are_parsed_strictly() {
    let (_, verifier) = hs_pair();
    let invalid = |mut value: Value, edit: fn(&mut Value)| {
        edit(&mut value);
        let got = verifier.verify(&hs_sign(&value), NOW);
        assert!(
            matches!(got, Err(TokenError::InvalidClaims(_))),
            "{value}: {got:?}"
        );
    };
    let base = claims("city-admin", "330100");
    assert!(verifier.verify(&hs_sign(&base), NOW).is_ok());
    invalid(base.clone(), |v| v["role"] = json!("superuser"));
    invalid(base.clone(), |v| v["role"] = json!("City-Admin"));
    invalid(base.clone(), |v| v["region"] = json!("320100")); // not in the tree
    invalid(base.clone(), |v| v["region"] = json!(330100)); // a number, not a string
    invalid(base.clone(), |v| v["region"] = json!("330106")); // city-admin of a county
    invalid(base.clone(), |v| v["sub"] = json!(""));
    invalid(base.clone(), |v| v["exp"] = json!("soon"));
    invalid(base.clone(), |v| v["iat"] = json!(-1));
    invalid(base.clone(), |v| v["exp"] = json!(NOW)); // exp == iat
    invalid(base.clone(), |v| v["meeting"] = json!(""));
    invalid(base.clone(), |v| v["nbf"] = json!("now"));
    invalid(base.clone(), |v| v["aud"] = json!(7));
    for field in ["sub", "role", "region", "exp"] {
        let mut v = base.clone();
        v.as_object_mut().expect("object").remove(field);
        let got = verifier.verify(&hs_sign(&v), NOW);
        assert!(
            matches!(got, Err(TokenError::InvalidClaims(_))),
            "missing {field}: {got:?}"
        );
    }
}

#[test]
fn critical_headers_and_oversize_tokens_are_malformed() {
    let (_, verifier) = hs_pair();
    let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
    header.extras.insert("crit", json!(["exp"]));
    let token = jsonwebtoken::encode(
        &header,
        &claims("wall", "330100"),
        &EncodingKey::from_secret(&SECRET),
    )
    .expect("encodes");
    assert!(matches!(
        verifier.verify(&token, NOW),
        Err(TokenError::Malformed(_))
    ));
    let mut big = claims("wall", "330100");
    big["sub"] = json!("x".repeat(9000));
    assert!(matches!(
        verifier.verify(&hs_sign(&big), NOW),
        Err(TokenError::Malformed(_))
    ));
}

#[test]
fn key_errors() {
    let tree = RegionTree::zhejiang();
    let short = SigningKey::Hs256 {
        secret: b"too short".to_vec(),
    };
    assert_eq!(
        TokenVerifier::new(&short, 0, tree.clone())
            .err()
            .map(|e| e.code()),
        Some("key_error")
    );
    let junk = SigningKey::EdDsa {
        private_pem: "junk".into(),
        public_pem: "junk".into(),
    };
    assert_eq!(
        TokenIssuer::new(&junk).err().map(|e| e.code()),
        Some("key_error")
    );
    assert_eq!(
        TokenVerifier::new(&junk, 0, tree).err().map(|e| e.code()),
        Some("key_error")
    );
}

#[test]
fn duplicate_keys_and_non_object_json_are_refused() {
    let (_, verifier) = hs_pair();
    let sign_raw = |header: &str, payload: &str| {
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let sig = jsonwebtoken::crypto::sign(
            signed.as_bytes(),
            &EncodingKey::from_secret(&SECRET),
            jsonwebtoken::Algorithm::HS256,
        )
        .expect("signs");
        format!("{signed}.{sig}")
    };
    let good = claims("wall", "330100").to_string();
    assert!(
        verifier
            .verify(
                &sign_raw(r#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#, &good),
                NOW
            )
            .is_ok()
    );
    let dup_alg = sign_raw(r#"{"alg":"none","alg":"HS256"}"#, &good);
    assert!(matches!(
        verifier.verify(&dup_alg, NOW),
        Err(TokenError::Malformed(_))
    ));
    let dup_role = good.replacen('{', r#"{"role":"province-admin","#, 1);
    let got = verifier.verify(&sign_raw(r#"{"alg":"HS256"}"#, &dup_role), NOW);
    assert!(matches!(got, Err(TokenError::InvalidClaims(_))), "{got:?}");
    let array = r#"["s","wall","330100",1700000060,1700000000]"#;
    let got = verifier.verify(&sign_raw(r#"{"alg":"HS256"}"#, array), NOW);
    assert!(matches!(got, Err(TokenError::Malformed(_))), "{got:?}");
    let got = verifier.verify(&sign_raw(r#"{"alg":"HS256"}"#, "{\"sub\":"), NOW);
    assert!(matches!(got, Err(TokenError::Malformed(_))), "{got:?}");
}

/// What an identity provider's token carries beyond hubcast's claims (`jti`, `typ`, `azp`,
/// `scope`, its own private claims) is ignored, as RFC 7519 § 4 asks; `iat` may be absent; a
/// repeated claim is still refused.
#[test]
fn other_claims_are_ignored_and_iat_is_optional() {
    let (_, verifier) = hs_pair();
    let mut idp = claims("city-admin", "330100");
    for (claim, value) in [
        ("jti", json!("6f1c")),
        ("typ", json!("Bearer")),
        ("azp", json!("wall-console")),
        ("scope", json!("openid profile")),
        ("admin", json!(true)),
        ("realm_access", json!({"roles": ["offline_access"]})),
    ] {
        idp[claim] = value;
    }
    assert!(verifier.verify(&hs_sign(&idp), NOW).is_ok(), "{idp}");
    idp.as_object_mut().expect("object").remove("iat");
    assert!(
        verifier.verify(&hs_sign(&idp), NOW).is_ok(),
        "no iat: {idp}"
    );
    let twice =
        r#"{"sub":"s","role":"wall","region":"330100","exp":1700000060,"role":"province-admin"}"#;
    let token = hs_sign_raw(twice);
    assert!(
        matches!(
            verifier.verify(&token, NOW),
            Err(TokenError::InvalidClaims(_))
        ),
        "a repeated claim"
    );
}

/// `nbf` (RFC 7519 § 4.1.5) is honoured with the leeway, like `iat`.
#[test]
fn not_before_is_honoured() {
    let (_, verifier) = hs_pair();
    let mut early = claims("wall", "330100");
    early["nbf"] = json!(NOW + 31);
    assert_eq!(
        verifier.verify(&hs_sign(&early), NOW),
        Err(TokenError::NotYetValid)
    );
    early["nbf"] = json!(NOW + 30); // within the 30 s leeway
    assert!(verifier.verify(&hs_sign(&early), NOW).is_ok());
}

/// `iss` and `aud` (RFC 7519 § 4.1.1, 4.1.3) against `auth.issuer` / `auth.audience`; and a
/// token the hub mints with them configured passes its own verifier.
#[test]
fn issuer_and_audience_are_checked_when_configured() {
    let key = SigningKey::generate_hs256(SECRET);
    let plain = TokenVerifier::new(&key, 30, RegionTree::zhejiang()).expect("verifier");
    let strict = plain.clone().expecting(
        Some("https://idp.zj.gov.cn/realms/scjg".into()),
        Some("hubcast".into()),
    );
    let with = |iss: Option<Value>, aud: Option<Value>| {
        let mut v = claims("wall", "330100");
        if let Some(iss) = iss {
            v["iss"] = iss;
        }
        if let Some(aud) = aud {
            v["aud"] = aud;
        }
        hs_sign(&v)
    };
    let idp = json!("https://idp.zj.gov.cn/realms/scjg");
    let ok = [
        with(Some(idp.clone()), Some(json!("hubcast"))),
        with(Some(idp.clone()), Some(json!(["account", "hubcast"]))),
    ];
    for token in &ok {
        assert!(strict.verify(token, NOW).is_ok());
    }
    let refused = [
        with(None, Some(json!("hubcast"))), // no iss
        with(Some(json!("https://evil.example")), Some(json!("hubcast"))), // another issuer
        with(Some(idp.clone()), None),      // no aud
        with(Some(idp.clone()), Some(json!("account"))), // for another service
        with(Some(idp.clone()), Some(json!(["account", "wiki"]))),
    ];
    for token in &refused {
        assert!(
            matches!(strict.verify(token, NOW), Err(TokenError::InvalidClaims(_))),
            "{token}"
        );
    }
    // Without an audience configured, a token meant for some service is not taken for ours.
    assert!(matches!(
        plain.verify(&with(None, Some(json!("account"))), NOW),
        Err(TokenError::InvalidClaims(_))
    ));
    assert!(
        plain.verify(&with(Some(idp), None), NOW).is_ok(),
        "iss unchecked"
    );
    let issuer = TokenIssuer::new(&key).expect("issuer").naming(
        Some("https://idp.zj.gov.cn/realms/scjg".into()),
        Some("hubcast".into()),
    );
    let token = issuer.mint(&city_admin(), NOW, 60).expect("mints");
    assert_eq!(strict.verify(&token, NOW), Ok(city_admin()));
}

/// The generated Ed25519 private key is PKCS#8 v1 (RFC 5208, the secret only: what OpenSSL
/// 3.0 and Python's cryptography read, so an identity provider or an operator's script can
/// sign with it); a v2 key (RFC 5958, public key inside), as earlier builds wrote, still loads.
#[test]
fn eddsa_private_keys_are_pkcs8_v1_and_v2_still_loads() {
    let key = SigningKey::generate_eddsa([4; 32]).expect("key");
    let SigningKey::EdDsa {
        private_pem,
        public_pem,
    } = &key
    else {
        panic!("EdDSA")
    };
    let body: String = private_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("base64");
    // SEQUENCE { INTEGER 0, AlgorithmIdentifier { id-Ed25519 }, OCTET STRING { secret } }
    assert_eq!(der.len(), 48, "no public key appended: {der:02x?}");
    assert_eq!(&der[..5], &[0x30, 0x2e, 0x02, 0x01, 0x00], "version 0 (v1)");
    let issuer = TokenIssuer::new(&key).expect("issuer");
    let token = issuer.mint(&city_admin(), NOW, 60).expect("mints");
    let verifier = TokenVerifier::new(&key, 0, RegionTree::zhejiang()).expect("verifier");
    assert!(verifier.verify(&token, NOW).is_ok());

    use ed25519_dalek::pkcs8::EncodePrivateKey as _;
    let v2 = ed25519_dalek::SigningKey::from_bytes(&[4; 32])
        .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .expect("v2 PEM");
    let old = SigningKey::EdDsa {
        private_pem: v2.to_string(),
        public_pem: public_pem.clone(),
    };
    let token = TokenIssuer::new(&old)
        .expect("a v2 key loads")
        .mint(&city_admin(), NOW, 60)
        .expect("mints");
    assert!(verifier.verify(&token, NOW).is_ok());
}
