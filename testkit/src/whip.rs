//! The HTTP half of WHIP (RFC 9725) and WHEP as hubcast serves them.
//!
//! `POST /whip/{room}` or `POST /whep/{room}[/{publisher}]` with an `application/sdp` offer
//! answers `201 Created` with the SDP answer and a `Location` of the session resource;
//! `DELETE {location}` ends it; `POST {location}/layer` `{"rid": …}` picks a simulcast layer
//! for a WHEP session; `GET /api/v1/rooms/{room}` lists publishers. Every request carries
//! `Authorization: Bearer <JWT>` when a token is set. No trickle: offers are complete.

use serde_json::{Value, json};

use crate::{Error, Result};

/// A session created by an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhipSession {
    /// Absolute URL of the session resource (the `Location` header, resolved).
    pub location: String,
    /// The server's SDP answer.
    pub answer: String,
}

/// Signalling client for one hub.
#[derive(Debug, Clone)]
pub struct WhipClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl WhipClient {
    /// `base_url` like `http://127.0.0.1:8080` (a trailing `/` is ignored).
    pub fn new(base_url: &str, token: Option<&str>) -> Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder().no_proxy().build()?,
            base: base_url.trim_end_matches('/').to_owned(),
            token: token.map(str::to_owned),
        })
    }

    /// The absolute URL of `path` (`/whip/r1`) or of an absolute `Location`.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}/{}", self.base, path.trim_start_matches('/'))
        }
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, url);
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// Posts a complete SDP offer to `path` (`/whip/{room}`, `/whep/{room}[/{publisher}]`).
    pub async fn offer(&self, path: &str, offer_sdp: &str) -> Result<WhipSession> {
        let url = self.url(path);
        let resp = self
            .request(reqwest::Method::POST, &url)
            .header(reqwest::header::CONTENT_TYPE, "application/sdp")
            .body(offer_sdp.to_owned())
            .send()
            .await?;
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp.text().await?;
        if status != 201 {
            return Err(status_err("POST", url, status, body));
        }
        let location =
            location.ok_or_else(|| Error::Protocol(format!("201 from {url} without Location")))?;
        if !body.starts_with("v=0") {
            return Err(Error::Protocol(format!(
                "answer from {url} is not SDP: {body:.80}"
            )));
        }
        Ok(WhipSession {
            location: self.url(&location),
            answer: body,
        })
    }

    /// `DELETE {location}`: ends the session (2xx expected).
    pub async fn delete(&self, location: &str) -> Result<()> {
        let url = self.url(location);
        let resp = self.request(reqwest::Method::DELETE, &url).send().await?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            return Err(status_err("DELETE", url, status.as_u16(), body));
        }
        Ok(())
    }

    /// `POST {location}/layer` `{"rid": rid}` with `rid` one of `q`, `h`, `f`, `auto` (204).
    pub async fn set_layer(&self, location: &str, rid: &str) -> Result<()> {
        let url = format!("{}/layer", self.url(location));
        let resp = self
            .request(reqwest::Method::POST, &url)
            .json(&json!({"rid": rid}))
            .send()
            .await?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            return Err(status_err("POST", url, status.as_u16(), body));
        }
        Ok(())
    }

    /// `GET /api/v1/rooms/{room}` as JSON.
    pub async fn room(&self, room: &str) -> Result<Value> {
        let url = self.url(&format!("/api/v1/rooms/{room}"));
        let resp = self.request(reqwest::Method::GET, &url).send().await?;
        let status = resp.status().as_u16();
        if status != 200 {
            let body = resp.text().await.unwrap_or_default();
            return Err(status_err("GET", url, status, body));
        }
        Ok(resp.json().await?)
    }

    /// The ids of the room's publishers (`publishers[].id`).
    pub async fn publisher_ids(&self, room: &str) -> Result<Vec<String>> {
        let v = self.room(room).await?;
        Ok(v["publishers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// The session id: the last path segment of a `Location` (`…/sessions/{id}`).
pub fn session_id(location: &str) -> &str {
    location
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(location)
}

fn status_err(method: &'static str, url: String, status: u16, mut body: String) -> Error {
    body.truncate(body.floor_char_boundary(400));
    Error::Status {
        method,
        url,
        status,
        body,
    }
}
