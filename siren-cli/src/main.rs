//! The `siren` command: ingest, hunt, rules, incidents, reports — for analysts at a terminal
//! and for scripts and cron jobs (machine formats, exit codes, no prompts).

mod commands;
mod correlation_line;
mod exit;
mod output;
mod time_arg;
mod timeline;
mod write_behind;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use siren_server::config_file::{ConfigFile, resolve_secret};

use crate::exit::{CommandResult, EXIT_CODES_HELP, Exit, Failure};
use crate::output::{FormatFlag, OutputFormat, Printer};

/// mimalloc instead of the system allocator: reading and matching events allocates many small
/// strings from several threads at once.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns transparent huge pages off for this process. mimalloc asks for them on its arenas,
/// and every page it hands back to the system and takes again then costs a fresh 2 MiB
/// zeroed page.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    {
        // Failing (a kernel older than 3.15) only costs speed.
        let _ = nix::sys::prctl::set_thp_disable(true);
    }
}

/// SIREN turns raw security events into a short, prioritised list of incidents.
#[derive(Debug, Parser)]
#[command(name = "siren", version, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    /// Database URL: sqlite://PATH (default sqlite://siren.db) or postgres://USER@HOST/DB.
    #[arg(
        long,
        global = true,
        env = "SIREN_DATABASE_URL",
        hide_env_values = true
    )]
    db: Option<String>,
    /// Configuration file (default ./siren.yaml when present).
    #[arg(long, global = true, env = "SIREN_CONFIG")]
    config: Option<PathBuf>,
    /// Tenant whose data the command reads and writes.
    #[arg(long, global = true, env = "SIREN_TENANT")]
    tenant: Option<String>,
    /// Output format (html, md and pdf are for `report export`).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "table",
        env = "SIREN_FORMAT"
    )]
    format: FormatFlag,
    /// No progress bars, no warnings: only results and errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// More log output on stderr (-v, -vv).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Folder of the rule cache: rule files once parsed, matched by path, size and time, so
    /// that loading them again skips YAML parsing (default: $XDG_CACHE_HOME/siren, else
    /// ~/.cache/siren).
    #[arg(long, global = true, value_name = "DIR", env = "SIREN_RULE_CACHE")]
    rule_cache: Option<PathBuf>,
    /// Parse every rule file; neither read nor write the rule cache.
    #[arg(long, global = true)]
    no_rule_cache: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read events from files, folders or stdin (`-`) and store them.
    Ingest(commands::ingest::Args),
    /// Look at stored events.
    #[command(subcommand)]
    Events(commands::events::EventsCommand),
    /// Scan logs with Sigma rules, without a database: a detection timeline.
    Hunt(commands::hunt::Args),
    /// Validate, list and test Sigma rules.
    #[command(subcommand)]
    Rules(commands::rules::RulesCommand),
    /// Work incidents: list, show, assign, change status, add notes.
    #[command(subcommand)]
    Incidents(commands::incidents::IncidentsCommand),
    /// Try SIREN: a fresh database with sample attacks, an admin user, and the dashboard.
    Demo(commands::demo::Args),
    /// Manage the users who log in and are assigned incidents.
    #[command(subcommand)]
    Users(commands::users::UsersCommand),
    /// Run the server: REST API, agent ingest, live updates and the dashboard.
    Serve(commands::serve::Args),
    /// The distributed mode: partitions, their owners and lag, front-ends and workers.
    #[command(subcommand)]
    Cluster(commands::cluster::ClusterCommand),
    /// Manage bearer API tokens for scripts and agents.
    #[command(subcommand)]
    Tokens(commands::tokens::TokensCommand),
    /// Notifications: test a channel, look at the outbox, deliver or retry.
    #[command(subcommand)]
    Notify(commands::notify::NotifyCommand),
    /// Export incident reports and period summaries (PDF, HTML, Markdown, CSV, JSON).
    #[command(subcommand)]
    Report(commands::report::ReportCommand),
    /// Copy the embedded (SQLite) database while the server runs, or check a copy or a
    /// database (`--check`).
    Backup(commands::backup::BackupArgs),
    /// Restore a backup into an empty database (`--db`).
    Restore(commands::backup::RestoreArgs),
    /// The archive of events past retention: list its parts, restore a range of days.
    #[command(subcommand)]
    Archive(commands::archive::ArchiveCommand),
    /// Remove what the retention policies no longer keep (every tenant, or `--tenant`);
    /// `--dry-run` counts.
    Purge(commands::purge::Args),
    /// What the database holds and keeps: its size and free disk, and per tenant the events,
    /// the oldest one and the retention policy.
    Status,
}

/// The rule cache's folder: the one given, else the user's cache folder; none when off.
fn rule_cache_dir(given: Option<PathBuf>, off: bool) -> Option<PathBuf> {
    if off {
        return None;
    }
    given.or_else(|| {
        let xdg = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty());
        let base = xdg
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(base.join("siren"))
    })
}

/// Settings every command shares, resolved from flags, environment and the config file.
pub struct Context {
    /// Database URL.
    pub database_url: String,
    /// Tenant.
    pub tenant: siren_core::TenantId,
    /// Whether a tenant was named (flag, environment or config), not the default taken.
    pub tenant_given: bool,
    /// The `retention:` section (nothing purged when absent).
    pub retention: siren_core::retention::RetentionConfig,
    /// The `archive:` section: where events go before retention deletes them.
    pub archive: Option<siren_core::archive::ArchiveConfig>,
    /// Output.
    pub printer: Printer,
    /// The configuration file's `server:` section (defaults when absent).
    pub server: siren_server::ServerConfig,
    /// The configuration file's rule folders.
    pub rules: Vec<PathBuf>,
    /// The configuration file's log-source mapping.
    pub logsources: Option<PathBuf>,
    /// The configuration file's processing pipelines (`pipelines:`).
    pub pipelines: Vec<PathBuf>,
    /// The rule cache's folder, unless it is off.
    pub rule_cache: Option<PathBuf>,
    /// The `notify:` section (secrets not yet resolved: see `commands::notify`).
    pub notify: siren_core::notify::NotifyConfig,
    /// The `--format` flag as given (reports read their formats from it).
    pub format_flag: FormatFlag,
    /// A folder of report templates overriding the built-in ones (config `report.templates`).
    pub report_templates: Option<PathBuf>,
}

impl Cli {
    fn context(&self) -> Result<Context, Failure> {
        let config =
            ConfigFile::load(self.config.as_deref()).map_err(|e| Failure::new(Exit::Config, e))?;
        let database = match (&self.db, &config.database) {
            (Some(url), _) => url.clone(),
            (None, Some(url)) => resolve_secret(url).map_err(|e| {
                Failure::new(
                    Exit::Config,
                    anyhow::Error::new(e).context("configuration key 'database'"),
                )
            })?,
            (None, None) => siren_core::store::DEFAULT_DATABASE_URL.to_owned(),
        };
        let tenant_name = self
            .tenant
            .as_deref()
            .or(config.tenant.as_deref())
            .unwrap_or(siren_core::TenantId::DEFAULT);
        let tenant =
            siren_core::TenantId::parse(tenant_name).map_err(|e| Failure::new(Exit::Config, e))?;
        let printer = Printer {
            format: self.format.output().unwrap_or(OutputFormat::Table),
            quiet: self.quiet,
        };
        if let Some(warning) = config.exposure_warning() {
            printer.warn(warning);
        }
        let retention = config.retention.unwrap_or_default();
        retention
            .validate()
            .map_err(|e| Failure::new(Exit::Config, anyhow::anyhow!(e)))?;
        if retention.archives() && config.archive.is_none() {
            return Err(Failure::new(
                Exit::Config,
                anyhow::anyhow!(
                    "retention: a policy archives events (`archive: true`) and no `archive:` section says where"
                ),
            ));
        }
        let mut archive = config.archive;
        if let Some(archive) = archive.as_mut() {
            archive
                .resolve_secrets(|name| std::env::var(name).ok())
                .map_err(|e| Failure::new(Exit::Config, anyhow::anyhow!(e)))?;
        }
        let notify = config.notify.unwrap_or_default();
        notify
            .validate()
            .map_err(|e| Failure::new(Exit::Config, e))?;
        Ok(Context {
            notify,
            database_url: database,
            tenant_given: self.tenant.is_some() || config.tenant.is_some(),
            retention,
            archive,
            tenant,
            printer,
            server: config.server.unwrap_or_default(),
            rules: config.rules,
            logsources: config.logsources,
            pipelines: config.pipelines,
            rule_cache: rule_cache_dir(self.rule_cache.clone(), self.no_rule_cache),
            format_flag: self.format,
            report_templates: config.report.and_then(|r| r.templates),
        })
    }
}

fn main() -> ExitCode {
    no_transparent_huge_pages();
    let cli = Cli::parse();
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SIREN_LOG")
                .unwrap_or_else(|_| level.into()),
        )
        .init();
    let result = run(cli);
    match result {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(failure) => {
            // A closed pipe (`siren … | head`) is not an error.
            let broken_pipe = failure.error.chain().any(|cause| {
                cause
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            });
            if broken_pipe {
                return ExitCode::SUCCESS;
            }
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: {}", failure.message());
            }
            ExitCode::from(failure.exit.code())
        }
    }
}

fn run(cli: Cli) -> CommandResult {
    let context = cli.context()?;
    if context.format_flag.output().is_none() && !matches!(cli.command, Command::Report(_)) {
        return Err(Failure::new(
            Exit::Usage,
            anyhow::anyhow!("--format html, md and pdf are for `siren report export`"),
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(Exit::Software, e))?;
    runtime.block_on(async move {
        match cli.command {
            Command::Ingest(args) => commands::ingest::run(&context, args).await,
            Command::Events(command) => commands::events::run(&context, command).await,
            Command::Hunt(args) => commands::hunt::run(&context, args).await,
            Command::Rules(command) => commands::rules::run(&context, command).await,
            Command::Incidents(command) => commands::incidents::run(&context, command).await,
            Command::Users(command) => commands::users::run(&context, command).await,
            Command::Serve(args) => commands::serve::run(&context, args).await,
            Command::Tokens(command) => commands::tokens::run(&context, command).await,
            Command::Cluster(command) => commands::cluster::run(&context, command).await,
            Command::Demo(args) => commands::demo::run(&context, args).await,
            Command::Notify(command) => commands::notify::run(&context, command).await,
            Command::Report(command) => commands::report::run(&context, command).await,
            Command::Backup(args) => commands::backup::backup(&context, args).await,
            Command::Restore(args) => commands::backup::restore(&context, args).await,
            Command::Purge(args) => commands::purge::run(&context, args).await,
            Command::Archive(command) => commands::archive::run(&context, command).await,
            Command::Status => commands::status::run(&context).await,
        }
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        super::Cli::command().debug_assert();
    }
}
