//! Request metrics middleware, `/metrics` (one render at a time, shared by the requests that
//! wait for it), `/openapi.json`, and the JSON 404/405 fallbacks.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::metrics::method_label;

/// Counts every request by matched route (bounded), method and status, and times it.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let metrics = state.metrics();
    metrics
        .http_duration
        .with_label_values(&[route.as_str(), method])
        .observe(started.elapsed().as_secs_f64());
    metrics
        .http_requests
        .with_label_values(&[route.as_str(), method, response.status().as_str()])
        .inc();
    response
}

/// `GET /metrics`: Prometheus text format 0.0.4; with `http.metrics_token` set, only for a
/// request bearing it (401 `unauthorized` otherwise).
pub async fn metrics(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    if let Some(expected) = &state.http().metrics_token {
        let given = (headers.get(axum::http::header::AUTHORIZATION))
            .and_then(|v| v.to_str().ok())
            .and_then(super::auth::bearer);
        if !given.is_some_and(|given| same_secret(given.as_bytes(), expected.as_bytes())) {
            let message = "GET /metrics needs the bearer token set as http.metrics_token";
            return ApiError::unauthorized("unauthorized", message).into_response();
        }
    }
    // The process collector lists `/proc/self/fd` (one entry per socket, ~20k under load):
    // blocking work, kept off the runtime threads and done once for concurrent scrapes.
    let metrics = state.metrics().clone();
    let running = state.scrape().blocking();
    let render = || async move {
        // A render abandoned at the limit may still hold its blocking thread: no second one
        // beside it (a stuck `/proc` read would otherwise take a thread every 10 s).
        let Ok(running) = running.try_acquire_owned() else {
            let message = "the last metrics render is still running";
            return Err(ApiError::busy(message));
        };
        let encoded = tokio::task::spawn_blocking(move || {
            let _running = running;
            metrics.encode()
        });
        match encoded.await? {
            Ok(text) => Ok(Bytes::from(text)),
            Err(err) => Err(ApiError::internal(&err)),
        }
    };
    match state.scrape().text(Instant::now(), render).await {
        Ok(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(err) => err.into_response(),
    }
}

/// Longest one `/metrics` render may hold the turn (503 beyond). A render takes milliseconds,
/// ~20 ms with 20k sockets open; a Prometheus scrape times out after 10 s by default.
pub const RENDER_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The last `/metrics` text and when its render began. Requests take turns rendering, and
/// one that arrived before the last render began gets that render's text: a burst of scrapes
/// costs at most two renders (the one running when it came, and one for all that waited),
/// never one blocking thread each, and no scrape sees counters older than its arrival. A
/// render keeps the turn until it ends, even when the request that started it is gone (a
/// scraper hanging up mid-render cannot start a second render beside the first).
#[derive(Debug)]
pub struct Scrape {
    last: Arc<tokio::sync::Mutex<Option<(Instant, Bytes)>>>,
    /// One permit: held by a render's blocking work while it runs (it outlives a render
    /// given up at the limit), so no second one starts beside a stuck one.
    blocking: Arc<tokio::sync::Semaphore>,
}

impl Default for Scrape {
    fn default() -> Self {
        Scrape {
            last: Arc::default(),
            blocking: Arc::new(tokio::sync::Semaphore::new(1)),
        }
    }
}

impl Scrape {
    /// The one permit of renders' blocking work, held while it runs.
    pub fn blocking(&self) -> Arc<tokio::sync::Semaphore> {
        Arc::clone(&self.blocking)
    }

    /// The text for a request that arrived at `arrived`: the last render's if it began since,
    /// else `render`'s (a failed render is returned and not kept). The render runs in a task
    /// of its own that holds the turn.
    pub async fn text<F, Fut, E>(&self, arrived: Instant, render: F) -> Result<Bytes, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, E>> + Send + 'static,
        E: From<tokio::task::JoinError> + From<tokio::time::error::Elapsed> + Send + 'static,
    {
        let mut last = Arc::clone(&self.last).lock_owned().await;
        if let Some((began, text)) = last.as_ref()
            && *began >= arrived
        {
            return Ok(text.clone());
        }
        let began = Instant::now();
        let render = render();
        let turn = tokio::spawn(async move {
            // A render stuck past the limit (a `/proc` read that never returns) gives the
            // turn up; its blocking thread may go on, one more at most per limit.
            let text = tokio::time::timeout(RENDER_LIMIT, render).await??;
            *last = Some((began, text.clone()));
            Ok(text)
        });
        turn.await?
    }
}

/// `GET /openapi.json`: the OpenAPI 3.1 description of this API (`openapi.json` beside this
/// file, checked against the router by `tests/serve_http.rs`).
pub async fn openapi() -> Response {
    let headers = [
        (axum::http::header::CONTENT_TYPE, "application/json"),
        (axum::http::header::CACHE_CONTROL, "public, max-age=3600"),
    ];
    (headers, include_str!("openapi.json")).into_response()
}

/// Unknown path.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route for {}", uri.path()))
}

/// Known path, wrong method.
pub async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed here"),
    )
}

/// Whether `a` and `b` are equal, in time independent of where they differ (a secret compared
/// byte by byte would tell a prober how much of its guess is right).
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// What a test render fails with (a render task that panicked, here).
    #[derive(Debug, PartialEq)]
    struct Failed;

    impl From<tokio::task::JoinError> for Failed {
        fn from(_: tokio::task::JoinError) -> Self {
            Failed
        }
    }

    impl From<tokio::time::error::Elapsed> for Failed {
        fn from(_: tokio::time::error::Elapsed) -> Self {
            Failed
        }
    }

    type Render = std::pin::Pin<Box<dyn Future<Output = Result<Bytes, Failed>> + Send>>;

    /// A render that counts its calls and takes a while, like the fd listing under load.
    fn counted(renders: Arc<AtomicUsize>) -> impl FnOnce() -> Render {
        move || {
            Box::pin(async move {
                let n = renders.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::time::sleep(Duration::from_millis(30)).await;
                Ok(Bytes::from(format!("render {n}")))
            })
        }
    }

    // Paused time: a sleep ends only once every other task waits, so the second burst
    // arrives after the first render began however loaded the machine is.
    #[tokio::test(start_paused = true)]
    async fn scrapes_waiting_for_a_render_share_the_next_one() {
        let scrape = Arc::new(Scrape::default());
        let renders = Arc::new(AtomicUsize::new(0));
        let ask = |arrived: Instant| {
            let scrape = Arc::clone(&scrape);
            let render = counted(Arc::clone(&renders));
            tokio::spawn(async move { scrape.text(arrived, render).await })
        };
        // A burst arriving together: one render for all.
        let burst = Instant::now();
        let first: Vec<_> = (0..16).map(|_| ask(burst)).collect();
        // Arriving while that render runs: its counters may predate them, so one more
        // render, shared by all of them.
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(renders.load(Ordering::SeqCst), 1, "the first render runs");
        let during = Instant::now();
        let second: Vec<_> = (0..16).map(|_| ask(during)).collect();
        for task in first {
            assert_eq!(task.await.expect("join"), Ok(Bytes::from("render 1")));
        }
        for task in second {
            assert_eq!(task.await.expect("join"), Ok(Bytes::from("render 2")));
        }
        assert_eq!(renders.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_render_stuck_past_the_limit_gives_up_the_turn() {
        let scrape = Scrape::default();
        let stuck = || -> Render { Box::pin(std::future::pending()) };
        assert_eq!(scrape.text(Instant::now(), stuck).await, Err(Failed));
        let renders = Arc::new(AtomicUsize::new(0));
        let next = scrape.text(Instant::now(), counted(Arc::clone(&renders)));
        assert_eq!(next.await, Ok(Bytes::from("render 1")));
    }

    #[test]
    fn blocking_work_is_claimed_once_until_it_ends() {
        let scrape = Scrape::default();
        let running = scrape.blocking().try_acquire_owned().expect("free");
        assert!(
            scrape.blocking().try_acquire_owned().is_err(),
            "still running"
        );
        drop(running);
        assert!(scrape.blocking().try_acquire_owned().is_ok(), "free again");
    }

    #[tokio::test(start_paused = true)]
    async fn a_scraper_hanging_up_mid_render_keeps_the_next_one_waiting() {
        let scrape = Arc::new(Scrape::default());
        let running = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let held = {
            let running = Arc::clone(&running);
            move || -> Render {
                Box::pin(async move {
                    running.fetch_add(1, Ordering::SeqCst);
                    let _ = released.await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok(Bytes::from("held"))
                })
            }
        };
        let first = {
            let scrape = Arc::clone(&scrape);
            tokio::spawn(async move { scrape.text(Instant::now(), held).await })
        };
        while running.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // The scraper hangs up: its request future is dropped mid-render.
        first.abort();
        let _ = first.await;
        let renders = Arc::new(AtomicUsize::new(0));
        let next = {
            let scrape = Arc::clone(&scrape);
            let render = counted(Arc::clone(&renders));
            tokio::spawn(async move { scrape.text(Instant::now(), render).await })
        };
        // The abandoned render still holds the turn: nothing renders beside it.
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            running.load(Ordering::SeqCst),
            1,
            "the abandoned render goes on"
        );
        assert_eq!(
            renders.load(Ordering::SeqCst),
            0,
            "a second render began beside it"
        );
        release.send(()).expect("the render waits");
        assert_eq!(next.await.expect("join"), Ok(Bytes::from("render 1")));
        assert_eq!(running.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_later_scrape_renders_anew_and_a_failure_is_not_kept() {
        let scrape = Scrape::default();
        let renders = Arc::new(AtomicUsize::new(0));
        let first = (scrape.text(Instant::now(), counted(Arc::clone(&renders)))).await;
        assert_eq!(first, Ok(Bytes::from("render 1")));
        let failed = scrape.text(Instant::now(), || async { Err(Failed) }).await;
        assert_eq!(failed, Err(Failed));
        let again = scrape.text(Instant::now(), counted(Arc::clone(&renders)));
        assert_eq!(again.await, Ok(Bytes::from("render 2")));
        assert_eq!(renders.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!same_secret(b"0123456789abcdef", b"0123456789abcdeF"));
        assert!(!same_secret(b"0123456789abcdef", b"0123456789abcde"));
        assert!(!same_secret(b"", b"x"));
    }
}
