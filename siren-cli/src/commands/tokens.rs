//! `siren tokens create|list|revoke`: bearer API tokens for scripts and agents, each bound to
//! a role and the tenant (`--tenant`). The secret is printed once, at creation; only a hash of
//! it is stored.

use serde_json::json;
use siren_core::store::{ApiToken, NewToken};
use siren_core::user::Role;

use crate::Context;
use crate::exit::{CommandResult, Exit, Failure};
use crate::output::Rows;

/// `siren tokens` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum TokensCommand {
    /// Create a token and print its secret (shown this once).
    Create {
        /// admin, analyst, viewer or agent.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// What the token is for (e.g. the agent's host).
        #[arg(long, default_value = "api token")]
        name: String,
        /// When it stops working: RFC 3339, a date, or a lifetime from now (90d, 12h).
        #[arg(long, value_name = "WHEN")]
        expires: Option<String>,
        /// An admin token that may work on every tenant (X-Siren-Tenant picks one).
        #[arg(long)]
        global: bool,
    },
    /// List the tenant's tokens (never their secrets).
    List,
    /// Revoke a token: it stops working at once.
    Revoke {
        /// The token's id (see `siren tokens list`).
        id: i64,
    },
}

fn parse_role(text: &str) -> Result<Role, String> {
    Role::parse(text)
        .ok_or_else(|| format!("unknown role '{text}': use admin, analyst, viewer or agent"))
}

/// `--expires`: a time, or a lifetime from now (`90d`).
fn parse_expiry(
    text: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<chrono::DateTime<chrono::Utc>, String> {
    let text = text.trim();
    let lifetime = text.starts_with(|c: char| c.is_ascii_digit())
        && text.ends_with(|c: char| "smhdw".contains(c));
    let time = crate::time_arg::parse_time(text, now)?;
    if !lifetime {
        return Ok(time);
    }
    // `parse_time` reads an age backwards from now; a lifetime goes forwards.
    let max = siren_server::admin::MAX_TOKEN_DAYS;
    let span = now - time;
    if span > chrono::TimeDelta::days(max) {
        return Err(format!(
            "--expires {text} is too long: a token lives {max} days at most"
        ));
    }
    now.checked_add_signed(span)
        .ok_or_else(|| format!("--expires {text} is out of range"))
}

fn token_row(token: &ApiToken) -> serde_json::Value {
    let time =
        |t: &chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    json!({"id": token.id, "name": token.name, "role": token.role.as_str(), "tenant": token.tenant,
           "global": token.global, "created_by": token.created_by, "created_at": time(&token.created_at),
           "expires_at": token.expires_at.as_ref().map(time), "revoked_at": token.revoked_at.as_ref().map(time)})
}

/// Runs `siren tokens …`.
pub async fn run(context: &Context, command: TokensCommand) -> CommandResult {
    let store = super::open_store(context).await?;
    let tenant = &context.tenant;
    let actor = super::cli_actor();
    let refused = super::refused_is_finding;
    let io = |e: std::io::Error| Failure::new(Exit::Software, e);
    let columns = vec![
        "id",
        "name",
        "role",
        "global",
        "created_at",
        "expires_at",
        "revoked_at",
    ];
    match command {
        TokensCommand::Create {
            role,
            name,
            expires,
            global,
        } => {
            let usage = |m: String| Failure::new(Exit::Usage, anyhow::anyhow!(m));
            if global && role != Role::Admin {
                return Err(usage("--global is for admin tokens only".to_owned()));
            }
            let now = chrono::Utc::now();
            let expires_at = expires
                .as_deref()
                .map(|e| parse_expiry(e, now))
                .transpose()
                .map_err(usage)?;
            if expires_at.is_some_and(|t| t <= now) {
                return Err(usage("--expires is in the past".to_owned()));
            }
            let secret = siren_server::auth::new_token_secret()
                .map_err(|e| Failure::new(Exit::Software, anyhow::anyhow!(e.to_string())))?;
            let hash = siren_server::auth::token_hash(&secret);
            let token = store
                .create_token(
                    &NewToken {
                        tenant,
                        name: &name,
                        role,
                        global,
                        secret_hash: &hash,
                        expires_at,
                    },
                    &actor,
                )
                .await
                .map_err(refused)?;
            let mut row = token_row(&token);
            row["secret"] = json!(secret);
            let mut columns = columns;
            columns.push("secret");
            context
                .printer
                .rows(&Rows {
                    columns,
                    rows: vec![row],
                })
                .map_err(io)?;
            context
                .printer
                .note("the secret is shown only now: store it where the script or agent reads it");
        }
        TokensCommand::List => {
            let tokens = store.list_tokens(tenant).await.map_err(refused)?;
            let rows = tokens.iter().map(token_row).collect();
            context.printer.rows(&Rows { columns, rows }).map_err(io)?;
        }
        TokensCommand::Revoke { id } => {
            let token = store
                .revoke_token(tenant, id, &actor)
                .await
                .map_err(refused)?;
            context
                .printer
                .rows(&Rows {
                    columns,
                    rows: vec![token_row(&token)],
                })
                .map_err(io)?;
        }
    }
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_a_lifetime_or_a_time() {
        let now = chrono::Utc::now();
        let in_90_days = parse_expiry("90d", now).unwrap();
        assert_eq!((in_90_days - now).num_days(), 90);
        assert!(parse_expiry("2030-01-01", now).is_ok());
        assert!(parse_expiry("soon", now).is_err());
        // Ages that reach back to chrono's earliest year cannot overflow forwards.
        for long in ["36501d", "95700000d", "99999999999999d"] {
            assert!(parse_expiry(long, now).is_err(), "{long}");
        }
        assert!(parse_expiry("36500d", now).is_ok());
    }
}
