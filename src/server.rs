//! The listener: one TCP port serving HTTP/1.1 and HTTP/2 (plain or TLS) for every page, API
//! and WebSocket, with a connection cap, a large listen backlog, a header-read timeout and
//! graceful shutdown.
//!
//! This is a thin driver: it accepts, handshakes and hands each connection to hyper with the
//! axum router; every decision about requests lives in `http`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use futures_util::future::Either;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use crate::config::HttpConfig;
use crate::held::Held;
use crate::http::AppState;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// Binds `addr` with `SO_REUSEADDR` and the configured backlog. The IPv6 wildcard (`[::]`)
/// takes both families whatever the host's `net.ipv6.bindv6only` says.
pub fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    if let SocketAddr::V6(v6) = addr
        && v6.ip().is_unspecified()
    {
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    // Accepted connections inherit it (and with it the end of autotuning), like nodelay.
    socket.set_send_buffer_size(SEND_BUFFER)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    TcpListener::from_std(socket.into())
}

/// The kernel send buffer of every accepted connection, set on the listener (Linux doubles
/// it). For a live subscriber, served beside hyper or through it (TLS, a proxy's pooled
/// connection): a few dozen typical alerts, or a replay's burst, in flight. Left to autotuning it grows to 4 MiB,
/// which a reader that stopped fills at a few KiB/s for a quarter of an hour before a write
/// blocks and the write timeout or stall guard can end it, and which is kernel memory per
/// stalled subscriber. Everything else the hub sends is small (a feed of 500 entries is
/// ~200 KB), and 256 KiB in flight still moves ~5 MB/s over a 50 ms path.
const SEND_BUFFER: usize = 128 * 1024;

/// Everything a connection task needs, shared.
#[derive(Clone)]
struct ConnContext {
    router: Router,
    builder: Builder<TokioExecutor>,
    tls: Option<TlsAcceptor>,
    handshake_timeout: Duration,
    header_timeout: Duration,
    write_stall: Duration,
    /// The app state, for the routes served beside hyper (`alerts_sse_raw`).
    state: Option<AppState>,
    metrics: Metrics,
    shutdown: Shutdown,
}

/// Serves `router` on `listener` until `shutdown` triggers, then drains in-flight requests and
/// tracked tasks for up to `http.grace_period_secs`. Returns how many connections or tasks were
/// cut off at the deadline (0 on a clean drain).
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    http: &HttpConfig,
    metrics: Metrics,
    shutdown: Shutdown,
    state: Option<AppState>,
) -> usize {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(http.header_read_timeout_secs));
    // HTTP/2 (offered over TLS by ALPN): ping an idle connection, close it if the peer stops
    // answering, so a vanished client does not hold a connection slot.
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(H2_PING_EVERY))
        .keep_alive_timeout(H2_PING_TIMEOUT);
    let context = ConnContext {
        router,
        builder,
        tls: tls.map(TlsAcceptor::from),
        handshake_timeout: Duration::from_secs(http.tls_handshake_timeout_secs),
        header_timeout: Duration::from_secs(http.header_read_timeout_secs),
        write_stall: Duration::from_secs(http.write_stall_secs),
        state,
        metrics,
        shutdown: shutdown.clone(),
    };
    let limit = Arc::new(Semaphore::new(http.max_connections));
    let graceful = GracefulShutdown::new();
    let token = shutdown.token().clone();
    loop {
        let permit = tokio::select! {
            () = token.cancelled() => break,
            permit = limit.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = token.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // EMFILE/ENFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let context = context.clone();
        let watcher = graceful.watcher();
        tokio::spawn(context.dispatch(stream, peer, watcher, permit));
    }
    drop(listener);
    tracing::info!(
        connections = graceful.count(),
        "stopped accepting; draining in-flight requests"
    );
    let grace = Duration::from_secs(http.grace_period_secs);
    let drained = tokio::time::timeout(grace, async {
        tokio::join!(graceful.shutdown(), shutdown.drain(grace))
    })
    .await;
    match drained {
        Ok(((), 0)) => 0,
        Ok(((), tasks)) => tasks,
        Err(_) => {
            tracing::warn!("grace period over; cutting off what is still running");
            1
        }
    }
}

/// How often an HTTP/2 connection is pinged (hyper sends pings only while it is otherwise idle).
const H2_PING_EVERY: Duration = Duration::from_secs(30);
/// How long a ping may go unanswered before the HTTP/2 connection is closed.
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);

/// Who serves a plain connection (`ConnContext::first_request`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FirstRequest {
    /// `/sse/alerts`, served beside hyper (`alerts_sse_raw`).
    RawSse,
    /// `/ws/alerts`, served beside hyper (`alerts_ws_raw`).
    RawWs,
    /// Everything else.
    Hyper,
    /// Nothing within the header timeout: closed.
    Silent,
}

impl ConnContext {
    /// Who serves the connection, from its first bytes (peeked): the side path for a request
    /// it claims, hyper for anything else (a partial start included: hyper serves it the same
    /// way), nobody if nothing arrives within the header timeout (what hyper would do too).
    async fn first_request(&self, stream: &TcpStream, deadline: Instant) -> FirstRequest {
        let mut peeked = [0u8; 16];
        match tokio::time::timeout_at(deadline, stream.peek(&mut peeked)).await {
            Ok(Ok(n)) if crate::http::alerts_sse_raw::claims(&peeked[..n]) => FirstRequest::RawSse,
            Ok(Ok(n)) if crate::http::alerts_ws_raw::claims(&peeked[..n]) => FirstRequest::RawWs,
            Ok(_) => FirstRequest::Hyper,
            Err(_) => FirstRequest::Silent,
        }
    }

    /// Looks at an accepted connection's first bytes and starts the task that serves it; this
    /// task is small and ends right away, so neither the side paths' long-lived tasks nor
    /// hyper's large connection future share an allocation with it. `permit` (the connection
    /// cap) moves to that task and is held until the connection ends.
    async fn dispatch(
        self,
        stream: TcpStream,
        peer: SocketAddr,
        watcher: Watcher,
        permit: OwnedSemaphorePermit,
    ) {
        // A plain connection's first request is due this long after the accept, whoever
        // serves it (TLS restarts the clock after its own handshake timeout).
        let deadline = Instant::now() + self.header_timeout;
        let first = match (&self.tls, &self.state) {
            (None, Some(_)) => self.first_request(&stream, deadline).await,
            _ => FirstRequest::Hyper,
        };
        match (first, &self.state) {
            (FirstRequest::Silent, _) => {}
            (FirstRequest::RawSse | FirstRequest::RawWs, Some(state)) => {
                // Sized for this small future rather than hyper's connection machinery (a
                // live subscriber is kept for hours). The serving future is the task's whole
                // future (no wrapper around it: an `async` block holding a future it awaits
                // stores it twice), and `held` ends the permit and the gauge with it.
                let gauge = self.metrics.http_connections.with_label_values(&["tcp"]);
                let held = Held::new(permit, gauge);
                let stream = crate::stall::StallGuard::new(stream, self.write_stall);
                let serve = match first {
                    FirstRequest::RawWs => Either::Left(crate::http::alerts_ws_raw::serve(
                        state.clone(),
                        stream,
                        peer,
                        deadline,
                        held,
                    )),
                    _ => Either::Right(crate::http::alerts_sse_raw::serve(
                        state.clone(),
                        stream,
                        peer,
                        deadline,
                        held,
                    )),
                };
                tokio::spawn(self.shutdown.track(serve));
            }
            _ => {
                tokio::spawn(self.connection(stream, peer, watcher, permit, deadline));
            }
        }
    }

    /// Serves one connection with hyper; `permit` (the connection cap) is held until its
    /// socket closes, also when a WebSocket upgrade took the socket out of hyper (`held`).
    /// Its first request is due by `deadline` (plain) or a header timeout after the TLS
    /// handshake.
    async fn connection(
        self,
        stream: TcpStream,
        peer: SocketAddr,
        watcher: Watcher,
        permit: OwnedSemaphorePermit,
        deadline: Instant,
    ) {
        let stream = crate::stall::StallGuard::new(stream, self.write_stall);
        match self.tls.clone() {
            None => {
                let gauge = self.metrics.http_connections.with_label_values(&["tcp"]);
                let stream = stream.holding(Held::new(permit, gauge));
                self.serve_io(stream, peer, watcher, deadline).await;
            }
            Some(acceptor) => {
                let handshake =
                    tokio::time::timeout(self.handshake_timeout, acceptor.accept(stream));
                let mut stream = tokio::select! {
                    () = self.shutdown.token().cancelled() => return,
                    done = handshake => match done {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(err)) => {
                            tracing::debug!(%peer, error = %err, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    },
                };
                let gauge = self.metrics.http_connections.with_label_values(&["tls"]);
                stream.get_mut().0.hold(Held::new(permit, gauge));
                let deadline = Instant::now() + self.header_timeout;
                self.serve_io(stream, peer, watcher, deadline).await;
            }
        }
    }

    /// Serves one connection with hyper. Its first request must arrive by `deadline` (one
    /// `http.header_read_timeout_secs` in all): hyper's own header timeout starts only once it
    /// has chosen HTTP/1 or HTTP/2, and choosing waits for the first 24 bytes, so a client
    /// silent after a TLS handshake, or stalled inside the HTTP/2 preface or handshake,
    /// would otherwise hold a connection slot forever.
    async fn serve_io<S>(&self, stream: S, peer: SocketAddr, watcher: Watcher, deadline: Instant)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let router = self.router.clone();
        let first = Arc::new(tokio::sync::Notify::new());
        let seen = first.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            seen.notify_one();
            request.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            async move {
                Ok::<_, Infallible>(router.oneshot(request).await.unwrap_or_else(|e| match e {}))
            }
        });
        let connection = self
            .builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service);
        let served = watcher.watch(connection.into_owned());
        tokio::pin!(served);
        let started = tokio::select! {
            ended = &mut served => Some(ended),
            () = first.notified() => None,
            () = tokio::time::sleep_until(deadline) => {
                tracing::debug!(%peer, "no request within the header timeout; closed");
                return;
            }
        };
        let ended = match started {
            Some(ended) => ended,
            None => served.await,
        };
        if let Err(err) = ended {
            tracing::debug!(%peer, error = %err, "connection ended with an error");
        }
    }
}
