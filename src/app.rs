//! Wiring: from validated [`Settings`] to a running hub (keys, token verifier, metrics, alert
//! store, router, TLS, listener). `hubcast serve` and the in-process tests both start the hub through
//! [`start`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use tiers::TokenVerifier;
use tokio::task::JoinHandle;

use crate::config::{ConfigError, Settings, TlsMode};
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

/// Starts the hub described by `settings`, listening for `shutdown`.
pub async fn start(settings: &Settings, shutdown: Shutdown) -> anyhow::Result<Hub> {
    settings.prepare_data_dir()?;
    let key = crate::keys::load_or_generate(settings).context("loading the signing key")?;
    let verifier = TokenVerifier::new(&key, settings.leeway_secs, settings.regions.clone())
        .context("building the token verifier")?;
    let metrics = Metrics::new().context("registering metrics")?;
    let alerts = open_alert_store(settings, &metrics).await?;
    let (tls, self_signed_cert) = match &settings.tls {
        TlsMode::Off => (None, None),
        TlsMode::Files(config) => (Some(config.clone()), None),
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
        anyhow::Error::from(ConfigError::new(setting, err.to_string()))
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
    let listener = crate::server::bind(settings.listen, settings.http.backlog).map_err(|err| {
        ConfigError::new(
            "listen",
            format!("cannot listen on {}: {err}", settings.listen),
        )
    })?;
    let local_addr = listener.local_addr().context("reading the bound address")?;
    let is_tls = tls.is_some();
    let http = settings.http.clone();
    let task_shutdown = shutdown.clone();
    let task = tokio::spawn(async move {
        let cut = crate::server::serve(listener, tls, app, &http, metrics, task_shutdown).await;
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

/// Opens (creating and migrating if needed) `<data_dir>/alerts.sqlite3`; a failure is a start
/// error naming `data_dir`.
async fn open_alert_store(settings: &Settings, metrics: &Metrics) -> anyhow::Result<AlertsState> {
    let path = settings.data_dir.join("alerts.sqlite3");
    let config = alerts::store::StoreConfig {
        tree: settings.regions.clone(),
        // Normalizing (escaping, indentation) can grow a document: keep up to 4× the body.
        max_document_bytes: 4 * settings.alerts.max_body_bytes,
        readers: settings.alerts.store_readers,
        ..alerts::store::StoreConfig::default()
    };
    let open_path = path.clone();
    let opened = tokio::task::spawn_blocking(move || {
        alerts::store::SqliteStore::open_with(open_path, config)
    })
    .await
    .context("opening the alert store")?;
    let store = opened.map_err(|err| {
        ConfigError::new(
            "data_dir",
            format!("cannot open the alert store {}: {err}", path.display()),
        )
    })?;
    let store: Arc<dyn alerts::store::Store> = Arc::new(store);
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
    Ok(AlertsState {
        store,
        max_body_bytes: settings.alerts.max_body_bytes,
        live,
        config: settings.alerts.clone(),
        connect_limiter: std::sync::Arc::new(crate::rate_limit::ConnectLimiter::new(
            settings.alerts.connect_rate_per_ip,
            settings.alerts.connect_burst_per_ip,
            settings.alerts.max_subscribers,
        )),
    })
}
