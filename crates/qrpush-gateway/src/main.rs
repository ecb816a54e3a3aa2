//! `qrpush-gateway`: see `--help`, and the crate's README.

use std::process::ExitCode;

use clap::Parser;
use qrpush_gateway::config::SecretsFromEnv;
use qrpush_gateway::{Args, Settings};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = EnvFilter::try_new(&args.log).unwrap_or_else(|e| {
        eprintln!("qrpush-gateway: --log '{}': {e}; using 'info'", args.log);
        EnvFilter::new("info")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
    let settings = match Settings::from_args(&args, SecretsFromEnv::read()) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("qrpush-gateway: {e}\n(see qrpush-gateway --help)");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("qrpush-gateway")
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("qrpush-gateway: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let gateway = match qrpush_gateway::start(settings.clone()).await {
            Ok(gateway) => gateway,
            Err(e) => {
                eprintln!("qrpush-gateway: {e}");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(
            listen = %gateway.local_addr(),
            redis = %settings.core.endpoint.label(),
            mode = settings.mode().as_str(),
            token_keys = %settings.key_ids(),
            pid = std::process::id(),
            "qrpush-gateway ready"
        );
        wait_for_signal().await;
        tracing::info!("shutting down: closing every socket with 1001");
        gateway.stop().await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}

/// SIGTERM (Supervisor, systemd, kill) or SIGINT (Ctrl-C).
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
