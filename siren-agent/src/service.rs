//! The Windows service: `siren-agent service run` is what the service manager starts; it
//! reports Running, and stops the agent (positions and spool are durable) on Stop/Shutdown.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use windows_service::service::{
    ServiceControl, ServiceControlAccept, ServiceExitCode, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::{define_windows_service, service_dispatcher};

/// The service's name.
pub const SERVICE_NAME: &str = "siren-agent";

static CONFIG: OnceLock<PathBuf> = OnceLock::new();

define_windows_service!(ffi_service_main, service_main);

/// Hands the process to the service control manager (blocks until the service stops).
pub fn dispatch(config: PathBuf) -> anyhow::Result<()> {
    let _ = CONFIG.set(config);
    service_dispatcher::start(SERVICE_NAME, ffi_service_main)
        .map_err(|e| anyhow::anyhow!("not started by the service manager: {e}"))
}

fn service_main(_arguments: Vec<OsString>) {
    if let Err(error) = run_service() {
        tracing::error!(error = %format!("{error:#}"), "service failed");
    }
}

fn run_service() -> anyhow::Result<()> {
    let path = CONFIG.get().cloned().unwrap_or_default();
    let config = crate::config::Config::load(&path)?;
    let _log = crate::logging::init(Some(&config.log), true)?;
    crate::commands::warn_if_exposed(&config, &path);
    let stop = Arc::new(AtomicBool::new(false));
    let handler_stop = stop.clone();
    let status_handle =
        service_control_handler::register(SERVICE_NAME, move |control| match control {
            ServiceControl::Stop | ServiceControl::Shutdown => {
                handler_stop.store(true, Ordering::SeqCst);
                ServiceControlHandlerResult::NoError
            }
            ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
            _ => ServiceControlHandlerResult::NotImplemented,
        })?;
    let report = |state, accept| ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: state,
        controls_accepted: accept,
        exit_code: ServiceExitCode::Win32(0),
        checkpoint: 0,
        wait_hint: Duration::from_secs(10),
        process_id: None,
    };
    status_handle.set_service_status(report(
        ServiceState::Running,
        ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN,
    ))?;
    let result = crate::commands::run::run_until(&config, stop);
    status_handle
        .set_service_status(report(ServiceState::Stopped, ServiceControlAccept::empty()))?;
    result.map(|_| ()).map_err(|f| f.error)
}
