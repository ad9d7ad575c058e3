//! [`AuthStore`] for [`SqlStore`]: users, browser sessions and API tokens. People's changes
//! are audited in their transactions; disabling a user ends the user's sessions.

use chrono::{DateTime, Utc};
use sqlx::{Executor, Row};

use super::records;
use super::rows::{parse_role, time};
use super::{Backend, RowsAffected, SqlStore};
use crate::event::TenantId;
use crate::store::{ApiToken, AuthStore, LoginRecord, NewToken, SessionRecord, StoreError};
use crate::user::{Actor, Role, User, valid_user_name};

const INSERT_USER: &str = "INSERT INTO users (tenant, name, role, password_hash, disabled, created_at) \
    VALUES ($1, $2, $3, $4, 0, $5)";
const USERS: &str = "SELECT name, role, disabled, is_global, created_at FROM users \
    WHERE tenant = $1 ORDER BY name";
const USER: &str = "SELECT name, role, disabled, is_global, created_at FROM users \
    WHERE tenant = $1 AND name = $2";
const USER_HASH: &str =
    "SELECT password_hash FROM users WHERE tenant = $1 AND name = $2 AND disabled = 0";
const SET_DISABLED: &str = "UPDATE users SET disabled = $1 WHERE tenant = $2 AND name = $3";
const DELETE_USER_SESSIONS: &str = "DELETE FROM sessions WHERE tenant = $1 AND user_name = $2";
const LOGIN: &str = "SELECT name, role, is_global, password_hash FROM users \
    WHERE tenant = $1 AND name = $2 AND disabled = 0";
const USER_ROLE: &str = "SELECT role FROM users WHERE tenant = $1 AND name = $2";
const SET_GLOBAL: &str = "UPDATE users SET is_global = $1 WHERE tenant = $2 AND name = $3";
const INSERT_SESSION: &str = "INSERT INTO sessions (id_hash, tenant, user_name, created_at, expires_at) \
    VALUES ($1, $2, $3, $4, $5)";
const SESSION: &str = "SELECT s.tenant, s.user_name, s.expires_at, u.role, u.is_global FROM sessions s \
    JOIN users u ON u.tenant = s.tenant AND u.name = s.user_name \
    WHERE s.id_hash = $1 AND s.expires_at > $2 AND u.disabled = 0";
const DELETE_SESSION: &str = "DELETE FROM sessions WHERE id_hash = $1";
const PURGE_SESSIONS: &str = "DELETE FROM sessions WHERE expires_at <= $1";
const INSERT_TOKEN: &str = "INSERT INTO api_tokens (tenant, name, role, is_global, secret_hash, \
    created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id";
const TOKEN_COLUMNS: &str =
    "id, tenant, name, role, is_global, created_by, created_at, expires_at, revoked_at";
const REVOKE_TOKEN: &str = "UPDATE api_tokens SET revoked_at = $1 WHERE tenant = $2 AND id = $3 \
    AND revoked_at IS NULL";

fn decode_user<B: Backend>(row: &B::Row, tenant: &str) -> Result<User, StoreError> {
    let role: String = row.try_get("role")?;
    let disabled: i64 = row.try_get("disabled")?;
    let global: i64 = row.try_get("is_global")?;
    Ok(User {
        name: row.try_get("name")?,
        tenant: tenant.to_owned(),
        role: parse_role(&role)?,
        disabled: disabled != 0,
        global: global != 0,
        created_at: time(row.try_get("created_at")?),
    })
}

/// One of `tenant`'s users, enabled or not.
pub(super) async fn fetch_user<'e, B: Backend>(
    executor: impl Executor<'e, Database = B>,
    tenant: &str,
    name: &str,
) -> Result<Option<User>, StoreError> {
    let row = sqlx::query(USER)
        .bind(tenant)
        .bind(name)
        .fetch_optional(executor)
        .await?;
    row.as_ref()
        .map(|row| decode_user::<B>(row, tenant))
        .transpose()
}

/// One of `tenant`'s users, which must exist.
async fn existing_user<'e, B: Backend>(
    executor: impl Executor<'e, Database = B>,
    tenant: &str,
    name: &str,
) -> Result<User, StoreError> {
    fetch_user(executor, tenant, name)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("user '{name}'")))
}

fn decode_token<B: Backend>(row: &B::Row) -> Result<ApiToken, StoreError> {
    let role: String = row.try_get("role")?;
    let global: i64 = row.try_get("is_global")?;
    let expires: Option<i64> = row.try_get("expires_at")?;
    let revoked: Option<i64> = row.try_get("revoked_at")?;
    Ok(ApiToken {
        id: row.try_get("id")?,
        tenant: row.try_get("tenant")?,
        name: row.try_get("name")?,
        role: parse_role(&role)?,
        global: global != 0,
        created_by: row.try_get("created_by")?,
        created_at: time(row.try_get("created_at")?),
        expires_at: expires.map(time),
        revoked_at: revoked.map(time),
    })
}

/// One of `tenant`'s tokens, revoked or not, which must exist.
async fn fetch_token<'e, B: Backend>(
    executor: impl Executor<'e, Database = B>,
    tenant: &str,
    id: i64,
) -> Result<ApiToken, StoreError> {
    let select = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE tenant = $1 AND id = $2");
    let row = sqlx::query(&select)
        .bind(tenant)
        .bind(id)
        .fetch_optional(executor)
        .await?;
    match row {
        Some(row) => decode_token::<B>(&row),
        None => Err(StoreError::NotFound(format!("token {id}"))),
    }
}

#[async_trait::async_trait]
impl<B: Backend> AuthStore for SqlStore<B> {
    async fn add_user(
        &self,
        tenant: &TenantId,
        name: &str,
        role: Role,
        password_hash: &str,
        actor: &Actor,
    ) -> Result<User, StoreError> {
        if !role.is_for_people() {
            return Err(StoreError::Refused(format!(
                "role '{}' is for API tokens, not users",
                role.as_str()
            )));
        }
        if !valid_user_name(name) {
            return Err(StoreError::Refused(format!(
                "invalid user name '{name}': use 1 to 64 letters, digits, '.', '_', '-', '@'"
            )));
        }
        let tenant = tenant.as_str();
        let now = Utc::now().timestamp_micros();
        let mut tx = self.writer.begin().await?;
        if fetch_user(&mut *tx, tenant, name).await?.is_some() {
            return Err(StoreError::Refused(format!("user '{name}' already exists")));
        }
        sqlx::query(INSERT_USER)
            .bind(tenant)
            .bind(name)
            .bind(role.as_str())
            .bind(password_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let object = format!("user:{name}");
        let detail = format!("role {}", role.as_str());
        records::audit(&mut *tx, tenant, now, actor, ("user.add", &object, &detail)).await?;
        let user = existing_user(&mut *tx, tenant, name).await?;
        tx.commit().await?;
        Ok(user)
    }

    async fn list_users(&self, tenant: &TenantId) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query(USERS)
            .bind(tenant.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| decode_user::<B>(row, tenant.as_str()))
            .collect()
    }

    async fn set_user_disabled(
        &self,
        tenant: &TenantId,
        name: &str,
        disabled: bool,
        actor: &Actor,
    ) -> Result<User, StoreError> {
        let tenant = tenant.as_str();
        let now = Utc::now().timestamp_micros();
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query(SET_DISABLED)
            .bind(i64::from(disabled))
            .bind(tenant)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("user '{name}'")));
        }
        // Disabling ends the user's sessions for good: enabling them again does not bring
        // an old cookie back.
        let ended = if disabled {
            sqlx::query(DELETE_USER_SESSIONS)
                .bind(tenant)
                .bind(name)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        } else {
            0
        };
        let object = format!("user:{name}");
        let detail = if disabled {
            format!("{ended} session(s) ended")
        } else {
            String::new()
        };
        let action = if disabled {
            "user.disable"
        } else {
            "user.enable"
        };
        records::audit(&mut *tx, tenant, now, actor, (action, &object, &detail)).await?;
        let user = existing_user(&mut *tx, tenant, name).await?;
        tx.commit().await?;
        Ok(user)
    }

    async fn set_user_global(
        &self,
        tenant: &TenantId,
        name: &str,
        global: bool,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        let tenant = tenant.as_str();
        let now = Utc::now().timestamp_micros();
        let mut tx = self.writer.begin().await?;
        let role: Option<String> = sqlx::query_scalar(USER_ROLE)
            .bind(tenant)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        match role.as_deref().map(parse_role).transpose()? {
            None => return Err(StoreError::NotFound(format!("user '{name}'"))),
            Some(role) if global && role != Role::Admin => {
                return Err(StoreError::Refused(format!(
                    "only an admin can be global; '{name}' is {}",
                    role.as_str()
                )));
            }
            Some(_) => {}
        }
        sqlx::query(SET_GLOBAL)
            .bind(i64::from(global))
            .bind(tenant)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let object = format!("user:{name}");
        records::audit(
            &mut *tx,
            tenant,
            now,
            actor,
            (
                if global { "user.global" } else { "user.local" },
                object.as_str(),
                "",
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn password_hash(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(USER_HASH)
            .bind(tenant.as_str())
            .bind(name)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn login_record(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Option<LoginRecord>, StoreError> {
        let row = sqlx::query(LOGIN)
            .bind(tenant.as_str())
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            let role: String = row.try_get("role")?;
            let global: i64 = row.try_get("is_global")?;
            Ok(LoginRecord {
                name: row.try_get("name")?,
                tenant: tenant.as_str().to_owned(),
                role: parse_role(&role)?,
                global: global != 0,
                password_hash: row.try_get("password_hash")?,
            })
        })
        .transpose()
    }

    async fn create_session(
        &self,
        id_hash: &[u8],
        tenant: &TenantId,
        user: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now = Utc::now().timestamp_micros();
        sqlx::query(INSERT_SESSION)
            .bind(id_hash)
            .bind(tenant.as_str())
            .bind(user)
            .bind(now)
            .bind(expires_at.timestamp_micros())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn session(
        &self,
        id_hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(SESSION)
            .bind(id_hash)
            .bind(now.timestamp_micros())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            let role: String = row.try_get("role")?;
            let global: i64 = row.try_get("is_global")?;
            Ok(SessionRecord {
                tenant: row.try_get("tenant")?,
                user: row.try_get("user_name")?,
                role: parse_role(&role)?,
                global: global != 0,
                expires_at: time(row.try_get("expires_at")?),
            })
        })
        .transpose()
    }

    async fn delete_session(&self, id_hash: &[u8]) -> Result<(), StoreError> {
        sqlx::query(DELETE_SESSION)
            .bind(id_hash)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn purge_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query(PURGE_SESSIONS)
            .bind(now.timestamp_micros())
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }

    async fn create_token(
        &self,
        token: &NewToken<'_>,
        actor: &Actor,
    ) -> Result<ApiToken, StoreError> {
        if token.global && token.role != Role::Admin {
            return Err(StoreError::Refused(
                "only an admin token can be global".to_owned(),
            ));
        }
        let name = token.name.trim();
        if name.is_empty() || name.len() > 200 {
            return Err(StoreError::Refused(
                "a token needs a name of 1 to 200 characters".to_owned(),
            ));
        }
        let now = Utc::now().timestamp_micros();
        let tenant = token.tenant.as_str();
        let mut tx = self.writer.begin().await?;
        let id: i64 = sqlx::query_scalar(INSERT_TOKEN)
            .bind(tenant)
            .bind(name)
            .bind(token.role.as_str())
            .bind(i64::from(token.global))
            .bind(token.secret_hash)
            .bind(actor.name.as_str())
            .bind(now)
            .bind(token.expires_at.map(|t| t.timestamp_micros()))
            .fetch_one(&mut *tx)
            .await?;
        let object = format!("token:{id}");
        let detail = format!(
            "{name} (role {}{})",
            token.role.as_str(),
            if token.global { ", global" } else { "" }
        );
        records::audit(
            &mut *tx,
            tenant,
            now,
            actor,
            ("token.create", &object, &detail),
        )
        .await?;
        let created = fetch_token(&mut *tx, tenant, id).await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn list_tokens(&self, tenant: &TenantId) -> Result<Vec<ApiToken>, StoreError> {
        let select =
            format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE tenant = $1 ORDER BY id");
        let rows = sqlx::query(&select)
            .bind(tenant.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode_token::<B>).collect()
    }

    async fn revoke_token(
        &self,
        tenant: &TenantId,
        id: i64,
        actor: &Actor,
    ) -> Result<ApiToken, StoreError> {
        let tenant = tenant.as_str();
        let now = Utc::now().timestamp_micros();
        let mut tx = self.writer.begin().await?;
        let before = fetch_token(&mut *tx, tenant, id).await?;
        if before.revoked_at.is_none() {
            sqlx::query(REVOKE_TOKEN)
                .bind(now)
                .bind(tenant)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let object = format!("token:{id}");
            records::audit(
                &mut *tx,
                tenant,
                now,
                actor,
                ("token.revoke", object.as_str(), before.name.as_str()),
            )
            .await?;
        }
        let after = fetch_token(&mut *tx, tenant, id).await?;
        tx.commit().await?;
        Ok(after)
    }

    async fn token_by_hash(
        &self,
        secret_hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Option<ApiToken>, StoreError> {
        let select = format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE secret_hash = $1 AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > $2)"
        );
        let row = sqlx::query(&select)
            .bind(secret_hash)
            .bind(now.timestamp_micros())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(decode_token::<B>).transpose()
    }
}
