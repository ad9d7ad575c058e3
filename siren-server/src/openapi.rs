//! `GET /api/v1/openapi.json`: the REST API's OpenAPI 3.1 document (`siren-server/openapi.json`,
//! kept beside the code; a test checks every route is in it and every path in it is served).

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::AppState;

/// The document.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// `/api/v1/openapi.json`.
pub fn router() -> Router<AppState> {
    Router::new().route(
        "/api/v1/openapi.json",
        get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response() }),
    )
}
