//! Wiring: from validated [`Settings`] to a running hub (keys, token verifier, metrics, alert
//! store, router, TLS, listener). `hubcast serve` and the in-process tests both start the hub through
//! [`start`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use tiers::TokenVerifier;
use tokio::task::JoinHandle;

use crate::config::{AlertsBackend, ConfigError, Settings, TlsMode};
use crate::http::{AlertsState, AppState, router};
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// A running hub.
#[derive(Debug)]
pub struct Hub {
    /// The bound listener address (the real port when configured with port 0).
    pub local_addr: SocketAddr,
    /// The certificate served, when TLS is on with a generated certificate.
    pub self_signed_cert: Option<PathBuf>,
    /// Whether the listener speaks TLS.
    pub tls: bool,
    state: AppState,
    shutdown: Shutdown,
    task: JoinHandle<usize>,
}

impl Hub {
    /// The base URL, e.g. `http://127.0.0.1:8080`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.local_addr)
    }

    /// The shutdown handle (trigger it to stop the hub).
    pub fn shutdown_handle(&self) -> &Shutdown {
        &self.shutdown
    }

    /// Waits until the hub stopped; returns how many connections or tasks the grace period cut
    /// off.
    pub async fn wait(self) -> anyhow::Result<usize> {
        let cut = self.task.await.context("server task failed")?;
        self.state.set_ready(false);
        Ok(cut)
    }
}

/// Starts the hub described by `settings`, listening for `shutdown`, in a data directory the
/// caller prepared (`Settings::prepare_data_dir`) and holds (`data_lock`), as `serve` does.
pub async fn start(settings: &Settings, shutdown: Shutdown) -> anyhow::Result<Hub> {
    let key = crate::keys::load_or_generate(settings).context("loading the signing key")?;
    let verifier = TokenVerifier::new(&key, settings.leeway_secs, settings.regions.clone())
        .context("building the token verifier")?
        .expecting(
            settings.token_issuer.clone(),
            settings.token_audience.clone(),
        );
    let metrics = Metrics::new().context("registering metrics")?;
    let alerts = open_alert_store(settings, &metrics).await?;
    let (tls, self_signed_cert) = match &settings.tls {
        TlsMode::Off => (None, None),
        TlsMode::Files(config, files) => {
            tokio::spawn(files.clone().watch(shutdown.token().clone()));
            (Some(config.clone()), None)
        }
        TlsMode::SelfSigned => {
            let (config, cert) = crate::tls::self_signed(&settings.data_dir)
                .context("generating the self-signed certificate")?;
            (Some(config), Some(cert))
        }
    };
    let sfu = sfu::driver::Sfu::start(&settings.sfu, metrics.registry()).map_err(|err| {
        let setting = match err {
            sfu::driver::StartError::Tcp { .. } => "sfu.tcp_listen",
            _ => "sfu.udp_listen",
        };
        cannot_start(setting, err)
    })?;
    let state = AppState::new(
        metrics.clone(),
        verifier,
        settings.regions.clone(),
        settings.http.clone(),
        shutdown.clone(),
        Some(sfu.clone()),
        Some(alerts),
    );
    let app = router(state.clone());
    let raw_state = state.clone();
    let listener = crate::server::bind(settings.listen, settings.http.backlog).map_err(|err| {
        cannot_start(
            "listen",
            format!("cannot listen on {}: {err}", settings.listen),
        )
    })?;
    let local_addr = listener.local_addr().context("reading the bound address")?;
    let is_tls = tls.is_some();
    let http = settings.http.clone();
    let task_shutdown = shutdown.clone();
    let task = tokio::spawn(async move {
        let cut = crate::server::serve(
            listener,
            tls,
            app,
            &http,
            metrics,
            task_shutdown,
            Some(raw_state),
        )
        .await;
        // Media sessions end with the process: close them once HTTP has drained.
        let _ = tokio::task::spawn_blocking(move || sfu.shutdown()).await;
        cut
    });
    state.set_ready(true);
    Ok(Hub {
        local_addr,
        self_signed_cert,
        tls: is_tls,
        state,
        shutdown,
        task,
    })
}

/// Opens the alert store of `alerts.backend` and starts live delivery on it; a failure is a
/// start error naming the setting (`data_dir` for SQLite, `alerts.redis_url` for Redis).
async fn open_alert_store(settings: &Settings, metrics: &Metrics) -> anyhow::Result<AlertsState> {
    let config = alerts::store::StoreConfig {
        tree: settings.regions.clone(),
        max_document_bytes: alerts::store::DOCUMENT_GROWTH * settings.alerts.max_body_bytes,
        readers: settings.alerts.store_readers,
        query_timeout: std::time::Duration::from_millis(settings.alerts.query_timeout_ms),
        ..alerts::store::StoreConfig::default()
    };
    let (store, redis): (Arc<dyn alerts::store::Store>, _) = match settings.alerts.backend {
        AlertsBackend::Sqlite => (open_sqlite(settings, config).await?, None),
        AlertsBackend::Redis => {
            let redis = open_redis(settings, config).await?;
            (redis.clone(), Some(redis))
        }
    };
    // With Redis, the tail starts from the log's end as read now; the rebuild below reads it
    // again, so alerts appended in between reach the hub at least once (duplicates are dropped).
    let tail_from = match &redis {
        Some(redis) => {
            let redis = redis.clone();
            let last =
                tokio::task::spawn_blocking(move || alerts::store::Store::last_seq(redis.as_ref()))
                    .await?;
            Some(last.context("reading the shared alert log")?)
        }
        None => None,
    };
    let live_metrics = crate::alerts_metrics::LiveMetrics::register(metrics.registry())
        .context("registering alert metrics")?;
    let live = crate::alerts_live::LiveHub::start(
        store.clone(),
        settings.regions.clone(),
        &settings.alerts,
        live_metrics,
    )
    .await
    .context("loading retained alerts into the live hub")?;
    let tail = match (redis, tail_from) {
        (Some(redis), Some(after)) => Some(Arc::new(
            crate::alerts_live::Tail::start(&redis, after, live.clone())
                .context("starting the alert log tail")?,
        )),
        _ => None,
    };
    Ok(AlertsState {
        store,
        max_body_bytes: settings.alerts.max_body_bytes,
        live,
        config: settings.alerts.clone(),
        public_reads: Arc::new(tokio::sync::Semaphore::new(
            settings.alerts.max_concurrent_reads,
        )),
        connect_limiter: std::sync::Arc::new(crate::rate_limit::ConnectLimiter::new(
            settings.alerts.connect_rate_per_ip,
            settings.alerts.connect_burst_per_ip,
            settings.alerts.max_connections_per_ip,
            settings.alerts.max_subscribers,
        )),
        feeds: std::sync::Arc::default(),
        tail,
    })
}

/// `<data_dir>/alerts.sqlite3`, created and migrated if needed.
async fn open_sqlite(
    settings: &Settings,
    config: alerts::store::StoreConfig,
) -> anyhow::Result<Arc<dyn alerts::store::Store>> {
    let path = settings.data_dir.join("alerts.sqlite3");
    let open_path = path.clone();
    let opened = tokio::task::spawn_blocking(move || {
        alerts::store::SqliteStore::open_with(open_path, config)
    })
    .await
    .context("opening the alert store")?;
    let store = opened.map_err(|err| {
        cannot_start(
            "data_dir",
            format!("cannot open the alert store {}: {err}", path.display()),
        )
    })?;
    Ok(Arc::new(store))
}

/// A start that failed for a reason that may pass (a port still held, an address not yet up
/// at boot, Redis not yet started, a store not yet mounted): exit status 1, which the systemd
/// unit restarts, where an invalid setting is 2 (`RestartPreventExitStatus=2`). The message
/// still names the setting.
pub fn cannot_start(setting: &str, why: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("cannot start: {setting}: {why}")
}

/// The shared log on `alerts.redis_url`, with its local archive index in
/// `<data_dir>/alerts-redis-index.sqlite3`; refuses a Redis that does not fsync each write
/// unless `alerts.redis_unsafe_durability`.
async fn open_redis(
    settings: &Settings,
    config: alerts::store::StoreConfig,
) -> anyhow::Result<Arc<alerts::store::RedisStore>> {
    let url = settings.alerts.redis_url.clone();
    let prefix = settings.alerts.redis_prefix.clone();
    let index = settings.data_dir.join("alerts-redis-index.sqlite3");
    let opened = tokio::task::spawn_blocking(move || {
        alerts::store::RedisStore::open(&url, &prefix, &index, config)
    })
    .await
    .context("opening the alert store")?;
    let store = opened.map_err(|err| {
        let message = format!("cannot open the Redis alert store: {err}");
        match &err {
            // Refused, reset, timed out: Redis not up yet (a hub booting before it), so the
            // service manager should try again.
            alerts::store::StoreError::Redis(e)
                if e.is_io_error() || e.is_connection_refusal() || e.is_timeout() =>
            {
                cannot_start("alerts.redis_url", message)
            }
            // A wrong password or a Redis that refuses the commands: fix the setting.
            alerts::store::StoreError::Redis(_) => {
                ConfigError::new("alerts.redis_url", message).into()
            }
            _ => cannot_start("data_dir", message),
        }
    })?;
    let store = Arc::new(store);
    let probe = store.clone();
    let weak = match tokio::task::spawn_blocking(move || probe.durability()).await? {
        Some(d) if d.is_synchronous() => None,
        Some(d) => Some(format!(
            "Redis runs with appendonly {} and appendfsync {}: it does not fsync each write, \
             so an acknowledged alert can be lost in a Redis crash (and its number reused); \
             set appendonly yes and appendfsync always",
            d.appendonly, d.appendfsync
        )),
        None => Some(
            "cannot read Redis's persistence settings (CONFIG GET refused); make sure it runs \
             with appendonly yes and appendfsync always"
                .to_owned(),
        ),
    };
    if let Some(why) = weak {
        if !settings.alerts.redis_unsafe_durability {
            let message =
                format!("{why}, or set alerts.redis_unsafe_durability = true to start anyway");
            return Err(ConfigError::new("alerts.redis_url", message).into());
        }
        tracing::warn!("{why} (starting anyway: alerts.redis_unsafe_durability = true)");
    }
    Ok(store)
}
