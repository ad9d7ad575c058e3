//! [`ApiError`]: the one error type handlers return, rendered as `{"error": "…"}` with its
//! status. Server-side failures are logged and answered with a generic message. axum's own
//! rejections (of a body, query string or path, see [`crate::extract`]) and requests with a
//! method a route does not take become [`ApiError`]s too, so every error has that body.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use siren_core::api::ErrorBody;
use siren_core::store::StoreError;

/// A request that failed, and how to tell the client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no valid credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: authenticated, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// 404: nothing of that name for this tenant.
    #[error("{0}")]
    NotFound(String),
    /// 405: the route does not take this method.
    #[error("this route does not take the {0} method")]
    MethodNotAllowed(String),
    /// 409 / 422: the change is refused (invalid lifecycle move, unknown user…).
    #[error("{0}")]
    Refused(String),
    /// 422: the body is JSON, but not of the shape the route takes (a field missing or of
    /// the wrong type).
    #[error("{0}")]
    Unprocessable(String),
    /// 413: the body is over the limit.
    #[error("{0}")]
    TooLarge(String),
    /// 415: a content type or encoding the route does not take.
    #[error("{0}")]
    Unsupported(String),
    /// 429: too many attempts; retry after this many seconds.
    #[error("too many attempts; retry in {0} s")]
    TooMany(u64),
    /// 503: the store is busy or down; retry after this many seconds.
    #[error("the server is busy; retry in {0} s")]
    Busy(u64),
    /// 500: something went wrong on our side (logged, not shown).
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Refused(_) | ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unsupported(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
            StoreError::Refused(why) => ApiError::Refused(why),
            e if e.is_transient() => {
                tracing::warn!(error = %e, "store busy");
                ApiError::Busy(1)
            }
            e => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let message = rejection.body_text();
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(message),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::Unsupported(message),
            StatusCode::UNPROCESSABLE_ENTITY => ApiError::Unprocessable(message),
            status if status.is_server_error() => ApiError::Internal(message),
            _ => ApiError::BadRequest(message),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        let message = rejection.body_text();
        if rejection.status().is_server_error() {
            ApiError::Internal(message)
        } else {
            ApiError::BadRequest(message)
        }
    }
}

/// The answer to a method a route does not take (axum adds the `Allow` header).
pub async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::MethodNotAllowed(method.to_string())
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "request failed");
                "internal server error".to_owned()
            }
            ApiError::Busy(_) => "the server is busy; retry later".to_owned(),
            other => other.to_string(),
        };
        let mut response = (status, axum::Json(ErrorBody { error: message })).into_response();
        if let ApiError::TooMany(seconds) | ApiError::Busy(seconds) = self {
            if let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

/// A handler's result.
pub type ApiResult<T> = Result<T, ApiError>;
