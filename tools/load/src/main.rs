//! `rtmp-load`: load-test an RTMP server with N real-time publishers and M HLS viewers per
//! stream (see the library's documentation).

use std::io::IsTerminal;
use std::process::ExitCode;

use rtmp_load::BenchOptions;

/// Log level when `RUST_LOG` is not set.
const DEFAULT_LOG_LEVEL: &str = "info";

fn main() -> ExitCode {
    let options = match rtmp_load::cli::parse(std::env::args_os()) {
        Ok(options) => options,
        Err(e) => e.exit(),
    };
    init_logging();
    match run(&options) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("rtmp-load: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Text logs to stderr; `RUST_LOG` sets the filter.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_LEVEL));
    // Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org).
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
}

/// Runs the load and prints its summary; `Ok(true)` when every stream completed.
/// SIGTERM or Ctrl-C ends the streams early (they unpublish) and still prints the summary.
fn run(options: &BenchOptions) -> anyhow::Result<bool> {
    // Every stream and viewer is a socket: thousands of them pass the usual soft limit.
    if let Err(e) = rtmp_server::server::raise_open_file_limit() {
        eprintln!("warning: open file limit not raised: {e}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let stop = tokio_util::sync::CancellationToken::new();
        let on_signal = stop.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            on_signal.cancel();
        });
        let summary = rtmp_load::run(options, stop).await?;
        print!("{summary}");
        Ok(summary.all_completed())
    })
}

/// SIGTERM or SIGINT (Ctrl-C).
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
