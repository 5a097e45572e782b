//! `/api/v1/…` endpoints of the foundation: who am I, and the region tree.

use axum::Json;
use axum::extract::State;

use super::extract::ApiPath;
use serde::Serialize;
use tiers::{Level, Region, RegionCode};

use super::{ApiError, AppState, Authenticated};

/// A region as the API shows it.
#[derive(Debug, Serialize)]
pub struct RegionView {
    code: RegionCode,
    name_zh: String,
    name_en: String,
    level: Level,
    parent: Option<RegionCode>,
    children: Vec<RegionCode>,
}

impl RegionView {
    fn of(state: &AppState, region: &Region) -> Self {
        RegionView {
            code: region.code,
            name_zh: region.name_zh.clone(),
            name_en: region.name_en.clone(),
            level: region.level,
            parent: region.parent,
            children: state.regions().children(region.code).to_vec(),
        }
    }
}

/// `GET /api/v1/whoami`: the verified principal of the bearer token.
pub async fn whoami(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Json<serde_json::Value> {
    let region = state
        .regions()
        .get(principal.region)
        .map(|r| RegionView::of(&state, r));
    Json(serde_json::json!({
        "subject": principal.subject,
        "role": principal.role,
        "region": principal.region,
        "meeting": principal.meeting,
        "region_info": region,
    }))
}

/// `GET /api/v1/regions`: the whole tree, pre-order.
pub async fn regions(State(state): State<AppState>) -> Json<Vec<RegionView>> {
    let tree = state.regions();
    Json(
        tree.subtree(tree.root())
            .map(|r| RegionView::of(&state, r))
            .collect(),
    )
}

/// `GET /api/v1/regions/{code}`: one region.
pub async fn region(
    State(state): State<AppState>,
    ApiPath(code): ApiPath<String>,
) -> Result<Json<RegionView>, ApiError> {
    let code = RegionCode::parse(&code)
        .map_err(|err| ApiError::bad_request("bad_region", err.to_string()))?;
    let region = state
        .regions()
        .get(code)
        .ok_or_else(|| ApiError::not_found(format!("region {code} is not in this hub's tree")))?;
    Ok(Json(RegionView::of(&state, region)))
}

/// `GET /assets/{path}`: the embedded web pages and their scripts.
pub async fn asset(ApiPath(path): ApiPath<String>) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse as _;
    let (content_type, bytes) =
        dashboard::asset(&path).ok_or_else(|| ApiError::not_found(format!("no asset {path:?}")))?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, content_type),
            (axum::http::header::CACHE_CONTROL, "no-cache"),
        ],
        bytes,
    )
        .into_response())
}
