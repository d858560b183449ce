//! `rtmp-server`: run the server, remux a file, check a config, or probe a running server.

use std::io::IsTerminal;
use std::process::ExitCode;

use rtmp_server::cli::{self, Invocation};
use rtmp_server::config::{Config, LogFormat};

fn main() -> ExitCode {
    let invocation = match cli::parse(std::env::args_os()) {
        Ok(i) => i,
        Err(cli::CliError::Clap(e)) => e.exit(),
        Err(e) => {
            eprintln!("rtmp-server: {e}");
            return ExitCode::from(2);
        }
    };
    match invocation {
        Invocation::Serve {
            config,
            print_config,
        } => {
            if print_config {
                print!("{}", config.to_toml());
            }
            init_logging(&config);
            match serve(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Invocation::CheckConfig { config } => {
            print!("{}", config.to_toml());
            ExitCode::SUCCESS
        }
        Invocation::Remux {
            format,
            input,
            output,
            config,
        } => {
            init_logging(&config);
            match rtmp_server::offline::remux_file(&input, &output, &config, format) {
                Ok(summary) => {
                    println!("{summary}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("rtmp-server remux: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Invocation::Healthcheck { config } => match rtmp_server::healthcheck::probe(&config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("unhealthy: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Logs to stderr: text for people, JSON for collectors; `RUST_LOG` overrides `log.level`.
fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    // Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org).
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Makes every large allocation (a segment's buffer is hundreds of KiB) a memory mapping of
/// its own, returned to the system when freed. Under glibc's default adaptive threshold they
/// come from the heap instead, whose holes the next segment, a little larger, often cannot
/// reuse, and a long-running server's resident size creeps up.
fn tune_allocator() {
    /// Allocations from this size up are mapped on their own.
    const MMAP_THRESHOLD: libc::c_int = 256 * 1024;
    // SAFETY: mallopt only changes the allocator's parameters; called before the runtime
    // starts any thread.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    tune_allocator();
    match rtmp_server::server::raise_open_file_limit() {
        Ok((before, after)) => {
            if after > before {
                tracing::info!(before, after, "raised the open file limit");
            }
            let caps = config.rtmp.max_connections as u64 + config.http.max_connections as u64;
            if after < caps {
                tracing::warn!(
                    limit = after,
                    caps,
                    "the open file limit is below rtmp.max_connections + http.max_connections: \
                     accepting fails before the caps are reached"
                );
            }
        }
        Err(e) => tracing::warn!("could not raise the open file limit: {e}"),
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let server = rtmp_server::server::Server::bind(config).await?;
        let stop = tokio_util::sync::CancellationToken::new();
        let on_signal = stop.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            on_signal.cancel();
        });
        server.run(stop).await
    })
}

/// SIGTERM (docker stop) or SIGINT (Ctrl-C).
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
