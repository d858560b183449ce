//! The command line: subcommands, and one flag per config option.
//!
//! `rtmp-server` alone runs the server. Every config option `section.name` is also the flag
//! `--section-name VALUE`; the short flags users know (`--media-root`, `--stream-service`,
//! `--on-publish`, `--on-unpublish`) are aliases of theirs.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::config::{self, Config, ConfigError, Overrides};
use crate::offline::Format;

/// What the command line asked for.
pub enum Invocation {
    Serve {
        config: Config,
        print_config: bool,
    },
    CheckConfig {
        config: Config,
    },
    Remux {
        format: Format,
        input: PathBuf,
        output: PathBuf,
        config: Config,
    },
    /// Probe the local server's `/healthz`, on the listeners `config` turns on.
    Healthcheck {
        config: Config,
    },
}

/// Short flag names users know from the README and the original service.
fn aliases(dotted: &str) -> &'static [&'static str] {
    match dotted {
        "http.mediaroot" => &["media-root"],
        "auth.stream_service" => &["stream-service"],
        "hooks.on_publish" => &["on-publish"],
        "hooks.on_unpublish" => &["on-unpublish"],
        _ => &[],
    }
}

/// Adds `--config FILE` and a flag for every config option.
fn with_config_args(mut cmd: Command) -> Command {
    cmd = cmd.arg(
        Arg::new("config")
            .long("config")
            .value_name("FILE")
            .value_parser(clap::value_parser!(PathBuf))
            .help("TOML config file (options: see rtmp-server.toml)"),
    );
    for spec in config::options() {
        let default = match &spec.default {
            toml::Value::String(s) if s.is_empty() => "none".to_string(),
            toml::Value::String(s) => s.clone(),
            v => v.to_string(),
        };
        let mut arg = Arg::new(spec.dotted())
            .long(spec.flag())
            // Given twice, the last one counts (scripts append flags to defaults).
            .overrides_with(spec.dotted())
            .value_name("VALUE")
            .help(format!(
                "{} [default: {default}] [env: {}]",
                spec.dotted(),
                spec.env_var()
            ))
            .visible_aliases(aliases(&spec.dotted()).iter().copied());
        if matches!(spec.default, toml::Value::Boolean(_)) {
            arg = arg
                .num_args(0..=1)
                .default_missing_value("true")
                .value_name("BOOL");
        }
        cmd = cmd.arg(arg);
    }
    cmd
}

fn command() -> Command {
    let serve = with_config_args(Command::new("serve").about("Run the server (the default)")).arg(
        Arg::new("print-config")
            .long("print-config")
            .action(ArgAction::SetTrue)
            .help("Print the effective configuration before starting"),
    );
    with_config_args(
        Command::new("rtmp-server")
            .version(env!("CARGO_PKG_VERSION"))
            .about("RTMP ingest to HLS: H.264/AAC remuxed to MPEG-TS, served over HTTP")
            .args_conflicts_with_subcommands(true),
    )
    .arg(
        Arg::new("print-config")
            .long("print-config")
            .action(ArgAction::SetTrue)
            .help("Print the effective configuration before starting"),
    )
    .subcommand(serve)
    .subcommand(with_config_args(
        Command::new("check-config")
            .about("Validate the configuration and print the effective one"),
    ))
    .subcommand(with_config_args(
        Command::new("remux")
            .about("Remux an FLV file to HLS (VOD playlist, every segment kept)")
            .arg(
                Arg::new("format")
                    .long("format")
                    .help("Segment format: ts (MPEG-TS, as index.m3u8) or cmaf (fragmented MP4, as llhls.m3u8)")
                    .value_parser(["ts", "cmaf"])
                    .default_value("ts"),
            )
            .arg(
                Arg::new("input")
                    .required(true)
                    .value_parser(clap::value_parser!(PathBuf)),
            )
            .arg(
                Arg::new("output")
                    .required(true)
                    .value_parser(clap::value_parser!(PathBuf)),
            ),
    ))
    .subcommand(with_config_args(Command::new("healthcheck").about(
        "Exit 0 when the local server answers /healthz (for container HEALTHCHECK), over \
         plain HTTP on http.port or, with http.plain off, HTTPS on http.tls_port",
    )))
}

/// Builds the effective config from the matches of a command with config args.
fn config_from(
    m: &ArgMatches,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let mut overrides = Overrides::default();
    overrides.from_env(env);
    for spec in config::options() {
        if let Some(v) = m.get_one::<String>(spec.dotted().as_str()) {
            overrides.push_flag(spec, v.clone());
        }
    }
    let file = m
        .get_one::<PathBuf>("config")
        .cloned()
        .or_else(|| env("RTMP_SERVER_CONFIG").map(PathBuf::from));
    Config::load(file.as_deref(), &overrides)
}

/// Parses `args` (program name first). Errors are clap's (help, version, usage) or a config
/// error naming the option.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Invocation, CliError> {
    let env = |name: &str| std::env::var(name).ok();
    let m = command().try_get_matches_from(args)?;
    Ok(match m.subcommand() {
        Some(("serve", sub)) => Invocation::Serve {
            config: config_from(sub, &env)?,
            print_config: sub.get_flag("print-config"),
        },
        Some(("check-config", sub)) => Invocation::CheckConfig {
            config: config_from(sub, &env)?,
        },
        Some(("remux", sub)) => Invocation::Remux {
            format: match sub.get_one::<String>("format").map(String::as_str) {
                Some("cmaf") => Format::Cmaf,
                _ => Format::Ts,
            },
            input: sub.get_one::<PathBuf>("input").cloned().expect("required"),
            output: sub.get_one::<PathBuf>("output").cloned().expect("required"),
            config: config_from(sub, &env)?,
        },
        Some(("healthcheck", sub)) => Invocation::Healthcheck {
            config: config_from(sub, &env)?,
        },
        _ => Invocation::Serve {
            config: config_from(&m, &env)?,
            print_config: m.get_flag("print-config"),
        },
    })
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Clap(#[from] clap::Error),
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Invocation, CliError> {
        parse(
            std::iter::once("rtmp-server")
                .chain(args.iter().copied())
                .map(OsString::from),
        )
    }

    #[test]
    fn no_subcommand_serves_on_defaults() {
        command().debug_assert();
        let Invocation::Serve {
            config,
            print_config,
        } = run(&[]).unwrap()
        else {
            panic!("expected serve");
        };
        assert!(!print_config);
        assert_eq!(config.rtmp.port, Config::default().rtmp.port);
    }

    #[test]
    fn subcommands_are_the_servers_own() {
        let names: Vec<_> = command()
            .get_subcommands()
            .map(|c| c.get_name().to_owned())
            .collect();
        assert_eq!(names, ["serve", "check-config", "remux", "healthcheck"]);
        // The load tool is a binary of its own (tools/load), not a subcommand.
        assert!(run(&["bench-publish", "--url", "rtmp://h/live"]).is_err());
    }

    #[test]
    fn flags_and_aliases_set_options() {
        let Invocation::Serve { config, .. } = run(&[
            "serve",
            "--rtmp-port",
            "0",
            "--media-root",
            "/tmp/m",
            "--hls-keep",
            "--stream-service",
            "http://svc:3000",
        ])
        .unwrap() else {
            panic!("expected serve");
        };
        assert_eq!(config.rtmp.port, 0);
        assert_eq!(config.http.mediaroot, PathBuf::from("/tmp/m"));
        assert!(config.hls.keep);
        assert_eq!(config.auth.stream_service, "http://svc:3000");
    }

    #[test]
    fn out_of_range_flag_names_the_option() {
        let err = run(&["check-config", "--hls-list-size", "0"])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("hls.list_size"), "{err}");
    }
}
