//! `hubcast alert publish FILE`: posts a CAP 1.2 alert (XML, or its JSON form) to a running hub
//! and returns the hub's JSON answer (`{"id","seq","created"}`).
//!
//! The client is a minimal HTTP/1.1 exchange: one request with `Content-Length` and
//! `Connection: close`, the answer read to EOF (bounded), over TCP for `http://` or rustls for
//! `https://` (trusting `--ca FILE`, else the system's CA bundle: `tls::client_config`). The answer's head is read by
//! `httparse` (as the server reads requests), its body by `Content-Length` or chunked coding.
//! Usage problems (file, URL, token) are [`ConfigError`]s (exit 2); a non-2xx answer is an error
//! with the server's status, code and message (exit 1).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use crate::config::ConfigError;

/// Whole exchange: connect, send, read the answer (a publish waits for one fsync).
const TIMEOUT: Duration = Duration::from_secs(60);
/// Largest answer read.
const MAX_RESPONSE: u64 = 4 * 1024 * 1024;

/// The bearer token from `--token` or `--token-file` (exactly one), checked to be one
/// header-safe word.
pub fn token(flag: Option<String>, file: Option<&Path>) -> Result<String, ConfigError> {
    let token = match (flag, file) {
        (Some(token), None) => token,
        (None, Some(path)) => std::fs::read_to_string(path).map_err(|err| {
            ConfigError::new(
                "token-file",
                format!("cannot read {}: {err}", path.display()),
            )
        })?,
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                "token",
                "give --token or --token-file, not both",
            ));
        }
        (None, None) => {
            let message = "give --token T or --token-file FILE (mint one with `hubcast token`)";
            return Err(ConfigError::new("token", message));
        }
    };
    let token = token.trim().to_owned();
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        let message = "the token must be one word of printable ASCII (a JWT)";
        return Err(ConfigError::new("token", message));
    }
    Ok(token)
}

/// The `Content-Type` for `file`: by extension (`.xml` / `.json`), else by its first
/// non-blank byte (`<` or `{`).
fn content_type(file: &Path, body: &[u8]) -> Result<&'static str, ConfigError> {
    let ext = file
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("xml" | "cap") => return Ok("application/cap+xml"),
        Some("json") => return Ok("application/json"),
        _ => {}
    }
    // A byte-order mark (Windows editors write one) is not the document's first character.
    let body = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body);
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'<') => Ok("application/cap+xml"),
        Some(b'{') => Ok("application/json"),
        _ => Err(ConfigError::new(
            "FILE",
            format!(
                "{}: neither .xml, .cap nor .json, nor does it look like XML or JSON",
                file.display()
            ),
        )),
    }
}

/// Whether `host` (a URL's, brackets removed) is this machine.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A parsed `http[s]://host[:port][/base]` URL.
#[derive(Debug, PartialEq, Eq)]
struct ServerUrl {
    /// `https://`.
    tls: bool,
    /// `host:port` as written (the `Host` header).
    authority: String,
    host: String,
    port: u16,
    /// Path prefix without a trailing `/` (empty for the root).
    base: String,
}

impl ServerUrl {
    fn parse(url: &str) -> Result<ServerUrl, ConfigError> {
        let bad = |why: &str| ConfigError::new("server", format!("{url:?}: {why}"));
        let lower = url.to_ascii_lowercase();
        let (tls, rest) = if lower.starts_with("https://") {
            (true, &url["https://".len()..])
        } else if lower.starts_with("http://") {
            (false, &url["http://".len()..])
        } else {
            return Err(bad("expected http://HOST[:PORT] or https://HOST[:PORT]"));
        };
        let (authority, base) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => {
                let port = port.parse().map_err(|_| bad("the port is not a number"))?;
                (host, port)
            }
            _ => (authority, if tls { 443 } else { 80 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let safe = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#')
        };
        if host.is_empty() || !safe(authority) || !safe(base) {
            return Err(bad("expected http[s]://HOST[:PORT][/PATH]"));
        }
        Ok(ServerUrl {
            tls,
            authority: authority.to_owned(),
            host: host.to_owned(),
            port,
            base: base.trim_end_matches('/').to_owned(),
        })
    }
}

/// An HTTP answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: String,
}

/// `hubcast alert publish`: reads `file`, posts it to `server` (over TLS for `https://`,
/// trusting `ca` or the system's bundle), returns the answer's body.
pub async fn publish(
    file: &Path,
    server: &str,
    token: &str,
    ca: Option<&Path>,
) -> anyhow::Result<String> {
    let body = std::fs::read(file).map_err(|err| {
        ConfigError::new("FILE", format!("cannot read {}: {err}", file.display()))
    })?;
    let content_type = content_type(file, &body)?;
    let url = ServerUrl::parse(server)?;
    let tls = match (url.tls, ca) {
        (true, _) => Some(crate::tls::client_config(ca)?),
        (false, Some(_)) => {
            return Err(ConfigError::new(
                "ca",
                format!("{server} is not https://: a CA to trust applies only to TLS"),
            )
            .into());
        }
        (false, None) => None,
    };
    if !url.tls && !is_loopback(&url.host) {
        eprintln!(
            "hubcast: warning: sending the token to {} over plain HTTP: anyone on the path \
             can read and reuse it; use https://",
            url.authority
        );
    }
    let path = format!("{}/api/v1/alerts", url.base);
    let request = Request {
        url: &url,
        path: &path,
        content_type,
        token,
        body: &body,
    };
    let answer = tokio::time::timeout(TIMEOUT, exchange(&request, tls))
        .await
        .map_err(|_| anyhow!("no answer from {server} within {} s", TIMEOUT.as_secs()))??;
    if (200..300).contains(&answer.status) {
        // A hub's answer, not whatever else answers 2xx (a proxy's login page, a captive
        // portal): only `{"id","seq",…}` means the alert was stored.
        let json: serde_json::Value = serde_json::from_str(&answer.body).unwrap_or_default();
        if json["id"].is_string() && json["seq"].is_u64() {
            return Ok(answer.body);
        }
        return Err(anyhow!(
            "{server} answered {} but not as a hubcast hub does (no {{\"id\",\"seq\"}} JSON), \
             so the alert may not be stored: {}",
            answer.status,
            answer.body.chars().take(500).collect::<String>()
        ));
    }
    let json: serde_json::Value = serde_json::from_str(&answer.body).unwrap_or_default();
    match (json["error"].as_str(), json["message"].as_str()) {
        (Some(code), Some(message)) => Err(anyhow!(
            "the hub refused the alert: {} {code}: {message}",
            answer.status
        )),
        _ => Err(anyhow!(
            "the hub answered {}: {}",
            answer.status,
            answer.body.chars().take(500).collect::<String>()
        )),
    }
}

/// What to post where.
struct Request<'a> {
    url: &'a ServerUrl,
    path: &'a str,
    content_type: &'a str,
    token: &'a str,
    body: &'a [u8],
}

/// Connects (and, with `tls`, does the handshake), then posts.
async fn exchange(
    request: &Request<'_>,
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
) -> anyhow::Result<Answer> {
    let url = request.url;
    let stream = tokio::net::TcpStream::connect((url.host.as_str(), url.port))
        .await
        .with_context(|| format!("connecting to {}", url.authority))?;
    let Some(config) = tls else {
        return post(stream, request).await;
    };
    let name = rustls_pki_types::ServerName::try_from(url.host.clone())
        .map_err(|_| anyhow!("{:?} is not a host name TLS can check", url.host))?;
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(name, stream)
        .await
        .with_context(|| {
            format!(
                "TLS with {} (is its certificate trusted? --ca FILE)",
                url.authority
            )
        })?;
    post(stream, request).await
}

async fn post<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &Request<'_>,
) -> anyhow::Result<Answer> {
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: hubcast/{}\r\nAuthorization: Bearer \
         {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nAccept: \
         application/json\r\nConnection: close\r\n\r\n",
        request.path,
        request.url.authority,
        env!("CARGO_PKG_VERSION"),
        request.token,
        request.content_type,
        request.body.len()
    );
    stream
        .write_all(head.as_bytes())
        .await
        .context("sending the request")?;
    stream
        .write_all(request.body)
        .await
        .context("sending the alert")?;
    stream.flush().await.context("sending the alert")?;
    let mut raw = Vec::new();
    let read = (&mut stream)
        .take(MAX_RESPONSE + 1)
        .read_to_end(&mut raw)
        .await;
    if raw.len() as u64 > MAX_RESPONSE {
        return Err(anyhow!(
            "the answer is over {} MiB: not a hub's",
            MAX_RESPONSE >> 20
        ));
    }
    // A TLS peer that closes without close_notify still sent a whole answer.
    if let Err(err) = read
        && (err.kind() != std::io::ErrorKind::UnexpectedEof || raw.is_empty())
    {
        return Err(err).context("reading the answer");
    }
    parse_answer(&raw)
}

fn parse_answer(mut raw: &[u8]) -> anyhow::Result<Answer> {
    // Interim answers (`100 Continue`, `103 Early Hints`) come before the final one.
    while let Some(rest) = interim(raw) {
        raw = rest;
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let split = match response.parse(raw) {
        Ok(httparse::Status::Complete(split)) => split,
        Ok(httparse::Status::Partial) => {
            return Err(anyhow!(
                "the answer ended inside its head ({} bytes)",
                raw.len()
            ));
        }
        Err(err) => return Err(anyhow!("the answer is not HTTP ({err})")),
    };
    let status = response
        .code
        .ok_or_else(|| anyhow!("the answer has no HTTP status line"))?;
    let header = |name: &str| {
        (response.headers.iter())
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    let chunked = header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
    let length = header("content-length").and_then(|v| v.parse::<usize>().ok());
    let body = &raw[split..];
    let body = match (chunked, length) {
        (true, _) => dechunk(body)?,
        // A connection cut short (over TLS, a close without close_notify is let through to
        // here) must not pass for a whole answer.
        (false, Some(length)) if body.len() < length => {
            return Err(anyhow!(
                "the answer was cut short ({} of {length} bytes)",
                body.len()
            ));
        }
        (false, Some(length)) => body[..length].to_vec(),
        (false, None) => body.to_vec(),
    };
    Ok(Answer {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// What follows an interim (1xx, not 101) answer at the start of `raw`, if it starts with one.
fn interim(raw: &[u8]) -> Option<&[u8]> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(raw) {
        Ok(httparse::Status::Complete(split))
            if response
                .code
                .is_some_and(|c| (100..200).contains(&c) && c != 101) =>
        {
            raw.get(split..)
        }
        _ => None,
    }
}

/// The payload of a chunked body, up to its last (zero-size) chunk; a body that ends before
/// it, or a malformed chunk, is an error (a connection cut short is not a whole answer).
fn dechunk(mut rest: &[u8]) -> anyhow::Result<Vec<u8>> {
    let cut = || anyhow!("the answer was cut short (chunked body without its last chunk)");
    let mut out = Vec::new();
    loop {
        let eol = rest.windows(2).position(|w| w == b"\r\n").ok_or_else(cut)?;
        let size = std::str::from_utf8(&rest[..eol])
            .ok()
            .map(|line| line.split(';').next().unwrap_or("").trim())
            .and_then(|hex| usize::from_str_radix(hex, 16).ok())
            .ok_or_else(|| anyhow!("the answer has a malformed chunk size"))?;
        if size == 0 {
            return Ok(out);
        }
        let after = &rest[eol + 2..];
        let chunk = after.get(..size).ok_or_else(cut)?;
        out.extend_from_slice(chunk);
        rest = after[size..].strip_prefix(b"\r\n").ok_or_else(cut)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let url = ServerUrl::parse("http://127.0.0.1:9000/hub/").expect("valid");
        assert_eq!(
            (url.host.as_str(), url.port, url.base.as_str()),
            ("127.0.0.1", 9000, "/hub")
        );
        let url = ServerUrl::parse("HTTP://[::1]").expect("valid");
        assert_eq!(
            (url.host.as_str(), url.port, url.authority.as_str()),
            ("::1", 80, "[::1]")
        );
        let url = ServerUrl::parse("https://hub.example").expect("https");
        assert!(url.tls);
        assert_eq!((url.port, url.authority.as_str()), (443, "hub.example"));
        assert!(!ServerUrl::parse("http://h").expect("http").tls);
        for bad in [
            "127.0.0.1:8080",
            "http://",
            "http://h:port",
            "http://h/a b",
            "http://h?x",
            "ftp://h",
        ] {
            assert!(ServerUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn content_types_and_tokens() {
        let t = |name: &str, body: &str| content_type(Path::new(name), body.as_bytes()).ok();
        assert_eq!(t("a.XML", "{"), Some("application/cap+xml"));
        assert_eq!(t("a.json", "<"), Some("application/json"));
        assert_eq!(t("alert", "  \n<alert/>"), Some("application/cap+xml"));
        assert_eq!(t("alert", "{}"), Some("application/json"));
        assert_eq!(t("alert", "hello"), None);
        assert_eq!(t("a.cap", "{"), Some("application/cap+xml"));
        assert_eq!(t("alert", "\u{feff}<alert/>"), Some("application/cap+xml"));
        assert!(is_loopback("127.0.0.1") && is_loopback("::1") && is_loopback("LOCALHOST"));
        assert!(!is_loopback("hub.example") && !is_loopback("10.0.0.5"));
        assert_eq!(
            token(Some(" a.b.c\n".into()), None).ok().as_deref(),
            Some("a.b.c")
        );
        assert!(token(Some("a b".into()), None).is_err());
        assert!(token(Some("a\r\nX: y".into()), None).is_err());
        assert!(token(None, None).is_err());
    }

    #[test]
    fn answers() {
        let raw = b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n\r\n{\"id\":\"1\"}";
        let a = parse_answer(raw).expect("parses");
        assert_eq!((a.status, a.body.as_str()), (201, "{\"id\":\"1\"}"));
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                    3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_answer(raw).expect("parses").body, "abcde");
        assert!(parse_answer(b"garbage").is_err());
        let head_cut = parse_answer(b"HTTP/1.1 201 Created\r\nContent-Le").expect_err("head cut");
        assert!(
            head_cut.to_string().contains("inside its head"),
            "{head_cut}"
        );
        assert!(parse_answer(b"HTTP/1.1 2x1 Created\r\n\r\n").is_err());
        let cut = b"HTTP/1.1 201 Created\r\nContent-Length: 20\r\n\r\n{\"id\":\"1\"";
        let err = parse_answer(cut).expect_err("cut short");
        assert!(err.to_string().contains("cut short"), "{err}");
        let continued = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n\r\n{}";
        assert_eq!(parse_answer(continued).expect("parses").status, 201);
        let cut = b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n";
        let err = parse_answer(cut).expect_err("no last chunk");
        assert!(err.to_string().contains("cut short"), "{err}");
    }
}
