//! Authentication and authorisation: who is calling (a browser session or a bearer API token),
//! on which tenant, and whether their role allows the route.
//!
//! Invariants:
//! - secrets (session cookies, API tokens) are 256-bit random values; only a BLAKE3
//!   derived-key hash of each is stored, so the database never holds a usable credential;
//!   passwords are argon2id hashes;
//! - the CSRF token is a keyed hash of the session secret: it is only known to whoever holds
//!   the cookie's value (the page, through `/auth/me`), and every state-changing request
//!   authenticated by the cookie must echo it in `X-CSRF-Token`;
//! - every handler takes an [`Access`] extractor naming what it needs ([`Read`],
//!   [`ChangeIncidents`], [`SendEvents`], [`Heartbeat`], [`Administer`]); its tenant is the
//!   caller's own, unless the caller is a global admin naming another with `X-Siren-Tenant`
//!   (or `?tenant=`);
//! - a session is looked up together with its user: disabling a user ends their sessions;
//! - a long-lived response (the live stream) checks its caller again with [`still_valid`]
//!   while it lasts, so a revoked, expired or changed credential ends it.

use std::marker::PhantomData;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde::Deserialize;
use siren_core::TenantId;
use siren_core::api::{Me, MeUser};
use siren_core::user::{Actor, Role};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::ratelimit::Lockout;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "siren_session";
/// The header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The header a global admin names the tenant with.
pub const TENANT_HEADER: &str = "x-siren-tenant";
/// API tokens start with this, so they are recognisable in logs and secret scanners.
pub const TOKEN_PREFIX: &str = "siren_";

/// A fresh 256-bit secret, base64url without padding.
pub fn new_secret() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::Internal(format!("no randomness: {e}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// A new API token's secret (`siren_…`), shown once.
pub fn new_token_secret() -> Result<String, ApiError> {
    Ok(format!("{TOKEN_PREFIX}{}", new_secret()?))
}

/// The stored hash of an API token's secret.
pub fn token_hash(secret: &str) -> Vec<u8> {
    let mut hasher = blake3::Hasher::new_derive_key("siren 2026 api token");
    hasher.update(secret.as_bytes());
    hasher.finalize().as_bytes().to_vec()
}

/// The stored hash of a session's secret.
pub fn session_hash(secret: &str) -> Vec<u8> {
    let mut hasher = blake3::Hasher::new_derive_key("siren 2026 session");
    hasher.update(secret.as_bytes());
    hasher.finalize().as_bytes().to_vec()
}

/// The CSRF token of a session: a keyed hash of its secret.
pub fn csrf_token(session_secret: &str) -> String {
    let mut hasher = blake3::Hasher::new_derive_key("siren 2026 csrf");
    hasher.update(session_secret.as_bytes());
    hasher.finalize().to_hex().to_string()
}

/// How the caller authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A browser session (the cookie's secret, to derive the CSRF token and to log out).
    Session(String),
    /// A bearer API token.
    Token(i64),
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// User or token name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// The caller's own tenant.
    pub home_tenant: TenantId,
    /// The tenant this request works on.
    pub tenant: TenantId,
    /// A global admin may name any tenant.
    pub global: bool,
    /// Session or token.
    pub credential: Credential,
    /// The client's address.
    pub origin: String,
}

impl Principal {
    /// Who to record in timelines and the audit log.
    pub fn actor(&self) -> Actor {
        let name = match self.credential {
            Credential::Session(_) => self.name.clone(),
            Credential::Token(id) => format!("token:{id}:{}", self.name),
        };
        Actor {
            name,
            origin: format!("api@{}", self.origin),
        }
    }

    /// The JSON body of `/auth/login` and `/auth/me`.
    pub fn me(&self) -> Me {
        let csrf_token = match &self.credential {
            Credential::Session(secret) => Some(csrf_token(secret)),
            Credential::Token(_) => None,
        };
        Me {
            user: MeUser {
                name: self.name.clone(),
                role: self.role.as_str().to_owned(),
                tenant: self.home_tenant.as_str().to_owned(),
                global: self.global,
            },
            tenant: self.tenant.as_str().to_owned(),
            csrf_token,
        }
    }
}

/// What a route needs of the caller's role.
pub trait Requirement: Send + Sync + 'static {
    /// Whether `role` may use the route.
    fn allows(role: Role) -> bool;
}

/// Reading incidents, events, rules, stats, agents, the stream: admin, analyst, viewer.
pub struct Read;
/// Changing incidents: admin, analyst.
pub struct ChangeIncidents;
/// Sending events: admin, analyst, agent.
pub struct SendEvents;
/// Agent heartbeats: agent, admin.
pub struct Heartbeat;
/// Users and tokens: admin.
pub struct Administer;
/// Any authenticated caller (`/auth/me`, `/auth/logout`).
pub struct Anyone;

impl Requirement for Read {
    fn allows(role: Role) -> bool {
        role.can_read()
    }
}
impl Requirement for ChangeIncidents {
    fn allows(role: Role) -> bool {
        role.can_work_incidents()
    }
}
impl Requirement for SendEvents {
    fn allows(role: Role) -> bool {
        role.can_send_events()
    }
}
impl Requirement for Heartbeat {
    fn allows(role: Role) -> bool {
        matches!(role, Role::Agent | Role::Admin)
    }
}
impl Requirement for Administer {
    fn allows(role: Role) -> bool {
        role == Role::Admin
    }
}
impl Requirement for Anyone {
    fn allows(_: Role) -> bool {
        true
    }
}

/// An authenticated caller whose role meets `R`, with the tenant of the request.
pub struct Access<R: Requirement>(pub Principal, PhantomData<R>);

impl<R: Requirement> std::ops::Deref for Access<R> {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.0
    }
}

impl<R: Requirement> FromRequestParts<AppState> for Access<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = authenticate(parts, state).await?;
        if !R::allows(principal.role) {
            return Err(ApiError::Forbidden(format!(
                "the {} role may not do this",
                principal.role.as_str()
            )));
        }
        Ok(Access(principal, PhantomData))
    }
}

/// The client's address, when the server knows it.
pub fn client_addr(parts: &Parts) -> String {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The session cookie's value, if the request carries one.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == SESSION_COOKIE)
        .map(|c| c.value().to_owned())
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn requested_tenant(parts: &Parts) -> Result<Option<TenantId>, ApiError> {
    let from_header = parts
        .headers
        .get(TENANT_HEADER)
        .map(|v| v.to_str().unwrap_or("\u{0}").to_owned());
    let from_query = parts.uri.query().and_then(|q| {
        q.split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == "tenant")
            .map(|(_, v)| v.to_owned())
    });
    from_header
        .or(from_query)
        .map(|name| TenantId::parse(&name).map_err(|e| ApiError::BadRequest(e.to_string())))
        .transpose()
}

/// Whom a request's credentials name, as the store has them now.
struct Identity {
    name: String,
    role: Role,
    home: TenantId,
    /// A global admin (an admin whose user or token is global).
    global: bool,
    credential: Credential,
}

/// Looks up the bearer token or session cookie of `headers`: 401 when there is none, or it
/// is unknown, revoked, expired, or its user is disabled.
async fn identify(headers: &HeaderMap, state: &AppState) -> Result<Identity, ApiError> {
    let store = state.store();
    let now = chrono::Utc::now();
    let unauthorized = || ApiError::Unauthorized("authentication required".to_owned());
    let (name, role, home, global, credential) = if let Some(secret) = bearer(headers) {
        let token = store
            .token_by_hash(&token_hash(secret), now)
            .await?
            .ok_or_else(|| ApiError::Unauthorized("invalid or expired API token".to_owned()))?;
        let home = TenantId::parse(&token.tenant).map_err(|e| ApiError::Internal(e.to_string()))?;
        (
            token.name,
            token.role,
            home,
            token.global,
            Credential::Token(token.id),
        )
    } else if let Some(secret) = session_cookie(headers) {
        let session = store
            .session(&session_hash(&secret), now)
            .await?
            .ok_or_else(|| ApiError::Unauthorized("session expired; log in again".to_owned()))?;
        let home =
            TenantId::parse(&session.tenant).map_err(|e| ApiError::Internal(e.to_string()))?;
        (
            session.user,
            session.role,
            home,
            session.global,
            Credential::Session(secret),
        )
    } else {
        return Err(unauthorized());
    };
    Ok(Identity {
        name,
        role,
        home,
        global: global && role == Role::Admin,
        credential,
    })
}

/// Whether `principal`'s credential, sent again as `headers`, still names the same caller
/// with the same role and reach: false once it is revoked, expired, logged out, its user
/// disabled, or its role or global standing changed.
pub async fn still_valid(
    principal: &Principal,
    headers: &HeaderMap,
    state: &AppState,
) -> Result<bool, ApiError> {
    match identify(headers, state).await {
        Ok(now) => Ok(now.name == principal.name
            && now.role == principal.role
            && now.home == principal.home_tenant
            && now.global == principal.global
            && now.credential == principal.credential
            && (principal.tenant == principal.home_tenant || now.global)),
        Err(ApiError::Unauthorized(_)) => Ok(false),
        Err(error) => Err(error),
    }
}

async fn authenticate(parts: &Parts, state: &AppState) -> Result<Principal, ApiError> {
    let origin = client_addr(parts);
    let Identity {
        name,
        role,
        home,
        global,
        credential,
    } = identify(&parts.headers, state).await?;
    if let Credential::Session(secret) = &credential
        && changes_state(&parts.method)
    {
        let sent = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let expected = csrf_token(secret);
        // Constant-time comparison of the two digests.
        let same = blake3::hash(sent.as_bytes()) == blake3::hash(expected.as_bytes());
        if !same {
            return Err(ApiError::Forbidden(
                "missing or wrong X-CSRF-Token header".to_owned(),
            ));
        }
    }
    let tenant = match requested_tenant(parts)? {
        Some(tenant) if tenant != home => {
            if !global {
                return Err(ApiError::Forbidden(format!(
                    "not allowed on tenant '{tenant}'"
                )));
            }
            tenant
        }
        _ => home.clone(),
    };
    Ok(Principal {
        name,
        role,
        home_tenant: home,
        tenant,
        global,
        credential,
        origin,
    })
}

/// `/api/v1/auth/…`: login, logout, who am I.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/auth/me", get(me))
}

#[derive(Deserialize)]
struct LoginRequest {
    username: String,
    password: String,
    #[serde(default)]
    tenant: Option<String>,
}

/// Writes the login limits a failure has just reached to the tenant's audit log (those of a
/// user only when the user exists, so guessed names do not fill the log).
async fn audit_lockouts(
    state: &AppState,
    tenant: &TenantId,
    user: &str,
    ip: &str,
    known_user: bool,
    reached: &[Lockout],
) {
    let config = state.config();
    let window = config.login_window_seconds;
    let actor = Actor {
        name: "siren-server".to_owned(),
        origin: format!("api@{ip}"),
    };
    for lockout in reached {
        let (action, object, detail) = match lockout {
            Lockout::UserFromAddress if known_user => (
                "login.lockout",
                format!("user:{user}"),
                format!(
                    "{} failed logins from {ip} within {window} s: that address may not log in as '{user}' until they age out",
                    config.login_failures_per_user
                ),
            ),
            Lockout::UserSlowed if known_user => (
                "login.slowdown",
                format!("user:{user}"),
                format!(
                    "{} failed logins within {window} s: logins as '{user}' from addresses it has not used are slowed",
                    config.login_failures_per_user
                ),
            ),
            Lockout::Address => (
                "login.lockout",
                format!("address:{ip}"),
                format!(
                    "{} failed logins from {ip} within {window} s: that address may not log in until they age out",
                    config.login_failures_per_ip
                ),
            ),
            Lockout::UserFromAddress | Lockout::UserSlowed => continue,
        };
        tracing::warn!(%tenant, %object, %detail, "{action}");
        if let Err(error) = state
            .store()
            .record_audit(tenant, &actor, action, &object, &detail)
            .await
        {
            tracing::warn!(%error, "cannot audit a login lockout");
        }
    }
}

/// A hash to verify against when the user does not exist, so both cases take as long.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        siren_core::user::hash_password("decoy password never used").unwrap_or_default()
    })
}

async fn login(
    State(state): State<AppState>,
    ConnectInfoOpt(addr): ConnectInfoOpt,
    JsonBody(request): JsonBody<LoginRequest>,
) -> ApiResult<Response> {
    let tenant = TenantId::parse(request.tenant.as_deref().unwrap_or(TenantId::DEFAULT))
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let ip = addr.map_or_else(|| "unknown".to_owned(), |a| a.ip().to_string());
    let user_key = format!("{}/{}", tenant, request.username.to_lowercase());
    let limiter = state.login_limiter();
    let wait = limiter.admit(&user_key, &ip).map_err(ApiError::TooMany)?;
    if !wait.is_zero() {
        // This user failed too often from elsewhere: attempts from addresses new to them
        // take turns.
        tokio::time::sleep(wait).await;
    }
    let record = state
        .store()
        .login_record(&tenant, &request.username)
        .await?;
    let hash = record
        .as_ref()
        .map_or_else(|| decoy_hash().to_owned(), |r| r.password_hash.clone());
    let password = request.password;
    let verified =
        tokio::task::spawn_blocking(move || siren_core::user::verify_password(&password, &hash))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
    let record = match record {
        Some(record) if verified && record.role.is_for_people() => record,
        _ => {
            let reached = limiter.failure(&user_key, &ip);
            tracing::warn!(user = %request.username, tenant = %tenant, ip = %ip, "login failed");
            let known_user = record.is_some();
            audit_lockouts(
                &state,
                &tenant,
                &request.username,
                &ip,
                known_user,
                &reached,
            )
            .await;
            return Err(ApiError::Unauthorized(
                "invalid user name or password".to_owned(),
            ));
        }
    };
    limiter.success(&user_key, &ip);
    let secret = new_secret()?;
    let lifetime = state.config().session_lifetime();
    let expires = chrono::TimeDelta::from_std(lifetime)
        .ok()
        .and_then(|lifetime| chrono::Utc::now().checked_add_signed(lifetime))
        .ok_or_else(|| ApiError::Internal(format!("session lifetime {lifetime:?} out of range")))?;
    state
        .store()
        .create_session(&session_hash(&secret), &tenant, &record.name, expires)
        .await?;
    tracing::info!(user = %record.name, tenant = %tenant, ip = %ip, "logged in");
    let principal = Principal {
        name: record.name,
        role: record.role,
        home_tenant: tenant.clone(),
        tenant,
        global: record.global && record.role == Role::Admin,
        credential: Credential::Session(secret.clone()),
        origin: ip,
    };
    let cookie = cookie::Cookie::build((SESSION_COOKIE, secret))
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .path("/")
        .secure(state.secure_cookies())
        .max_age(cookie::time::Duration::seconds(lifetime.as_secs() as i64))
        .build();
    let mut response = Json(principal.me()).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

async fn logout(State(state): State<AppState>, access: Access<Anyone>) -> ApiResult<Response> {
    if let Credential::Session(secret) = &access.credential {
        state.store().delete_session(&session_hash(secret)).await?;
        state.changes().principals_changed();
    }
    let cookie = cookie::Cookie::build((SESSION_COOKIE, ""))
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .path("/")
        .secure(state.secure_cookies())
        .max_age(cookie::time::Duration::ZERO)
        .build();
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

async fn me(access: Access<Anyone>) -> Json<Me> {
    Json(access.me())
}

/// The client's address when the server was started with connection info (absent in
/// `oneshot` tests).
pub struct ConnectInfoOpt(pub Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ConnectInfoOpt {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ConnectInfoOpt(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_domain_separated_and_csrf_is_bound_to_the_session() {
        let secret = "abc";
        assert_ne!(token_hash(secret), session_hash(secret));
        assert_ne!(csrf_token("a"), csrf_token("b"));
        assert_eq!(csrf_token("a"), csrf_token("a"));
        let s1 = new_secret().unwrap_or_default();
        let s2 = new_secret().unwrap_or_default();
        assert_eq!(s1.len(), 43);
        assert_ne!(s1, s2);
    }
}
