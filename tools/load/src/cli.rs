//! The command line of `rtmp-load`: the options of one load run.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Arg, Command};

use crate::{BenchOptions, MAX_STREAMS, MAX_VIEWERS_PER_STREAM};

/// A number of seconds (fractions allowed) as a duration.
fn seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{text:?} is not a number of seconds"))
}

fn command() -> Command {
    Command::new("rtmp-load")
        .version(env!("CARGO_PKG_VERSION"))
        .about(
            "Publish N concurrent streams of an FLV file at real time (looped) to an RTMP \
             server, optionally with HLS viewers, and print a summary; exits 1 if any stream \
             failed, 2 if the run could not start",
        )
        .arg(
            Arg::new("url")
                .long("url")
                .required(true)
                .value_name("RTMP_URL")
                .help("Application to publish to, rtmp://host:port/app"),
        )
        .arg(
            Arg::new("file")
                .long("file")
                .required(true)
                .value_name("FLV")
                .value_parser(clap::value_parser!(PathBuf))
                .help("FLV file every stream publishes (read once, looped)"),
        )
        .arg(
            Arg::new("streams")
                .long("streams")
                .required(true)
                .value_name("N")
                .value_parser(clap::value_parser!(u32).range(1..=MAX_STREAMS as i64))
                .help("Concurrent streams, each on its own connection"),
        )
        .arg(
            Arg::new("duration")
                .long("duration")
                .required(true)
                .value_name("SECS")
                .value_parser(seconds)
                .help("Media time each stream publishes"),
        )
        .arg(
            Arg::new("key-prefix")
                .long("key-prefix")
                .value_name("PREFIX")
                .default_value("bench-")
                .help("Stream keys are PREFIX1 to PREFIXN"),
        )
        .arg(
            Arg::new("viewers")
                .long("viewers")
                .value_name("M")
                .default_value("0")
                .value_parser(clap::value_parser!(u32).range(0..=MAX_VIEWERS_PER_STREAM as i64))
                .help("HLS viewers per stream (classic index.m3u8, polled)"),
        )
        .arg(
            Arg::new("ll-viewers")
                .long("ll-viewers")
                .value_name("M")
                .default_value("0")
                .value_parser(clap::value_parser!(u32).range(0..=MAX_VIEWERS_PER_STREAM as i64))
                .help(
                    "Low-Latency HLS viewers per stream (llhls.m3u8, blocking reloads, every \
                     part fetched and timed from its publisher's write; plain http:// only)",
                ),
        )
        .arg(
            Arg::new("http")
                .long("http")
                .value_name("URL")
                .default_value("http://127.0.0.1:8000")
                .help("The server's HLS base URL, for viewers"),
        )
        .arg(
            Arg::new("ramp")
                .long("ramp")
                .value_name("SECS")
                .value_parser(seconds)
                .help("Spread stream starts over this time [default: 1 s per 50 streams]"),
        )
}

/// Parses `args` (program name first). Errors are clap's: help, version or usage.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<BenchOptions, clap::Error> {
    let m = command().try_get_matches_from(args)?;
    Ok(BenchOptions {
        url: m.get_one::<String>("url").cloned().expect("required"),
        file: m.get_one::<PathBuf>("file").cloned().expect("required"),
        streams: *m.get_one::<u32>("streams").expect("required") as usize,
        duration: *m.get_one::<Duration>("duration").expect("required"),
        key_prefix: m
            .get_one::<String>("key-prefix")
            .cloned()
            .expect("has a default"),
        viewers: *m.get_one::<u32>("viewers").expect("has a default") as usize,
        ll_viewers: *m.get_one::<u32>("ll-viewers").expect("has a default") as usize,
        http: m.get_one::<String>("http").cloned().expect("has a default"),
        ramp: m.get_one::<Duration>("ramp").copied(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<BenchOptions, clap::Error> {
        parse(
            std::iter::once("rtmp-load")
                .chain(args.iter().copied())
                .map(OsString::from),
        )
    }

    #[test]
    fn options() {
        command().debug_assert();
        let options = run(&[
            "--url",
            "rtmp://127.0.0.1:1935/live",
            "--file",
            "testdata/flv/h264_aac.flv",
            "--streams",
            "50",
            "--duration",
            "20",
            "--viewers",
            "2",
            "--ll-viewers",
            "3",
            "--ramp",
            "0.5",
        ])
        .unwrap();
        assert_eq!(
            options,
            BenchOptions {
                url: "rtmp://127.0.0.1:1935/live".to_owned(),
                file: PathBuf::from("testdata/flv/h264_aac.flv"),
                streams: 50,
                duration: Duration::from_secs(20),
                key_prefix: "bench-".to_owned(),
                viewers: 2,
                ll_viewers: 3,
                http: "http://127.0.0.1:8000".to_owned(),
                ramp: Some(Duration::from_millis(500)),
            }
        );
    }

    #[test]
    fn bad_values_are_refused() {
        for bad in [
            &["--streams", "0", "--duration", "5"][..],
            &["--streams", "10001", "--duration", "5"],
            &["--streams", "2", "--duration=-1"],
            &["--streams", "2", "--duration", "soon"],
            &["--streams", "2", "--duration", "5", "--viewers", "101"],
            &["--streams", "2", "--duration", "5", "--ll-viewers", "101"],
            &["--streams", "2"],
        ] {
            let args = [&["--url", "rtmp://h/live", "--file", "f.flv"][..], bad].concat();
            let err = run(&args).expect_err("refused");
            assert_ne!(err.exit_code(), 0, "{bad:?}: {err}");
        }
        let args = ["--url", "rtmp://h/live", "--file", "f.flv"];
        let good = [&args[..], &["--streams", "2", "--duration", "5"]].concat();
        assert!(run(&good).is_ok(), "the cases above differ from a good one");
    }
}
