//! The non-serving subcommands: `check-config`, `token`, `regions`.

use std::fmt::Write as _;

use anyhow::Context as _;
use tiers::{Principal, RegionCode, RegionTree, Role, TokenIssuer};

use crate::config::{ConfigError, Settings, TlsMode};

/// `url` with the password of its userinfo (`redis://user:PASSWORD@host`) replaced.
fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!(
                "{scheme}://{user}:<redacted>@{host}{}",
                &rest[authority_end..]
            )
        }
        None => url.to_owned(),
    }
}

/// Text of `hubcast check-config`: the merged configuration as TOML, secrets redacted, followed
/// by what it resolves to.
pub fn check_config(settings: &Settings) -> anyhow::Result<String> {
    let mut config = settings.config.clone();
    if config.http.metrics_token.is_some() {
        config.http.metrics_token = Some("<redacted>".to_owned());
    }
    if config.auth.secret.is_some() {
        config.auth.secret = Some("<redacted>".to_owned());
    }
    config.alerts.redis_url = redact_url_password(&config.alerts.redis_url);
    let mut out = String::from("# effective configuration (flag > env > file > default)\n");
    out.push_str(&toml::to_string_pretty(&config).context("rendering the config")?);
    let tls = match &settings.tls {
        TlsMode::Off => "off (plain HTTP)".to_owned(),
        TlsMode::Files(..) => "on (certificate files, loaded and checked)".to_owned(),
        TlsMode::SelfSigned => format!(
            "on (self-signed, {})",
            settings.data_dir.join("tls/self-signed-cert.pem").display()
        ),
    };
    let counts = level_counts(&settings.regions);
    let _ = write!(
        out,
        "\n# resolved\n# listen:  {}\n# tls:     {tls}\n# regions: {} ({} regions: {} province, {} cities, {} counties)\n",
        settings.listen,
        settings.regions_source,
        settings.regions.len(),
        counts.0,
        counts.1,
        counts.2,
    );
    Ok(out)
}

fn level_counts(tree: &RegionTree) -> (usize, usize, usize) {
    tree.iter()
        .fold((0, 0, 0), |(p, c, d), region| match region.level {
            tiers::Level::Province => (p + 1, c, d),
            tiers::Level::City => (p, c + 1, d),
            tiers::Level::County => (p, c, d + 1),
        })
}

/// `hubcast token`: a JWT for the principal described by the flags.
pub fn mint_token(
    settings: &Settings,
    role: &str,
    region: &str,
    ttl: Option<&str>,
    subject: Option<String>,
    meeting: Option<String>,
) -> anyhow::Result<String> {
    let role: Role = role.parse().map_err(|_| {
        ConfigError::new(
            "role",
            format!(
                "{role:?} is not one of province-admin, city-admin, county-operator, wall, public"
            ),
        )
    })?;
    let region =
        RegionCode::parse(region).map_err(|err| ConfigError::new("region", err.to_string()))?;
    let ttl_secs = match ttl {
        Some(text) => {
            crate::config::token_lifetime_secs(text).map_err(|msg| ConfigError::new("ttl", msg))?
        }
        // Checked against the same bound when the settings were read.
        None => settings.default_ttl_secs,
    };
    // Media sessions answer to their creator's subject: a default shared by every token of
    // a role and region would let any of them end the others' sessions, so each gets its own.
    // 64 random bits: tokens minted daily for years never share one by chance (32 bits
    // collided after ~77k tokens of one role and region, half the time).
    let subject = subject.unwrap_or_else(|| {
        let tag: u64 = rand::random();
        format!("{role}@{region}#{tag:016x}")
    });
    let principal =
        Principal::new(&settings.regions, subject, role, region, meeting).map_err(|err| {
            let flag = match err {
                tiers::PrincipalError::InvalidSubject(_) => "sub",
                tiers::PrincipalError::InvalidMeeting(_) => "meeting",
                _ => "region",
            };
            ConfigError::new(flag, err.to_string())
        })?;
    settings.prepare_data_dir()?;
    let (key, generated) =
        crate::keys::load_or_generate_noting(settings).context("loading the signing key")?;
    if generated {
        // Said where the person minting sees it: a hub started on another data dir (or
        // without the same --config) will refuse tokens signed with this new key.
        eprintln!(
            "hubcast: generated a new signing key in {}; only a hub started with --data-dir {} \
             (and the same --config) accepts these tokens",
            settings.data_dir.display(),
            settings.data_dir.display()
        );
    }
    let issuer = TokenIssuer::new(&key)
        .context("building the token issuer")?
        .naming(
            settings.token_issuer.clone(),
            settings.token_audience.clone(),
        );
    issuer
        .mint(&principal, crate::clock::unix_now(), ttl_secs)
        .context("minting the token")
}

/// `hubcast regions [CODE]`: the tree or a subtree, indented by level.
pub fn regions(settings: &Settings, code: Option<&str>) -> anyhow::Result<String> {
    let tree = &settings.regions;
    let root = match code {
        Some(text) => {
            let code =
                RegionCode::parse(text).map_err(|err| ConfigError::new("code", err.to_string()))?;
            if tree.get(code).is_none() {
                return Err(
                    ConfigError::new("code", format!("{code} is not in the region tree")).into(),
                );
            }
            code
        }
        None => tree.root(),
    };
    let base = tree.ancestors(root).count();
    let mut out = String::new();
    for region in tree.subtree(root) {
        let depth = tree.ancestors(region.code).count() - base;
        let _ = writeln!(
            out,
            "{:indent$}{} {} {}",
            "",
            region.code,
            region.name_zh,
            region.name_en,
            indent = depth * 2
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::redact_url_password;

    #[test]
    fn redis_passwords_are_redacted() {
        assert_eq!(
            redact_url_password("redis://:s3cret@10.0.0.5:6380/2"),
            "redis://:<redacted>@10.0.0.5:6380/2"
        );
        assert_eq!(
            redact_url_password("rediss://hub:pw@r.internal/0"),
            "rediss://hub:<redacted>@r.internal/0"
        );
        assert_eq!(
            redact_url_password("redis://127.0.0.1:6379/"),
            "redis://127.0.0.1:6379/"
        );
    }
}
