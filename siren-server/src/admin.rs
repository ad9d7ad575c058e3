//! `/api/v1/users` and `/api/v1/tokens`: the admin's management of people and API tokens.
//! A token's secret is returned once, when it is created; only its hash is kept. Only a
//! global admin may create global admins or global tokens, and only a global admin sees or
//! changes them: to a tenant's own admin they do not exist (404).

use axum::extract::State;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use siren_core::api::{TokenAnswer, TokenList, UserAnswer, UserList};
use siren_core::store::NewToken;
use siren_core::user::Role;

use crate::AppState;
use crate::auth::{Access, Administer, Credential};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, PathParams};

/// `/api/v1/users…` and `/api/v1/tokens…`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/users", get(list_users).post(add_user))
        .route("/api/v1/users/{name}/disable", post(disable_user))
        .route("/api/v1/users/{name}/enable", post(enable_user))
        .route("/api/v1/tokens", get(list_tokens).post(create_token))
        .route("/api/v1/tokens/{id}", delete(revoke_token))
}

fn role(text: &str) -> Result<Role, ApiError> {
    Role::parse(text).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "unknown role '{text}': use admin, analyst, viewer or agent"
        ))
    })
}

async fn list_users(
    State(state): State<AppState>,
    access: Access<Administer>,
) -> ApiResult<Json<UserList>> {
    let mut users = state.store().list_users(&access.tenant).await?;
    users.retain(|user| access.global || !user.global);
    Ok(Json(UserList { users }))
}

#[derive(Deserialize)]
struct NewUser {
    name: String,
    role: String,
    password: String,
    #[serde(default)]
    global: bool,
}

async fn add_user(
    State(state): State<AppState>,
    access: Access<Administer>,
    JsonBody(request): JsonBody<NewUser>,
) -> ApiResult<Json<UserAnswer>> {
    let role = role(&request.role)?;
    if !role.is_for_people() {
        return Err(ApiError::BadRequest(
            "the agent role is for API tokens, not users".to_owned(),
        ));
    }
    if request.password.chars().count() < 12 {
        return Err(ApiError::BadRequest(
            "the password must have at least 12 characters".to_owned(),
        ));
    }
    if request.global && !access.global {
        return Err(ApiError::Forbidden(
            "only a global admin may create a global admin".to_owned(),
        ));
    }
    let password = request.password;
    let hash = tokio::task::spawn_blocking(move || siren_core::user::hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(ApiError::Internal)?;
    let actor = access.actor();
    let user = state
        .store()
        .add_user(&access.tenant, &request.name, role, &hash, &actor)
        .await?;
    if request.global {
        state
            .store()
            .set_user_global(&access.tenant, &user.name, true, &actor)
            .await?;
    }
    Ok(Json(UserAnswer {
        user,
        global: Some(request.global),
    }))
}

async fn set_disabled(
    state: AppState,
    access: Access<Administer>,
    name: String,
    disabled: bool,
) -> ApiResult<Json<UserAnswer>> {
    if !access.global {
        // A global admin is not the tenant admin's to see or change.
        let users = state.store().list_users(&access.tenant).await?;
        if users.iter().any(|user| user.name == name && user.global) {
            return Err(ApiError::NotFound(format!("user '{name}' not found")));
        }
    }
    // A session's user may not lock themselves out; a token is no user, whatever its name.
    let own_session = matches!(access.credential, Credential::Session(_));
    if disabled && own_session && name == access.name && access.tenant == access.home_tenant {
        return Err(ApiError::Refused("you cannot disable yourself".to_owned()));
    }
    let user = state
        .store()
        .set_user_disabled(&access.tenant, &name, disabled, &access.actor())
        .await?;
    // Open streams of a disabled user end now.
    state.changes().principals_changed();
    Ok(Json(UserAnswer { user, global: None }))
}

async fn disable_user(
    State(state): State<AppState>,
    access: Access<Administer>,
    PathParams(name): PathParams<String>,
) -> ApiResult<Json<UserAnswer>> {
    set_disabled(state, access, name, true).await
}

async fn enable_user(
    State(state): State<AppState>,
    access: Access<Administer>,
    PathParams(name): PathParams<String>,
) -> ApiResult<Json<UserAnswer>> {
    set_disabled(state, access, name, false).await
}

async fn list_tokens(
    State(state): State<AppState>,
    access: Access<Administer>,
) -> ApiResult<Json<TokenList>> {
    let mut tokens = state.store().list_tokens(&access.tenant).await?;
    tokens.retain(|token| access.global || !token.global);
    Ok(Json(TokenList { tokens }))
}

#[derive(Deserialize)]
struct TokenRequest {
    name: String,
    role: String,
    #[serde(default)]
    global: bool,
    /// RFC 3339 time, or days from now.
    #[serde(default)]
    expires_at: Option<String>,
    /// Signed and wide so that any integer reaches [`token_expiry`] and gets its message.
    #[serde(default)]
    expires_in_days: Option<i64>,
}

/// The longest lifetime a token may be given (days).
pub const MAX_TOKEN_DAYS: i64 = 36_500;

/// When a new token stops working: `expires_at` (RFC 3339, in the future) or
/// `expires_in_days` (1 to [`MAX_TOKEN_DAYS`]) from `now`, not both; `None` for never.
fn token_expiry(
    at: Option<&str>,
    days: Option<i64>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
    let expires = match (at, days) {
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "give expires_at or expires_in_days, not both".to_owned(),
            ));
        }
        (Some(at), None) => chrono::DateTime::parse_from_rfc3339(at)
            .map_err(|e| ApiError::BadRequest(format!("invalid expires_at '{at}': {e}")))?
            .with_timezone(&chrono::Utc),
        (None, Some(days)) => {
            if !(1..=MAX_TOKEN_DAYS).contains(&days) {
                return Err(ApiError::BadRequest(format!(
                    "expires_in_days must be 1 to {MAX_TOKEN_DAYS}, not {days}"
                )));
            }
            chrono::TimeDelta::try_days(days)
                .and_then(|lifetime| now.checked_add_signed(lifetime))
                .ok_or_else(|| {
                    ApiError::BadRequest(format!("expires_in_days {days} is out of range"))
                })?
        }
        (None, None) => return Ok(None),
    };
    if expires <= now {
        return Err(ApiError::BadRequest(format!(
            "expires_at {} is in the past",
            expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )));
    }
    Ok(Some(expires))
}

async fn create_token(
    State(state): State<AppState>,
    access: Access<Administer>,
    JsonBody(request): JsonBody<TokenRequest>,
) -> ApiResult<Json<TokenAnswer>> {
    let role = role(&request.role)?;
    if request.global && !access.global {
        return Err(ApiError::Forbidden(
            "only a global admin may create a global token".to_owned(),
        ));
    }
    let expires_at = token_expiry(
        request.expires_at.as_deref(),
        request.expires_in_days,
        chrono::Utc::now(),
    )?;
    let secret = crate::auth::new_token_secret()?;
    let hash = crate::auth::token_hash(&secret);
    let token = state
        .store()
        .create_token(
            &NewToken {
                tenant: &access.tenant,
                name: &request.name,
                role,
                global: request.global,
                secret_hash: &hash,
                expires_at,
            },
            &access.actor(),
        )
        .await?;
    Ok(Json(TokenAnswer {
        token,
        secret: Some(secret),
    }))
}

async fn revoke_token(
    State(state): State<AppState>,
    access: Access<Administer>,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<TokenAnswer>> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::NotFound(format!("token {id} not found")))?;
    if !access.global {
        // A global token is not the tenant admin's to see or revoke.
        let tokens = state.store().list_tokens(&access.tenant).await?;
        if tokens.iter().any(|token| token.id == id && token.global) {
            return Err(ApiError::NotFound(format!("token {id} not found")));
        }
    }
    let token = state
        .store()
        .revoke_token(&access.tenant, id, &access.actor())
        .await?;
    // Open streams of the revoked token end now.
    state.changes().principals_changed();
    Ok(Json(TokenAnswer {
        token,
        secret: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_expiry_is_bounded_and_in_the_future() {
        let now = chrono::Utc::now();
        let in_days = |days| token_expiry(None, Some(days), now).map_err(|e| e.to_string());
        assert_eq!(
            in_days(30).ok().flatten(),
            Some(now + chrono::TimeDelta::days(30))
        );
        for days in [0, MAX_TOKEN_DAYS + 1, i64::MAX, -1, i64::MIN] {
            let error = in_days(days).err().unwrap_or_default();
            assert!(
                error.contains("expires_in_days must be 1 to"),
                "{days}: {error}"
            );
        }
        let past = token_expiry(Some("2020-01-01T00:00:00Z"), None, now);
        assert!(matches!(past, Err(ApiError::BadRequest(ref m)) if m.contains("in the past")));
        let garbage = token_expiry(Some("soon"), None, now);
        assert!(matches!(garbage, Err(ApiError::BadRequest(_))));
        let both = token_expiry(Some("2999-01-01T00:00:00Z"), Some(3), now);
        assert!(matches!(both, Err(ApiError::BadRequest(_))));
        assert!(matches!(token_expiry(None, None, now), Ok(None)));
    }
}
