//! The server side of the RFC 6455 opening handshake over HTTP/1.1: checks the request's
//! upgrade headers and builds the `101 Switching Protocols` answer. A request that is not a
//! WebSocket handshake gets a JSON error (400, or 426 naming the supported version) before
//! anything else runs.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::http::ApiError;

/// RFC 6455 § 1.3: appended to the client's key before hashing.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A handshake the server accepts; [`Accepted::response`] is its 101 answer.
#[derive(Debug)]
pub struct Accepted {
    accept: String,
}

impl Accepted {
    /// `101 Switching Protocols` with `Sec-WebSocket-Accept`.
    pub fn response(&self) -> Response {
        let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
        let headers = response.headers_mut();
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        if let Ok(value) = HeaderValue::from_str(&self.accept) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, value);
        }
        response
    }
}

/// Why a request is not an acceptable handshake.
#[derive(Debug)]
pub struct Refused(Box<Response>);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        *self.0
    }
}

fn bad(message: &str) -> Refused {
    Refused(Box::new(
        ApiError::bad_request("not_a_websocket", message.to_owned()).into_response(),
    ))
}

/// Whether header `name` holds `token` in its comma-separated list (case-insensitive).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The request headers [`check`] reads (lowercase).
pub const HEADERS: &[&str] = &[
    "connection",
    "upgrade",
    "sec-websocket-version",
    "sec-websocket-key",
];

/// Checks a handshake request (method, version, and the [`HEADERS`]).
pub fn check(method: &Method, version: Version, headers: &HeaderMap) -> Result<Accepted, Refused> {
    if method != Method::GET {
        return Err(bad("a WebSocket handshake is a GET"));
    }
    if version != Version::HTTP_11 {
        return Err(bad(
            "WebSocket needs HTTP/1.1 (no HTTP/2 extended CONNECT here)",
        ));
    }
    if !has_token(headers, header::CONNECTION, "upgrade")
        || !has_token(headers, header::UPGRADE, "websocket")
    {
        return Err(bad(
            "not a WebSocket handshake (needs Connection: upgrade and Upgrade: websocket)",
        ));
    }
    let version_ok = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v.as_bytes() == b"13");
    if !version_ok {
        let mut response = ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "unsupported_websocket_version",
            "only WebSocket version 13 (RFC 6455) is supported",
        )
        .into_response();
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return Err(Refused(Box::new(response)));
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .map(HeaderValue::as_bytes)
        .ok_or_else(|| bad("Sec-WebSocket-Key is missing"))?;
    let decoded = STANDARD
        .decode(key)
        .map_err(|_| bad("Sec-WebSocket-Key is not base64"))?;
    if decoded.len() != 16 {
        return Err(bad("Sec-WebSocket-Key must be 16 bytes, base64-encoded"));
    }
    Ok(Accepted {
        accept: accept_key(key),
    })
}

/// `Sec-WebSocket-Accept` for `key`: base64(SHA-1(key ‖ GUID)).
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key);
    sha.update(GUID.as_bytes());
    STANDARD.encode(sha.digest().bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(edit: impl FnOnce(&mut HeaderMap)) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        h.insert(
            header::SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
        );
        edit(&mut h);
        h
    }

    #[test]
    fn the_rfc_example_key() {
        // RFC 6455 § 1.3.
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        let ok = check(&Method::GET, Version::HTTP_11, &request(|_| {})).expect("valid");
        let response = ok.response();
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(
            response.headers()[header::SEC_WEBSOCKET_ACCEPT],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn non_handshakes_are_refused_with_a_status() {
        let status = |method: Method, version: Version, h: HeaderMap| -> u16 {
            match check(&method, version, &h) {
                Ok(_) => 101,
                Err(Refused(r)) => r.status().as_u16(),
            }
        };
        let get = Method::GET;
        let v11 = Version::HTTP_11;
        assert_eq!(status(Method::POST, v11, request(|_| {})), 400);
        assert_eq!(status(get.clone(), Version::HTTP_2, request(|_| {})), 400);
        let no_upgrade = request(|h| {
            h.remove(header::UPGRADE);
        });
        assert_eq!(status(get.clone(), v11, no_upgrade), 400);
        let v8 = request(|h| {
            h.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("8"));
        });
        assert_eq!(status(get.clone(), v11, v8), 426);
        let short_key = request(|h| {
            h.insert(
                header::SEC_WEBSOCKET_KEY,
                HeaderValue::from_static("c2hvcnQ="),
            );
        });
        assert_eq!(status(get.clone(), v11, short_key), 400);
        let no_key = request(|h| {
            h.remove(header::SEC_WEBSOCKET_KEY);
        });
        assert_eq!(status(get, v11, no_key), 400);
    }
}
