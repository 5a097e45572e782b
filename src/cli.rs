//! Command-line interface: `serve`, `check-config`, `token`, `regions`, `alert publish`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::FlagOverrides;

/// hubcast: real-time operations hub (tiered video meetings, public alerts, command-center
/// dashboards) for a provincial market-regulation administration.
#[derive(Debug, Parser)]
#[command(name = "hubcast", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub: one HTTP(S) listener for every page, API and WebSocket.
    Serve(ConfigArgs),
    /// Print the effective configuration (secrets redacted), or the first error (exit 2).
    CheckConfig(ConfigArgs),
    /// Mint a JWT signed with the data dir's key (the key `serve` uses with the same data dir).
    Token(TokenArgs),
    /// Print the region tree, or the subtree under CODE.
    Regions(RegionsArgs),
    /// Public alerts: publish a CAP 1.2 file to a running hub.
    #[command(subcommand)]
    Alert(AlertCommand),
    /// Copy the alert store to FILE (a new file) while the hub runs: consistent, fsynced and
    /// checked; or, with --check, check a backup and say what it holds.
    Backup(BackupArgs),
    /// Put a backup in place of the alert store of a stopped hub (the store it replaces is
    /// kept beside it); numbers the replaced store gave out are not given out again.
    Restore(RestoreArgs),
}

/// `hubcast restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup (from `hubcast backup`).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The last number the replaced store gave out, when it is lost or unreadable (a
    /// subscriber's last id, the archive's newest): the next alert is numbered above it.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(..=i64::MAX.unsigned_abs()))]
    pub floor: Option<u64>,
    /// Configuration (the data dir and the alert backend).
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// `hubcast backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where the copy goes (it must not exist), or with --check the backup to check.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Check FILE instead of writing it: SQLite's integrity check, a schema this build reads,
    /// and how many alerts it holds.
    #[arg(long)]
    pub check: bool,
    /// Configuration (the data dir and the alert backend).
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// `hubcast alert …`.
#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// Post FILE.xml (CAP 1.2) or FILE.json (its JSON form) to `POST /api/v1/alerts` and print
    /// the answer ({"id","seq","created"}); a refusal exits 1 with the hub's message.
    Publish(PublishArgs),
}

/// `hubcast alert publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The alert: CAP 1.2 XML (`.xml`) or JSON (`.json`); other names are sniffed.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Base URL of the hub, `http://` or `https://`.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// PEM file of the CA certificate(s) to trust for `https://` (a network's own CA, or a
    /// hub's self-signed certificate); without it, the system's CA bundle.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Bearer token (from `hubcast token`); visible to other local users in the process
    /// list, so prefer --token-file.
    #[arg(long, value_name = "T", conflicts_with = "token_file")]
    pub token: Option<String>,
    /// File holding the bearer token.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

/// Flags that override configuration (highest precedence: flag > env > file > default).
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigArgs {
    /// TOML configuration file (also `HUBCAST_CONFIG`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Listener address, IP:PORT [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Data directory [default: ./hubcast-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// PEM certificate chain for TLS.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS.
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Serve TLS with a development certificate generated into the data dir.
    #[arg(long)]
    pub tls_self_signed: bool,
    /// Log format: text or json.
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Log filter, e.g. info or hubcast=debug.
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,
    /// Region data file instead of the built-in Zhejiang tree.
    #[arg(long, value_name = "FILE")]
    pub regions_file: Option<PathBuf>,
}

impl ConfigArgs {
    /// The flags that were given, as config overrides.
    pub fn overrides(&self) -> FlagOverrides {
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        let mut flags = FlagOverrides::default();
        flags.set("listen", self.listen.clone());
        flags.set("data_dir", path(&self.data_dir));
        flags.set("tls.cert", path(&self.tls_cert));
        flags.set("tls.key", path(&self.tls_key));
        flags.set("tls.self_signed", self.tls_self_signed.then_some(true));
        flags.set("log.format", self.log_format.clone());
        flags.set("log.level", self.log_level.clone());
        flags.set("regions.file", path(&self.regions_file));
        flags
    }
}

/// `hubcast token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Role: province-admin, city-admin, county-operator, wall or public.
    #[arg(long)]
    pub role: String,
    /// GB/T 2260 region code the principal is bound to, e.g. 330100.
    #[arg(long)]
    pub region: String,
    /// Lifetime, e.g. 90s, 15m, 8h, 7d [default: auth.default_ttl, 8h].
    #[arg(long)]
    pub ttl: Option<String>,
    /// Subject (who the token is for); defaults to ROLE@REGION#<8 random hex digits>, unique
    /// per token (media sessions belong to their creator's subject).
    #[arg(long)]
    pub sub: Option<String>,
    /// Bind the token to one meeting id.
    #[arg(long)]
    pub meeting: Option<String>,
    /// Configuration.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// `hubcast regions`.
#[derive(Debug, Args)]
pub struct RegionsArgs {
    /// Root of the subtree to print [default: the whole tree].
    pub code: Option<String>,
    /// Configuration.
    #[command(flatten)]
    pub config: ConfigArgs,
}
