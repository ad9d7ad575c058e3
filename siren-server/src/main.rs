//! The `siren-server` binary: serves the REST API and the dashboard.

use clap::Parser;

/// SIREN's server: REST API, agent ingest, live updates and the dashboard.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "SIREN_LISTEN", default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    tracing::info!(listen = %args.listen, "serving");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    siren_server::serve(listener, siren_server::AppState::default(), shutdown).await?;
    Ok(())
}
