//! Hostile input to the token verifier: it must answer every string with an error, never a
//! panic, and classify shape problems as `Malformed`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tiers::{
    Principal, RegionCode, RegionTree, Role, SigningKey, TokenError, TokenIssuer, TokenVerifier,
};

const NOW: u64 = 1_700_000_000;

fn setups() -> Vec<(TokenIssuer, TokenVerifier)> {
    [
        SigningKey::generate_hs256([8; 32]),
        SigningKey::generate_eddsa([8; 32]).expect("key"),
    ]
    .iter()
    .map(|k| {
        (
            TokenIssuer::new(k).expect("issuer"),
            TokenVerifier::new(k, 5, RegionTree::zhejiang()).expect("verifier"),
        )
    })
    .collect()
}

fn valid_token(issuer: &TokenIssuer) -> String {
    let tree = RegionTree::zhejiang();
    let region = RegionCode::parse("330106").expect("code");
    let who = Principal::new(&tree, "op", Role::CountyOperator, region, None).expect("principal");
    issuer.mint(&who, NOW, 600).expect("mints")
}

/// A tiny deterministic generator (xorshift), so the fuzz-ish loop is reproducible.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn fixed_garbage_is_malformed() {
    let b64 = |s: &str| URL_SAFE_NO_PAD.encode(s);
    let cases = vec![
        String::new(),
        ".".into(),
        "..".into(),
        "...".into(),
        "a".into(),
        "a.b".into(),
        "a.b.c.d".into(),
        "a.b.c".into(),
        "!!!.###.$$$".into(),
        "\0\0\0".into(),
        "Bearer abc.def.ghi".into(),
        "é.ü.ß".into(),
        "🙂.🙂.🙂".into(),
        format!("{}.e30.", b64("[]")),
        format!("{}.e30.", b64("null")),
        format!("{}.e30.", b64("{}")),
        format!("{}.e30.", b64(r#"{"alg":5}"#)),
        format!("{}.e30.", b64(r#"{"alg":"HS256""#)),
        format!("{}=.e30.", b64(r#"{"alg":"ALG"}"#)),
        format!("{}.e30.!!", b64(r#"{"alg":"ALG"}"#)),
        format!("{}.!!.AAAA", b64(r#"{"alg":"ALG"}"#)),
        "x".repeat(1 << 20),
        ".".repeat(100_000),
        format!(
            "{}.{}.{}",
            "A".repeat(3000),
            "B".repeat(3000),
            "C".repeat(3000)
        ),
    ];
    for (_, verifier) in setups() {
        let alg = b64(&format!(r#"{{"alg":"{}"}}"#, verifier.algorithm()));
        for case in &cases {
            let case = &case.replace(&b64(r#"{"alg":"ALG"}"#), &alg);
            let got = verifier.verify(case, NOW);
            assert!(
                matches!(got, Err(TokenError::Malformed(_))),
                "{:?}: {got:?}",
                &case[..case.len().min(40)]
            );
        }
    }
}

#[test]
fn truncations_and_mutations_of_a_valid_token_never_panic_or_pass() {
    for (issuer, verifier) in setups() {
        let token = valid_token(&issuer);
        assert!(verifier.verify(&token, NOW).is_ok());
        for end in 0..token.len() {
            assert!(verifier.verify(&token[..end], NOW).is_err(), "prefix {end}");
            assert!(
                verifier.verify(&token[end + 1..], NOW).is_err(),
                "suffix {end}"
            );
        }
        let bytes = token.as_bytes();
        let alphabet = b"ABCxyz019-_.=+/ \n";
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..3000 {
            let mut mutated = bytes.to_vec();
            for _ in 0..=(rng.next() % 3) {
                let at = (rng.next() as usize) % mutated.len();
                let with = alphabet[(rng.next() as usize) % alphabet.len()];
                match rng.next() % 3 {
                    0 => mutated[at] = with,
                    1 => mutated.insert(at, with),
                    _ => {
                        mutated.remove(at);
                    }
                }
            }
            let Ok(text) = String::from_utf8(mutated) else {
                continue;
            };
            if text == token {
                continue;
            }
            // A mutation may be harmless only if it leaves the signed bytes and signature
            // meaning unchanged; anything accepted must carry the same principal.
            if let Ok(p) = verifier.verify(&text, NOW) {
                assert_eq!(Ok(p), verifier.verify(&token, NOW), "{text}");
            }
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let (_, verifier) = setups().remove(0);
    let mut rng = Rng(42);
    for len in 0..2000usize {
        let s: String = (0..len % 300)
            .map(|_| match rng.next() % 5 {
                0 => '.',
                1 => char::from_u32((rng.next() % 0x11_0000) as u32).unwrap_or('?'),
                _ => char::from(b"ABCDEFabcdef0123456789-_"[(rng.next() % 24) as usize]),
            })
            .collect();
        assert!(verifier.verify(&s, rng.next()).is_err());
    }
}
