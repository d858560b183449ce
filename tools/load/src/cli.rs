//! The command line of `rtmp-load`: the options of one load run.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Arg, Command};

use crate::{BenchOptions, DEFAULT_PLAY_DELAY, MAX_STREAMS, MAX_VIEWERS_PER_STREAM};

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
             server, optionally with HLS viewers and RTMP players, and print a summary; exits \
             1 if any stream or player failed, 2 if the run could not start",
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
                .value_parser(clap::value_parser!(u32).range(0..=MAX_STREAMS as i64))
                .help(
                    "Concurrent streams, each on its own connection (0 with --rtmp-play-url: \
                     players only)",
                ),
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
            Arg::new("rtmp-players")
                .long("rtmp-players")
                .value_name("N")
                .default_value("0")
                .value_parser(clap::value_parser!(u32).range(0..=MAX_VIEWERS_PER_STREAM as i64))
                .help(
                    "RTMP players per played stream (each published stream, or the \
                     --rtmp-play-url one), reading everything, timed from play to the first \
                     video message",
                ),
        )
        .arg(
            Arg::new("rtmp-stalled-players")
                .long("rtmp-stalled-players")
                .value_name("N")
                .default_value("0")
                .value_parser(clap::value_parser!(u32).range(0..=MAX_VIEWERS_PER_STREAM as i64))
                .help(
                    "RTMP players per played stream that stop reading once play is sent (slow \
                     players); the summary tells which the server closed",
                ),
        )
        .arg(
            Arg::new("rtmp-play-url")
                .long("rtmp-play-url")
                .value_name("RTMP_URL")
                .help(
                    "Stream the RTMP players play, rtmp://host:port/app/name, for \
                     --duration [default: each published stream, --url/KEY]",
                ),
        )
        .arg(
            Arg::new("rtmp-play-delay")
                .long("rtmp-play-delay")
                .value_name("SECS")
                .value_parser(seconds)
                .help("How long after its stream starts an RTMP player plays [default: 1]"),
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
        rtmp_players: *m.get_one::<u32>("rtmp-players").expect("has a default") as usize,
        rtmp_stalled_players: *m
            .get_one::<u32>("rtmp-stalled-players")
            .expect("has a default") as usize,
        rtmp_play_url: m.get_one::<String>("rtmp-play-url").cloned(),
        rtmp_play_delay: m
            .get_one::<Duration>("rtmp-play-delay")
            .copied()
            .unwrap_or(DEFAULT_PLAY_DELAY),
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
            "--rtmp-players",
            "4",
            "--rtmp-stalled-players",
            "1",
            "--rtmp-play-delay",
            "2.5",
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
                rtmp_players: 4,
                rtmp_stalled_players: 1,
                rtmp_play_url: None,
                rtmp_play_delay: Duration::from_millis(2500),
            }
        );
        let players_only = run(&[
            "--url",
            "rtmp://127.0.0.1:1935/live",
            "--file",
            "f.flv",
            "--streams",
            "0",
            "--duration",
            "30",
            "--rtmp-players",
            "10",
            "--rtmp-play-url",
            "rtmp://127.0.0.1:1935/live/cam",
        ])
        .unwrap();
        assert_eq!(
            (
                players_only.streams,
                players_only.rtmp_players,
                players_only.rtmp_play_url.as_deref(),
                players_only.rtmp_play_delay
            ),
            (
                0,
                10,
                Some("rtmp://127.0.0.1:1935/live/cam"),
                DEFAULT_PLAY_DELAY
            )
        );
    }

    #[test]
    fn bad_values_are_refused() {
        for bad in [
            &["--streams", "10001", "--duration", "5"][..],
            &["--streams", "2", "--duration", "5", "--rtmp-players", "101"],
            &[
                "--streams",
                "2",
                "--duration",
                "5",
                "--rtmp-stalled-players",
                "-1",
            ],
            &[
                "--streams",
                "2",
                "--duration",
                "5",
                "--rtmp-play-delay",
                "x",
            ],
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
