//! `siren-agent service install|uninstall|start|stop|run` (Windows only).

use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use windows_service::service::{
    ServiceAccess, ServiceErrorControl, ServiceInfo, ServiceStartType, ServiceState, ServiceType,
};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};

use crate::exit::{Exit, ExitContext, Failure};
use crate::service::SERVICE_NAME;

/// Service management.
#[derive(clap::Subcommand)]
pub enum ServiceCommand {
    /// Install the service (automatic start, LocalSystem) with this configuration.
    Install,
    /// Stop and remove the service.
    Uninstall,
    /// Start the installed service.
    Start,
    /// Stop the service.
    Stop,
    /// What the service manager runs (not for interactive use).
    Run,
}

/// Runs the command.
pub fn run(config: &Path, command: ServiceCommand) -> Result<Exit, Failure> {
    match command {
        ServiceCommand::Install => install(config).exit(Exit::Software),
        ServiceCommand::Uninstall => uninstall().exit(Exit::Software),
        ServiceCommand::Start => start().exit(Exit::Software),
        ServiceCommand::Stop => stop().exit(Exit::Software),
        ServiceCommand::Run => crate::service::dispatch(config.to_owned())
            .map(|()| Exit::Ok)
            .exit(Exit::Software),
    }
}

fn install(config: &Path) -> anyhow::Result<Exit> {
    let config = config
        .canonicalize()
        .with_context(|| format!("{}: configuration not found", config.display()))?;
    crate::config::Config::load(&config)?;
    let manager = ServiceManager::local_computer(
        None::<&str>,
        ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE,
    )
    .context("cannot open the service manager (run as administrator)")?;
    let info = ServiceInfo {
        name: OsString::from(SERVICE_NAME),
        display_name: OsString::from("SIREN agent"),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: std::env::current_exe().context("cannot find siren-agent.exe")?,
        launch_arguments: vec![
            OsString::from("--config"),
            config.into_os_string(),
            OsString::from("service"),
            OsString::from("run"),
        ],
        dependencies: vec![],
        account_name: None,
        account_password: None,
    };
    let service = manager
        .create_service(&info, ServiceAccess::CHANGE_CONFIG)
        .context("cannot create the service")?;
    service
        .set_description("Ships Windows events to a SIREN server")
        .context("cannot describe the service")?;
    tracing::info!("service {SERVICE_NAME} installed");
    Ok(Exit::Ok)
}

fn open(access: ServiceAccess) -> anyhow::Result<windows_service::service::Service> {
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
        .context("cannot open the service manager (run as administrator)")?;
    manager
        .open_service(SERVICE_NAME, access)
        .with_context(|| format!("service {SERVICE_NAME} is not installed"))
}

fn wait_for(
    service: &windows_service::service::Service,
    state: ServiceState,
) -> anyhow::Result<()> {
    let until = Instant::now() + Duration::from_secs(30);
    while service.query_status()?.current_state != state {
        if Instant::now() > until {
            anyhow::bail!("service {SERVICE_NAME} did not reach {state:?} within 30s");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(())
}

fn uninstall() -> anyhow::Result<Exit> {
    let service = open(ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE)?;
    if service.query_status()?.current_state != ServiceState::Stopped {
        service.stop()?;
        wait_for(&service, ServiceState::Stopped)?;
    }
    service.delete().context("cannot delete the service")?;
    Ok(Exit::Ok)
}

fn start() -> anyhow::Result<Exit> {
    let service = open(ServiceAccess::QUERY_STATUS | ServiceAccess::START)?;
    service
        .start::<&str>(&[])
        .context("cannot start the service")?;
    wait_for(&service, ServiceState::Running)?;
    Ok(Exit::Ok)
}

fn stop() -> anyhow::Result<Exit> {
    let service = open(ServiceAccess::QUERY_STATUS | ServiceAccess::STOP)?;
    service.stop().context("cannot stop the service")?;
    wait_for(&service, ServiceState::Stopped)?;
    Ok(Exit::Ok)
}
