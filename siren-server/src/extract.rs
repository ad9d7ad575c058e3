//! The request extractors every handler takes its body, query string and path through: axum's
//! own, with their rejections turned into [`ApiError`] so that a malformed request gets the
//! same `{"error": "…"}` answer as every other failure, with axum's status (400 for JSON that
//! does not parse or a malformed query string, 413 for a body over the limit, 415 for a body
//! without a JSON content type, 422 for JSON of the wrong shape).

use axum::extract::{FromRequest, FromRequestParts};

use crate::error::ApiError;

/// A JSON request body of type `T`.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct JsonBody<T>(pub T);

/// The query string's parameters, as `T`.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct QueryParams<T>(pub T);

/// The path's parameters, as `T`.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct PathParams<T>(pub T);
