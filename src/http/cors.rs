//! Cross-origin calls. Public alert reads: other agencies' pages and public aggregators read
//! the archive, the CAP documents, the Atom feed and the SSE stream from their own origins.
//! These need no credentials, so `Access-Control-Allow-Origin: *` is safe. The media API
//! (WHIP/WHEP, their sessions, room info and events) is open to the origins listed in
//! `http.cors_origins` only (none by default): a wall page served by an agency's own portal
//! plays a meeting with its token. Publishing alerts and everything else stays same-origin.
//! A preflight (`OPTIONS`) is answered 204. WebSockets need no CORS.

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

/// Whether `path` is part of the media API `http.cors_origins` opens.
pub fn is_media(path: &str) -> bool {
    path.starts_with("/whip/")
        || path.starts_with("/whep/")
        || path.starts_with("/api/v1/rooms/")
        || path.starts_with("/sse/rooms/")
}

/// Whether `text` is a serialized origin (`https://host[:port]`, RFC 6454): what a browser
/// sends in `Origin` and what `http.cors_origins` lists.
pub fn is_origin(text: &str) -> bool {
    let Some((scheme, rest)) = text.split_once("://") else {
        return false;
    };
    // `[v6]` or a DNS name / IPv4 address, then an optional `:port`.
    let (host_ok, after) = match rest.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((addr, after)) => (addr.parse::<std::net::Ipv6Addr>().is_ok(), after),
            None => (false, ""),
        },
        None => {
            let end = rest.find(':').unwrap_or(rest.len());
            let host = &rest[..end];
            let name = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'-';
            (!host.is_empty() && host.bytes().all(name), &rest[end..])
        }
    };
    let port_ok = after.is_empty()
        || after.strip_prefix(':').is_some_and(|p| {
            !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
        });
    matches!(scheme, "http" | "https") && host_ok && port_ok
}

/// `origin` (an [`is_origin`]) as a browser serializes it in `Origin`: scheme and host in
/// lower case, no default port (`HTTPS://Portal.Example:443` → `https://portal.example`).
/// A listed origin is compared with the header byte for byte, so it must be written so.
pub fn browser_form(origin: &str) -> String {
    let lower = origin.to_ascii_lowercase();
    for (scheme, port) in [("https://", ":443"), ("http://", ":80")] {
        if lower.starts_with(scheme)
            && let Some(bare) = lower.strip_suffix(port)
        {
            return bare.to_owned();
        }
    }
    lower
}

/// What a listed origin's page may send and read on the media API.
const MEDIA_PREFLIGHT: [(header::HeaderName, &str); 3] = [
    (
        header::ACCESS_CONTROL_ALLOW_METHODS,
        "GET, POST, PATCH, DELETE",
    ),
    (
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        "Authorization, Content-Type, If-Match, Last-Event-ID",
    ),
    (header::ACCESS_CONTROL_MAX_AGE, "600"),
];

/// Response headers a listed origin's page may read: the session's location, its entity tag
/// for trickle ICE, the ICE servers, and how long to wait before a retry.
const MEDIA_EXPOSE: &str = "Location, ETag, Link, Accept-Patch, Retry-After";

/// Middleware: on the media API, a request whose `Origin` is listed in `http.cors_origins`
/// (or any, with `"*"`) gets `Access-Control-Allow-Origin: <that origin>` (errors included),
/// its preflight 204 with the methods and headers above; other origins get no CORS header,
/// so the browser keeps their pages out.
pub async fn media_origins(
    axum::extract::State(state): axum::extract::State<super::AppState>,
    request: Request,
    next: Next,
) -> Response {
    let listed = &state.http().cors_origins;
    let origin = (request.headers().get(header::ORIGIN))
        .filter(|_| !listed.is_empty() && is_media(request.uri().path()))
        .and_then(|o| o.to_str().ok())
        .filter(|o| listed.iter().any(|l| l == "*" || l == o))
        .and_then(|o| HeaderValue::from_str(o).ok());
    let Some(origin) = origin else {
        return next.run(request).await;
    };
    let preflight = request.method() == Method::OPTIONS;
    let mut response = if preflight {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    if preflight {
        for (name, value) in MEDIA_PREFLIGHT {
            headers.insert(name, HeaderValue::from_static(value));
        }
    } else {
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(MEDIA_EXPOSE),
        );
    }
    response
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
    use super::{is_origin, is_public_read};

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        for good in [
            "https://portal.example.gov.cn",
            "http://127.0.0.1:8080",
            "https://[2001:db8::1]:8443",
            "http://localhost",
        ] {
            assert!(is_origin(good), "{good}");
        }
        for bad in [
            "portal.example.gov.cn",
            "https://portal.example.gov.cn/",
            "https://portal.example.gov.cn/wall",
            "ftp://x",
            "https://",
            "https://a b",
            "https://user@host",
            "https://host:port",
        ] {
            assert!(!is_origin(bad), "{bad}");
        }
    }

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
