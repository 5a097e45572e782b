//! Cross-origin reads of the public alert endpoints: other agencies' pages and public
//! aggregators read the archive, the CAP documents, the Atom feed and the SSE stream from their
//! own origins. These need no credentials, so `Access-Control-Allow-Origin: *` is safe; every
//! other route (publishing, media, admin) stays same-origin. A preflight (`OPTIONS`, e.g. an
//! `EventSource` resuming with `Last-Event-ID`) is answered 204. WebSockets need no CORS.

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};

/// Whether `path` is a public alert read.
pub fn is_public_read(path: &str) -> bool {
    path == "/api/v1/alerts"
        || path == "/sse/alerts"
        || path == "/feeds/alerts.atom"
        || path.starts_with("/alerts/")
}

/// The header lines the side-path SSE server adds (`alerts_sse_raw`).
pub const RAW_HEADER: &str = "access-control-allow-origin: *\r\n";

/// The answer to a public read's preflight: any origin, GET, the headers an SSE reader sends,
/// cached for a day.
const PREFLIGHT: [(header::HeaderName, &str); 4] = [
    (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
    (header::ACCESS_CONTROL_ALLOW_METHODS, "GET"),
    (
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        "Last-Event-ID, Cache-Control",
    ),
    (header::ACCESS_CONTROL_MAX_AGE, "86400"),
];

/// Middleware: `Access-Control-Allow-Origin: *` on public alert reads (errors included, so a
/// page can read why), 204 to their preflights.
pub async fn public_reads(request: Request, next: Next) -> Response {
    let public = is_public_read(request.uri().path());
    if public && request.method() == Method::OPTIONS {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        for (name, value) in PREFLIGHT {
            headers.insert(name, HeaderValue::from_static(value));
        }
        return response;
    }
    let read = request.method() == Method::GET || request.method() == Method::HEAD;
    let mut response = next.run(request).await;
    if public && read {
        response.headers_mut().insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::is_public_read;

    #[test]
    fn only_alert_reads_are_public() {
        for path in [
            "/api/v1/alerts",
            "/alerts/42.xml",
            "/sse/alerts",
            "/feeds/alerts.atom",
        ] {
            assert!(is_public_read(path), "{path}");
        }
        for path in [
            "/api/v1/whoami",
            "/whip/room",
            "/metrics",
            "/api/v1/alertsX",
            "/ws/alerts",
        ] {
            assert!(!is_public_read(path), "{path}");
        }
    }
}
