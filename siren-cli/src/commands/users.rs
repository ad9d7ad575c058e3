//! `siren users add|list|disable|enable`: the people who may log in to the dashboard and be
//! assigned incidents. Passwords are read from stdin or a prompt, never from the command line.

use std::io::{BufRead, IsTerminal};

use serde_json::json;
use siren_core::user::{Role, hash_password};

use crate::Context;
use crate::exit::{CommandResult, Exit, Failure};
use crate::output::Rows;

/// `siren users` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum UsersCommand {
    /// Add a user. The password is prompted for on a terminal, or read from stdin with
    /// --password-stdin (first line).
    Add {
        /// Login name.
        name: String,
        /// admin, analyst or viewer.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Read the password from the first line of stdin (for scripts).
        #[arg(long)]
        password_stdin: bool,
        /// A global admin: may work on every tenant (the server's X-Siren-Tenant header).
        #[arg(long)]
        global: bool,
    },
    /// List users.
    List,
    /// Disable a user: no more logins or assignments.
    Disable {
        /// Login name.
        name: String,
    },
    /// Enable a disabled user again.
    Enable {
        /// Login name.
        name: String,
    },
}

fn parse_role(text: &str) -> Result<Role, String> {
    Role::parse(text)
        .filter(|role| role.is_for_people())
        .ok_or_else(|| format!("unknown role '{text}': use admin, analyst or viewer"))
}

fn read_password(from_stdin: bool) -> Result<String, Failure> {
    let usage = |message: &str| Failure::new(Exit::Usage, anyhow::anyhow!(message.to_owned()));
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Failure::new(Exit::Software, e))?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")
            .map_err(|e| Failure::new(Exit::Software, e))?;
        let again =
            rpassword::prompt_password("Again: ").map_err(|e| Failure::new(Exit::Software, e))?;
        if first != again {
            return Err(usage("the passwords differ"));
        }
        first
    } else {
        return Err(usage(
            "no terminal to ask for the password: use --password-stdin",
        ));
    };
    if password.chars().count() < 12 {
        return Err(usage("the password must have at least 12 characters"));
    }
    Ok(password)
}

/// Runs `siren users …`.
pub async fn run(context: &Context, command: UsersCommand) -> CommandResult {
    let store = super::open_store(context).await?;
    let tenant = &context.tenant;
    let actor = super::cli_actor();
    let refused = super::refused_is_finding;
    let io = |e: std::io::Error| Failure::new(Exit::Software, e);
    let users = match command {
        UsersCommand::Add {
            name,
            role,
            password_stdin,
            global,
        } => {
            if global && role != Role::Admin {
                return Err(Failure::new(
                    Exit::Usage,
                    anyhow::anyhow!("--global is for admins only"),
                ));
            }
            let password = read_password(password_stdin)?;
            let hash = hash_password(&password)
                .map_err(|e| Failure::new(Exit::Software, anyhow::anyhow!(e)))?;
            let user = store
                .add_user(tenant, &name, role, &hash, &actor)
                .await
                .map_err(refused)?;
            if global {
                store
                    .set_user_global(tenant, &name, true, &actor)
                    .await
                    .map_err(refused)?;
            }
            vec![user]
        }
        UsersCommand::List => store.list_users(tenant).await.map_err(refused)?,
        UsersCommand::Disable { name } => vec![
            store
                .set_user_disabled(tenant, &name, true, &actor)
                .await
                .map_err(refused)?,
        ],
        UsersCommand::Enable { name } => vec![
            store
                .set_user_disabled(tenant, &name, false, &actor)
                .await
                .map_err(refused)?,
        ],
    };
    let rows = users
        .iter()
        .map(|u| {
            json!({"name": u.name, "role": u.role.as_str(), "disabled": u.disabled, "tenant": u.tenant,
                   "created_at": u.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)})
        })
        .collect();
    context
        .printer
        .rows(&Rows {
            columns: vec!["name", "role", "disabled", "created_at"],
            rows,
        })
        .map_err(io)?;
    Ok(Exit::Ok)
}
