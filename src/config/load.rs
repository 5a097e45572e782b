//! Merging the configuration sources (default < file < env < flags) and naming the setting at
//! fault when one is wrong.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};

use super::Config;

/// A configuration problem, always naming the setting it is about.
#[derive(Debug, thiserror::Error)]
#[error("invalid config: {setting}: {message}")]
pub struct ConfigError {
    /// Dotted name of the setting, as written in the TOML file (`tls.cert`, `listen`).
    pub setting: String,
    /// What is wrong with it.
    pub message: String,
}

impl ConfigError {
    /// A problem with `setting`.
    pub fn new(setting: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            setting: setting.into(),
            message: message.into(),
        }
    }
}

/// Values given as command-line flags: the highest-precedence source. Keys are dotted setting
/// names (`tls.cert`); values are TOML-compatible.
#[derive(Debug, Clone, Default)]
pub struct FlagOverrides {
    values: BTreeMap<String, figment::value::Value>,
}

impl FlagOverrides {
    /// Sets `key` (dotted) to `value` when the flag was given.
    pub fn set<V: Into<figment::value::Value>>(&mut self, key: &str, value: Option<V>) {
        if let Some(value) = value {
            self.values.insert(key.to_owned(), value.into());
        }
    }
}

/// Where an environment is read from; tests pass their own map instead of the process's.
pub type EnvVars = Vec<(String, String)>;

/// A loaded configuration and the warnings met on the way (environment variables with the
/// `HUBCAST_` prefix that name no setting: ignored, because platforms set such variables
/// themselves, e.g. Kubernetes service links `HUBCAST_PORT`, `HUBCAST_SERVICE_HOST`).
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The merged configuration.
    pub config: Config,
    /// Human-readable warnings to log once logging is up.
    pub warnings: Vec<String>,
}

/// Loads the configuration: defaults, then `file` (must exist when given; unknown keys are
/// errors), then `HUBCAST_*` variables from `env` that name a setting, then `flags`.
pub fn load(
    file: Option<&Path>,
    env: &EnvVars,
    flags: &FlagOverrides,
) -> Result<Loaded, ConfigError> {
    let mut figment = Figment::from(Serialized::defaults(Config::default()));
    if let Some(path) = file {
        let meta = std::fs::metadata(path).map_err(|err| {
            ConfigError::new("config", format!("cannot read {}: {err}", path.display()))
        })?;
        if !meta.is_file() {
            let why = format!("{} is not a file (a TOML file is expected)", path.display());
            return Err(ConfigError::new("config", why));
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    let known = settings_by_kind();
    let mut warnings = Vec::new();
    let mut env_pairs = Vec::new();
    for (key, value) in env {
        let Some(rest) = key.strip_prefix("HUBCAST_") else {
            continue;
        };
        // HUBCAST_CONFIG names the file itself, it is not a setting.
        if rest == "CONFIG" {
            continue;
        }
        let name = rest.to_ascii_lowercase().replace("__", ".");
        if let Some(&textual) = known.get(&name) {
            env_pairs.push((key.clone(), name, textual, value.clone()));
        } else {
            warnings.push(format!(
                "ignoring environment variable {key}: it names no setting"
            ));
        }
    }
    for (var, key, textual, value) in env_pairs {
        // A text setting takes the variable as it is (a token or prefix of digits stays a
        // string); the others read it as a TOML value (`30`, `true`, `["10.0.0.5"]`).
        let parsed: figment::value::Value = if textual {
            figment::value::Value::from(value)
        } else {
            value
                .parse()
                .unwrap_or_else(|_| figment::value::Value::from(value.clone()))
        };
        figment = figment.merge(EnvSetting { var, key, parsed });
    }
    for (key, value) in &flags.values {
        figment = figment.merge(Serialized::default(key, value.clone()));
    }
    let config = figment
        .extract::<Config>()
        .map_err(|err| from_figment(&err))?;
    Ok(Loaded { config, warnings })
}

/// One `HUBCAST_*` variable as a configuration source, named in errors by the variable (not
/// by a line of this file).
struct EnvSetting {
    var: String,
    key: String,
    parsed: figment::value::Value,
}

impl figment::Provider for EnvSetting {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named(format!("environment variable {}", self.var))
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        Serialized::default(&self.key, &self.parsed).data()
    }
}

/// Dotted names of every setting (`listen`, `tls.cert`, …), from the defaults' shape, each
/// with whether it is text (a string, or unset by default: every optional setting is a string
/// or a path).
fn settings_by_kind() -> BTreeMap<String, bool> {
    fn walk(prefix: &str, value: &serde_json::Value, out: &mut BTreeMap<String, bool>) {
        match value {
            // A map setting empty by default (`alerts.senders`) is a setting in its own
            // right, set whole: `HUBCAST_ALERTS__SENDERS='{"scjg.zj.gov.cn"=330000}'`.
            serde_json::Value::Object(map) if map.is_empty() && !prefix.is_empty() => {
                out.insert(prefix.to_owned(), false);
            }
            serde_json::Value::Object(map) => {
                for (key, child) in map {
                    let name = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    walk(&name, child, out);
                }
            }
            serde_json::Value::String(_) | serde_json::Value::Null => {
                out.insert(prefix.to_owned(), true);
            }
            _ => {
                out.insert(prefix.to_owned(), false);
            }
        }
    }
    let mut out = BTreeMap::new();
    if let Ok(value) = serde_json::to_value(Config::default()) {
        walk("", &value, &mut out);
    }
    out
}

/// The path of the config file: the flag, else `HUBCAST_CONFIG`.
pub fn config_path(flag: Option<PathBuf>, env: &EnvVars) -> Option<PathBuf> {
    flag.or_else(|| {
        env.iter()
            .find(|(key, _)| key == "HUBCAST_CONFIG")
            .map(|(_, value)| PathBuf::from(value))
    })
}

fn from_figment(err: &figment::Error) -> ConfigError {
    let first = err
        .clone()
        .into_iter()
        .next()
        .unwrap_or_else(|| err.clone());
    let mut setting = first.path.join(".");
    let mut message = first.kind.to_string();
    if let figment::error::Kind::UnknownField(name, _) = &first.kind {
        if !setting.ends_with(name.as_str()) {
            setting = if setting.is_empty() {
                name.clone()
            } else {
                format!("{setting}.{name}")
            };
        }
        message = "unknown setting (check the spelling; see `hubcast check-config`)".to_owned();
    }
    if setting.is_empty() {
        setting = "config".to_owned();
    }
    if let Some(source) = &first.metadata.as_ref().and_then(|m| m.source.clone()) {
        message = format!("{message} (from {source})");
    } else if let Some(meta) = &first.metadata {
        message = format!("{message} (from {})", meta.name);
    }
    ConfigError { setting, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> EnvVars {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// A text setting takes its variable as written, digits or `true` included; a number
    /// setting that gets text is an error naming the variable, not a line of this file.
    #[test]
    fn environment_variables_keep_their_text_and_are_named_in_errors() {
        let vars = env(&[
            ("HUBCAST_HTTP__METRICS_TOKEN", "12345678901234567890"),
            ("HUBCAST_AUTH__AUDIENCE", "true"),
            ("HUBCAST_ALERTS__REDIS_PREFIX", "2024"),
            ("HUBCAST_HTTP__GRACE_PERIOD_SECS", "7"),
            ("HUBCAST_SFU__PUBLIC_IPS", "[\"10.0.0.5\"]"),
        ]);
        let config = load(None, &vars, &FlagOverrides::default())
            .expect("valid")
            .config;
        assert_eq!(
            config.http.metrics_token.as_deref(),
            Some("12345678901234567890")
        );
        assert_eq!(config.auth.audience.as_deref(), Some("true"));
        assert_eq!(config.alerts.redis_prefix, "2024");
        assert_eq!(config.http.grace_period_secs, 7);
        assert_eq!(config.sfu.public_ips, vec!["10.0.0.5".to_owned()]);
        let bad = env(&[("HUBCAST_HTTP__GRACE_PERIOD_SECS", "soon")]);
        let err = load(None, &bad, &FlagOverrides::default()).expect_err("not a number");
        assert_eq!(err.setting, "http.grace_period_secs");
        assert!(
            err.message
                .contains("environment variable HUBCAST_HTTP__GRACE_PERIOD_SECS"),
            "{err}"
        );
    }

    #[test]
    fn precedence_flag_over_env_over_file_over_default() {
        let dir = std::env::temp_dir().join(format!("hubcast-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp");
        let file = dir.join("hub.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\n[http]\ngrace_period_secs = 3\nmax_connections = 7\n[auth]\nleeway_secs = 5\n",
        )
        .expect("write");
        let vars = env(&[
            ("HUBCAST_LISTEN", "127.0.0.1:9100"),
            ("HUBCAST_HTTP__GRACE_PERIOD_SECS", "4"),
            ("OTHER", "x"),
        ]);
        let mut flags = FlagOverrides::default();
        flags.set("listen", Some("127.0.0.1:9200"));
        let loaded = load(Some(&file), &vars, &flags).expect("valid");
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let config = loaded.config;
        assert_eq!(config.listen, "127.0.0.1:9200", "flag wins");
        assert_eq!(config.http.grace_period_secs, 4, "env beats file");
        assert_eq!(config.http.max_connections, 7, "file beats default");
        assert_eq!(config.auth.leeway_secs, 5);
        assert_eq!(config.http.backlog, 4096, "default");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_map_setting_is_set_whole_from_the_environment() {
        let loaded = load(
            None,
            &env(&[(
                "HUBCAST_ALERTS__SENDERS",
                r#"{"scjg.zj.gov.cn"="330000", "scjg.hangzhou.gov.cn"="330100"}"#,
            )]),
            &FlagOverrides::default(),
        )
        .expect("valid");
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let senders = &loaded.config.alerts.senders;
        assert_eq!(senders.len(), 2, "{senders:?}");
        assert_eq!(
            senders.get("scjg.hangzhou.gov.cn").map(ToString::to_string),
            Some("330100".to_owned())
        );
    }

    #[test]
    fn errors_name_the_setting() {
        let err = load(
            None,
            &env(&[("HUBCAST_HTTP__GRACE_PERIOD_SECS", "soon")]),
            &FlagOverrides::default(),
        )
        .expect_err("not a number");
        assert_eq!(err.setting, "http.grace_period_secs", "{err}");

        // Unknown keys in the file are errors; unknown env variables are warnings, because
        // platforms set HUBCAST_* variables of their own (Kubernetes service links).
        let loaded = load(
            None,
            &env(&[
                ("HUBCAST_HTTP__GRACE", "1"),
                ("HUBCAST_PORT", "tcp://10.0.0.1:80"),
            ]),
            &FlagOverrides::default(),
        )
        .expect("unknown env ignored");
        assert_eq!(loaded.warnings.len(), 2, "{:?}", loaded.warnings);
        let dir = std::env::temp_dir().join(format!("hubcast-cfg-unknown-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp");
        let file = dir.join("hub.toml");
        std::fs::write(&file, "[http]\ngrace = 1\n").expect("write");
        let err = load(Some(&file), &env(&[]), &FlagOverrides::default()).expect_err("unknown key");
        assert_eq!(err.setting, "http.grace", "{err}");
        std::fs::remove_dir_all(&dir).ok();

        let err = load(
            Some(Path::new("/nonexistent/hub.toml")),
            &env(&[]),
            &FlagOverrides::default(),
        )
        .expect_err("missing file");
        assert_eq!(err.setting, "config");
    }
}
