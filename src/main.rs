//! The `hubcast` binary: parses the command line and dispatches. Exit codes: 0 success,
//! 1 runtime failure (a start that may succeed later: `cannot start: SETTING: …`), 2 invalid
//! configuration or usage (one line naming the setting).

use std::process::ExitCode;

use clap::Parser as _;
use hubcast::cli::{AlertCommand, BackupArgs, Cli, Command, ConfigArgs, RestoreArgs};
use hubcast::config::{ConfigError, Settings, load};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if let Some(config) = err.downcast_ref::<ConfigError>() {
                eprintln!("hubcast: {config}");
                ExitCode::from(2)
            } else {
                eprintln!("hubcast: {err:#}");
                ExitCode::from(1)
            }
        }
    }
}

/// The merged configuration: file, `HUBCAST_*` environment, flags.
fn loaded(args: &ConfigArgs) -> Result<hubcast::config::Loaded, ConfigError> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let path = hubcast::config::load::config_path(args.config.clone(), &env);
    load(path.as_deref(), &env, &args.overrides())
}

/// The validated settings; the TLS files are read only `with_tls` (`serve`, `check-config`):
/// a command that serves nothing (`token`, `regions`, `backup`, `restore`) runs under an
/// operator's account that may not read the listener's private key.
fn settings(args: &ConfigArgs, with_tls: bool) -> Result<(Settings, Vec<String>), ConfigError> {
    let mut loaded = loaded(args)?;
    if !with_tls {
        loaded.config.tls = hubcast::config::TlsConfig::default();
    }
    Ok((Settings::from_config(loaded.config)?, loaded.warnings))
}

/// [`settings`] for a one-shot command, its warnings printed on stderr.
fn command_settings(args: &ConfigArgs, with_tls: bool) -> Result<Settings, ConfigError> {
    let (settings, warnings) = settings(args, with_tls)?;
    for warning in warnings {
        eprintln!("hubcast: warning: {warning}");
    }
    Ok(settings)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let (settings, warnings) = settings(&args, true)?;
            hubcast::telemetry::init(settings.log_json, &settings.log_level);
            for warning in warnings {
                tracing::warn!("{warning}");
            }
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.enable_all().thread_name("hubcast");
            if settings.http.worker_threads > 0 {
                builder.worker_threads(settings.http.worker_threads);
            }
            let runtime = builder.build()?;
            // One hub per data directory, held until the runtime (and every blocking store
            // task on it) has ended.
            settings.prepare_data_dir()?;
            let lock = hubcast::data_lock::DataDirLock::acquire(&settings.data_dir)
                .map_err(|err| hubcast::app::cannot_start("data_dir", err))?;
            let served = runtime.block_on(serve(settings));
            drop(runtime);
            drop(lock);
            served
        }
        Command::CheckConfig(args) => {
            let settings = command_settings(&args, true)?;
            print!("{}", hubcast::commands::check_config(&settings)?);
            Ok(())
        }
        Command::Token(args) => {
            let settings = command_settings(&args.config, false)?;
            let token = hubcast::commands::mint_token(
                &settings,
                &args.role,
                &args.region,
                args.ttl.as_deref(),
                args.sub,
                args.meeting,
            )?;
            println!("{token}");
            Ok(())
        }
        Command::Regions(args) => {
            let settings = command_settings(&args.config, false)?;
            print!(
                "{}",
                hubcast::commands::regions(&settings, args.code.as_deref())?
            );
            Ok(())
        }
        Command::Backup(BackupArgs {
            file,
            check,
            config,
        }) => {
            let line = if check {
                hubcast::backup::check(&file)?
            } else {
                let settings = command_settings(&config, false)?;
                hubcast::backup::backup(&settings, &file)?
            };
            println!("{line}");
            Ok(())
        }
        Command::Restore(RestoreArgs {
            file,
            floor,
            config,
        }) => {
            let settings = command_settings(&config, false)?;
            println!("{}", hubcast::backup::restore(&settings, &file, floor)?);
            Ok(())
        }
        Command::Alert(AlertCommand::Publish(args)) => {
            let token = hubcast::commands_alert::token(args.token, args.token_file.as_deref())?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let answer = runtime.block_on(hubcast::commands_alert::publish(
                &args.file,
                &args.server,
                &token,
                args.ca.as_deref(),
            ))?;
            println!("{answer}");
            Ok(())
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let shutdown = hubcast::shutdown::Shutdown::new();
    shutdown.listen_for_signals();
    let hub = hubcast::app::start(&settings, shutdown).await?;
    tracing::info!(
        url = %hub.url(),
        data_dir = %settings.data_dir.display(),
        regions = %settings.regions_source,
        "hubcast ready"
    );
    if settings.http.metrics_token.is_none() && !settings.listen.ip().is_loopback() {
        tracing::warn!(
            listen = %settings.listen,
            "GET /metrics is public on a non-loopback listener (live meetings, peers, \
             subscribers); set http.metrics_token to require a bearer token"
        );
    } else if settings.http.metrics_token.is_none() && !settings.http.trusted_proxies.is_empty() {
        tracing::warn!(
            "GET /metrics answers whoever the reverse proxies in http.trusted_proxies let \
             through; set http.metrics_token, or keep /metrics off the proxy \
             (deploy/nginx/hubcast.conf allows only loopback)"
        );
    }
    if let Some(all) = settings
        .http
        .trusted_proxies
        .iter()
        .find(|b| b.is_everything())
    {
        tracing::warn!(
            block = %all,
            "http.trusted_proxies trusts every address: any client that reaches the hub \
             directly can name itself someone else in its forwarding header and escape the \
             per-address limits; list the proxies' own addresses unless only they can reach it"
        );
    }
    // One machine-readable line on stdout, for scripts and tests that bind port 0.
    println!("hubcast listening on {}", hub.url());
    let cut = hub.wait().await?;
    if cut > 0 {
        tracing::warn!(
            cut,
            "stopped; some connections were cut off at the grace deadline"
        );
    } else {
        tracing::info!("stopped cleanly");
    }
    Ok(())
}
