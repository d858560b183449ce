//! TLS end to end: RTMPS from a real ffmpeg (checking the certificate, and pushing at full
//! speed), HTTPS with HTTP/2 and HTTP/1.1 to curl and rustls clients, the certificate renewed
//! under live connections (on SIGHUP and on a file change; broken pairs refused), the key
//! formats openssl writes and a full chain, garbage, slow and silent clients on the TLS
//! ports, close_notify at the end of an RTMPS connection, the healthcheck over HTTPS, and
//! the start-up refusals.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::hls_check::check_output;
use common::llhls::*;
use common::tls::*;
use common::*;

/// The series of the TLS handshake failure counter of `listener` (`rtmps` or `https`).
fn tls_failures(listener: &str) -> String {
    format!("rtmp_server_tls_handshake_failures_total{{listener=\"{listener}\"}}")
}

/// The lines of the server's log that contain `needle`.
fn log_lines(server: &ServerProcess, needle: &str) -> Vec<String> {
    server
        .logs()
        .lines()
        .filter(|l| l.contains(needle))
        .map(String::from)
        .collect()
}

/// Sends SIGHUP to the server.
fn hangup(server: &ServerProcess) {
    let status = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -HUP");
}

// 1. RTMPS ingest.

/// A server taking publishers over RTMPS only, keeping every segment on disk and listed (so
/// a whole publish can be read back).
fn rtmps_only_keeping_segments(files: &CertFiles) -> ServerProcess {
    let args = files.with(&[
        "--rtmp-tls-port",
        "0",
        "--rtmp-plain",
        "false",
        "--hls-keep",
        "--hls-list-size",
        "100",
    ]);
    ServerProcess::start(&strs(&args))
}

/// ffmpeg publishes over RTMPS, verifying the certificate (Debian's ffmpeg uses GnuTLS,
/// which verifies nothing unless told `-tls_verify 1`), to a server with plain RTMP off; both
/// outputs hold the source's frames, as they do over plain RTMP (`tests/ingest.rs`,
/// `tests/llhls.rs`). Told to trust another certificate, ffmpeg refuses the server's.
#[test]
fn ffmpeg_publishes_over_rtmps_and_the_output_is_as_over_rtmp() {
    let files = CertFiles::new(&Pair::new());
    let server = rtmps_only_keeping_segments(&files);
    assert_eq!(server.rtmp_port, 0, "plain RTMP is off");
    let source = testdata("flv/h264_aac.flv");
    // With the certificate checked, as an encoder should.
    let ca = path_arg(&files.cert);
    let verify = ["-tls_verify", "1", "-ca_file", &ca];
    let mut ffmpeg = Publisher::start_with(&source, &server.rtmps_url("secure"), &[], &verify);
    // Low-Latency parts while it publishes (an ended playlist lists none).
    let live = wait_ll(&server, "secure", "listed a part", |p| {
        p.last_part().is_some()
    });
    let part = live.last_part().unwrap();
    let r = get(&media_url(&server, "secure", &part.uri));
    assert_eq!(r.status, 200, "GET {}", part.uri);
    assert_fragment(&r.body, &part.uri);
    let status = ffmpeg.wait(STREAM_TIMEOUT).expect("ffmpeg finishes");
    assert!(
        status.success(),
        "ffmpeg failed:\n{}\nserver:\n{}",
        ffmpeg.logs(),
        server.logs()
    );

    // MPEG-TS: every frame, every check a strict player makes.
    let (playlist, segments) = finished_segments(&server, "secure");
    assert!(segments.len() >= 4, "10 s in 2 s segments: {playlist:?}");
    assert_same_frames(&source, &segments);
    check_output(&server.stream_dir("secure"), &playlist, true, true);
    let streams = probe_streams(&segments[0]);
    assert!(
        streams.contains("codec_name=h264") && streams.contains("codec_name=aac"),
        "{streams}"
    );

    // CMAF: every frame too, each segment read by ffprobe with its init section.
    let ll = ended_on_disk(&server, "secure");
    assert!(ll.segments.len() >= 4, "10 s in 2 s segments: {}", ll.text);
    let out = tempfile::tempdir().expect("temp dir");
    let cmaf = readable_segments(&ll, &Origin::Disk(server.stream_dir("secure")), out.path());
    assert!(
        !probe_packets(&cmaf[0]).is_empty(),
        "ffprobe reads a segment"
    );
    assert_same_frames(&source, &cmaf);

    assert_eq!(server.metric("rtmp_server_publishes_total"), Some(1.0));
    assert_eq!(server.metric(&tls_failures("rtmps")), Some(0.0));

    // The check is real: trusting another certificate, ffmpeg does not publish.
    let other = CertFiles::new(&Pair::new());
    let other_ca = path_arg(&other.cert);
    let verify = ["-tls_verify", "1", "-ca_file", &other_ca];
    let mut refused = Publisher::start_with(&source, &server.rtmps_url("other"), &[], &verify);
    let status = refused.wait(STREAM_TIMEOUT).expect("ffmpeg gives up");
    assert!(
        !status.success(),
        "ffmpeg published to an unknown certificate"
    );
    assert_eq!(server.metric("rtmp_server_publishes_total"), Some(1.0));
}

/// A 3 Mbit/s 720p file pushed over RTMPS as fast as ffmpeg reads it (no `-re`): many TLS
/// records arrive in each read, and every frame comes out.
#[test]
fn a_file_pushed_over_rtmps_at_full_speed_arrives_whole() {
    let files = CertFiles::new(&Pair::new());
    let server = rtmps_only_keeping_segments(&files);
    let source = testdata("flv/h264_720p30_3m.flv");
    FfmpegPush::start(&source, &server.rtmps_url("fast")).finish();
    let (playlist, segments) = finished_segments(&server, "fast");
    assert_same_frames(&source, &segments);
    check_output(&server.stream_dir("fast"), &playlist, true, true);
    assert_eq!(server.metric(&tls_failures("rtmps")), Some(0.0));
}

// 2. HTTPS: HTTP/2 and HTTP/1.1.

/// `curl FLAGS -w '%{http_version} %{response_code}' -o OUT URL`: the HTTP version and the
/// status, the body in `out`.
fn curl_get(ca: &Path, flags: &[&str], url: &str, out: &Path) -> String {
    let out = path_arg(out);
    let args: Vec<&str> = flags
        .iter()
        .copied()
        .chain(["-w", "%{http_version} %{response_code}", "-o", &out, url])
        .collect();
    let o = curl(ca, &args);
    assert!(
        o.status.success(),
        "curl {flags:?} {url}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Whether `p` lists the part a request for `_HLS_msn=msn&_HLS_part=index` waits for:
/// that part, or, when segment `msn` ended with `index` parts, part 0 of the next one (RFC
/// 8216bis §6.2.5.2).
fn lists_asked_part(p: &LlPlaylist, msn: u64, index: u64) -> bool {
    let ended_there = p
        .segments
        .iter()
        .any(|s| s.msn == msn && s.parts.len() as u64 == index);
    p.lists_part(msn, index) || (ended_there && p.lists_part(msn + 1, 0))
}

/// curl fetches playlists, a segment, a part and a blocking playlist reload over HTTPS with
/// HTTP/2 (ALPN h2) and with HTTP/1.1, verifying the certificate; plain HTTP on the same
/// server serves too; and a hundred requests, half of them held until a coming part lands,
/// share one HTTP/2 connection.
#[test]
fn https_serves_hls_over_http2_and_http1() {
    let pair = Pair::new();
    let files = CertFiles::new(&pair);
    let server = ServerProcess::start(&strs(&files.with(&["--http-tls-port", "0"])));
    assert!(server.http_port != 0, "plain HTTP stays on");
    let _publisher = live_publisher(&server, "h2");
    wait_playlist(&server, "h2");
    wait_ll(&server, "h2", "listed a segment and a part", |p| {
        !p.segments.is_empty() && p.last_part().is_some()
    });
    let out = tempfile::tempdir().expect("temp dir");
    let body = |name: &str| std::fs::read(out.path().join(name)).expect("curl wrote it");
    let ca = &files.cert;
    let url = |file: &str| server.https_url(&format!("/live/h2/{file}"));

    // HTTP/2.
    let got = curl_get(
        ca,
        &["--http2"],
        &url("index.m3u8"),
        &out.path().join("index"),
    );
    assert_eq!(got, "2 200", "index.m3u8 over HTTP/2");
    let index = parse_playlist(&String::from_utf8_lossy(&body("index")));
    let segment = &index.entries.last().expect("a segment listed").uri;
    let got = curl_get(ca, &["--http2"], &url(segment), &out.path().join("seg.ts"));
    assert_eq!(got, "2 200", "{segment} over HTTP/2");
    let ts = out.path().join("seg.ts");
    assert_eq!(body("seg.ts").len() % 188, 0, "whole TS packets");
    let packets = probe_packets(&ts);
    assert!(
        packets.iter().any(|p| p.video) && packets.iter().any(|p| !p.video),
        "ffprobe reads video and audio in {segment}"
    );

    let got = curl_get(ca, &["--http2"], &url("llhls.m3u8"), &out.path().join("ll"));
    assert_eq!(got, "2 200", "llhls.m3u8 over HTTP/2");
    let served = parse_ll(&String::from_utf8_lossy(&body("ll")));
    let part = served.last_part().expect("a part listed").clone();
    let got = curl_get(ca, &["--http2"], &url(&part.uri), &out.path().join("part"));
    assert_eq!(got, "2 200", "{} over HTTP/2", part.uri);
    assert_fragment(&body("part"), &part.uri);
    let (msn, index) = (part.msn, part.index + 1);
    let blocking = url(&format!("llhls.m3u8?_HLS_msn={msn}&_HLS_part={index}"));
    let got = curl_get(ca, &["--http2"], &blocking, &out.path().join("blocked"));
    assert_eq!(got, "2 200", "{blocking}");
    let answer = parse_ll(&String::from_utf8_lossy(&body("blocked")));
    assert!(
        lists_asked_part(&answer, msn, index),
        "{blocking} answered without that part:\n{}",
        answer.text
    );

    // HTTP/2 over TLS 1.2 (OpenSSL's client, capped).
    let tls12 = ["--http2", "--tlsv1.2", "--tls-max", "1.2"];
    let got = curl_get(ca, &tls12, &url("llhls.m3u8"), &out.path().join("tls12"));
    assert_eq!(got, "2 200", "llhls.m3u8 over HTTP/2 and TLS 1.2");

    // HTTP/1.1 over TLS, and plain HTTP, on the same server.
    let got = curl_get(
        ca,
        &["--http1.1"],
        &url("index.m3u8"),
        &out.path().join("i1"),
    );
    assert_eq!(got, "1.1 200", "index.m3u8 over HTTP/1.1");
    let got = curl_get(ca, &["--http1.1"], &url(segment), &out.path().join("s1"));
    assert_eq!(got, "1.1 200", "{segment} over HTTP/1.1");
    assert_eq!(body("s1"), body("seg.ts"), "the same segment either way");
    let plain = get(&server.http_url(&format!("/live/h2/{segment}")));
    assert_eq!(plain.status, 200, "plain HTTP");
    assert_eq!(
        plain.body,
        body("seg.ts"),
        "the same segment over plain HTTP"
    );

    // A hundred requests on one HTTP/2 connection, at most 50 at once: 50 blocking reloads
    // for the part after the last one listed, held together until it lands, and 50 fetches
    // of listed parts.
    let (_, now) = get_ll(&server, "h2", "");
    let now = now.expect("a playlist");
    let last = now.last_part().expect("a part").clone();
    let (msn, index) = (last.msn, last.index + 1);
    let listed: Vec<String> = now.parts().map(|p| p.uri.clone()).collect();
    let mut args: Vec<String> = [
        "--http2",
        "--parallel",
        "--parallel-max",
        "50",
        "-w",
        "%{http_version} %{response_code} %{num_connects}\\n",
    ]
    .map(String::from)
    .to_vec();
    for i in 0..100 {
        let target = if i < 50 {
            url(&format!("llhls.m3u8?_HLS_msn={msn}&_HLS_part={index}"))
        } else {
            url(&listed[i % listed.len()])
        };
        args.push("-o".into());
        args.push(path_arg(&out.path().join(format!("many-{i}"))));
        args.push(target);
    }
    let o = curl(ca, &strs(&args));
    assert!(
        o.status.success(),
        "curl --parallel: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let report = String::from_utf8_lossy(&o.stdout).into_owned();
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 100, "{report}");
    assert!(
        lines.iter().all(|l| l.starts_with("2 200 ")),
        "every request answered 200 over HTTP/2:\n{report}"
    );
    let connects: u32 = lines
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u32>().unwrap())
        .sum();
    assert_eq!(connects, 1, "one connection for all of them:\n{report}");
    for i in 0..100 {
        let data = body(&format!("many-{i}"));
        if i < 50 {
            let answer = parse_ll(&String::from_utf8_lossy(&data));
            assert!(
                lists_asked_part(&answer, msn, index),
                "request {i} answered without part {msn}.{index}:\n{}",
                answer.text
            );
        } else {
            assert_fragment(&data, &format!("request {i}"));
        }
    }
    assert_eq!(server.metric(&tls_failures("https")), Some(0.0));
}

// 3. Certificate reload.

/// What the viewer thread saw.
#[derive(Default)]
struct Viewed {
    /// Playlists answered 200 on the one connection.
    answers: usize,
    /// Why the connection failed, if it did.
    error: Option<String>,
}

/// A player on one kept-alive HTTPS connection (trusting the first certificate), asking for
/// the playlist every 300 ms (the server drops a connection idle for 10 s) until told to
/// stop.
struct Viewer {
    viewed: Arc<Mutex<Viewed>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Viewer {
    fn start(port: u16, trusted: &[u8], path: &str) -> Viewer {
        let mut conn = HttpsConnection::open(port, trusted);
        let viewed = Arc::new(Mutex::new(Viewed::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (v, s, path) = (viewed.clone(), stop.clone(), path.to_string());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let outcome = match conn.get(&path) {
                    Ok(r) if r.status == 200 => {
                        parse_playlist(&r.text());
                        Ok(())
                    }
                    Ok(r) => Err(format!("{path} answered {}", r.status)),
                    Err(e) => Err(format!("{path}: {e}")),
                };
                let mut v = v.lock().unwrap();
                match outcome {
                    Ok(()) => v.answers += 1,
                    Err(e) => {
                        v.error = Some(e);
                        return;
                    }
                }
                drop(v);
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        Viewer {
            viewed,
            stop,
            thread: Some(thread),
        }
    }

    fn answers(&self) -> usize {
        let v = self.viewed.lock().unwrap();
        assert_eq!(v.error, None, "the viewer's connection failed");
        v.answers
    }

    /// Asserts that the viewer's connection goes on answering: a few more answers from now.
    fn assert_goes_on(&self, when: &str) {
        let from = self.answers();
        let more = wait_for(STREAM_TIMEOUT, || self.answers() >= from + 3);
        assert!(more, "{when}: the viewer got no more answers after {from}");
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The certificate both TLS listeners present to a new connection equals `pair`'s.
fn assert_presented(server: &ServerProcess, pair: &Pair, when: &str) {
    for (listener, port) in [
        ("rtmps", server.rtmps_port.unwrap()),
        ("https", server.https_port.unwrap()),
    ] {
        assert!(
            presented_certificate(port) == pair.der,
            "{when}: {listener} presents another certificate\n{}",
            server.logs()
        );
    }
}

/// A renewed certificate is presented from the next handshake on, on SIGHUP and on a file
/// change alone, while a live RTMPS publish and a kept-alive HTTPS viewer go on on their
/// connections; a broken pair (a certificate with another key, a garbage key) is refused
/// with a logged reason and the certificate in use stays.
#[test]
fn a_renewed_certificate_reaches_new_connections_and_spares_live_ones() {
    let first = Pair::new();
    let files = CertFiles::new(&first);
    let args = files.with(&[
        "--rtmp-tls-port",
        "0",
        "--rtmp-plain",
        "false",
        "--http-tls-port",
        "0",
    ]);
    let mut server = ServerProcess::start(&strs(&args));
    let key = "renewed";
    let mut publisher = Publisher::start(
        &testdata("flv/h264_aac.flv"),
        &server.rtmps_url(key),
        &["-stream_loop", "-1"],
    );
    let mut before = wait_playlist(&server, key);
    let viewer = Viewer::start(
        server.https_port.unwrap(),
        &first.der,
        &format!("/live/{key}/index.m3u8"),
    );
    viewer.assert_goes_on("at the start");
    assert_presented(&server, &first, "at the start");

    // (a) A new pair, then SIGHUP.
    let second = Pair::new();
    files.install(&second);
    hangup(&server);
    server.assert_logged("TLS certificate reloaded on SIGHUP");
    assert_presented(&server, &second, "after SIGHUP");
    // Verified for real: a client trusting the new certificate only is served.
    let mut fresh = HttpsConnection::open(server.https_port.unwrap(), &second.der);
    let r = fresh.get(&format!("/live/{key}/index.m3u8")).expect("GET");
    assert_eq!(
        r.status, 200,
        "a new connection trusting the new certificate"
    );
    viewer.assert_goes_on("after SIGHUP");
    assert_advances(&server, key, &mut publisher, &before);
    before = wait_playlist(&server, key);

    // (b) A new certificate with the old key: the pair does not match.
    let third = Pair::new();
    files.write_cert(&third.cert_pem);
    hangup(&server);
    server.assert_logged("TLS certificate not reloaded on SIGHUP");
    let refused = log_lines(&server, "TLS certificate not reloaded on SIGHUP");
    assert!(
        refused[0].contains("do not go together"),
        "why: {refused:?}"
    );
    assert_presented(&server, &second, "after a mismatched pair");
    // A key file that holds no key.
    files.write_key("garbage, not a PEM key\n");
    hangup(&server);
    server.assert_logged_times("TLS certificate not reloaded on SIGHUP", 2);
    let refused = log_lines(&server, "TLS certificate not reloaded on SIGHUP");
    assert!(refused[1].contains("tls.key"), "why: {refused:?}");
    assert_presented(&server, &second, "after a garbage key");
    viewer.assert_goes_on("after the refused pairs");

    // (c) A new pair and no SIGHUP: the files are polled.
    let fourth = Pair::new();
    files.install(&fourth);
    server.assert_logged("TLS certificate reloaded on a file change");
    assert_presented(&server, &fourth, "after a file change");
    assert!(
        log_lines(&server, "not reloaded on a file change").is_empty(),
        "the renamed pair was read half-way:\n{}",
        server.logs()
    );
    viewer.assert_goes_on("after the file change");
    assert_advances(&server, key, &mut publisher, &before);

    // The publisher's connection and the viewer's lived through it all, and every handshake
    // completed.
    assert_eq!(server.metric("rtmp_server_publishes_total"), Some(1.0));
    assert_eq!(server.metric(&tls_failures("rtmps")), Some(0.0));
    assert_eq!(server.metric(&tls_failures("https")), Some(0.0));
    drop(viewer);

    // A stop ends the RTMPS publish as it ends a plain one: the playlist gets its end.
    assert!(server.terminate().success(), "{}", server.logs());
    let (ended, _) = finished_segments(&server, key);
    assert!(ended.ended);
    assert!(
        publisher.wait(STREAM_TIMEOUT).is_some(),
        "ffmpeg still publishing to a stopped server"
    );
}

/// Keys as openssl writes them load, and sign TLS 1.3 and TLS 1.2 handshakes on both TLS
/// listeners: RSA in PKCS#8 (`genpkey`) and PKCS#1 (`genrsa -traditional`), EC in SEC1 with
/// its parameters block first (`ecparam -genkey`). (rcgen's PKCS#8 EC and Ed25519 keys:
/// `src/tls/certs.rs`.)
#[test]
fn rsa_and_ec_keys_as_openssl_writes_them_serve_handshakes() {
    let cases: [(&str, &[&str], &str); 3] = [
        (
            "RSA PKCS#8",
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                "KEY",
            ],
            "-----BEGIN PRIVATE KEY-----",
        ),
        (
            "RSA PKCS#1",
            &["genrsa", "-traditional", "-out", "KEY", "2048"],
            "-----BEGIN RSA PRIVATE KEY-----",
        ),
        (
            "EC SEC1",
            &["ecparam", "-name", "prime256v1", "-genkey", "-out", "KEY"],
            "-----BEGIN EC PRIVATE KEY-----",
        ),
    ];
    for (what, genkey, header) in cases {
        let pair = Pair::openssl(genkey);
        assert!(pair.key_pem.contains(header), "{what}: {}", pair.key_pem);
        let files = CertFiles::new(&pair);
        let args = files.with(&["--rtmp-tls-port", "0", "--http-tls-port", "0"]);
        let mut server = ServerProcess::start(&strs(&args));
        // rustls' client, over TLS 1.3 and 1.2, on both listeners.
        for port in [server.rtmps_port.unwrap(), server.https_port.unwrap()] {
            for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
                let der = presented_certificate_over(port, version);
                assert!(der == pair.der, "{what}, {version:?}: another certificate");
            }
        }
        // OpenSSL's client, trusting the certificate.
        let o = curl(
            &files.cert,
            &[
                "-w",
                "%{http_version} %{response_code}",
                "-o",
                "/dev/null",
                &server.https_url("/healthz"),
            ],
        );
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            "2 200",
            "{what}: curl: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(server.terminate().success(), "{what}: {}", server.logs());
    }
}

/// A certificate file holding the certificate and its intermediate CA's (as public CAs
/// issue them) is presented whole: clients that trust only the root verify it on both
/// listeners, rustls' and OpenSSL's (curl).
#[test]
fn a_full_chain_is_presented_whole() {
    let (pair, root, root_pem) = Pair::chained();
    let files = CertFiles::new(&pair);
    let args = files.with(&["--rtmp-tls-port", "0", "--http-tls-port", "0"]);
    let server = ServerProcess::start(&strs(&args));
    assert_presented(&server, &pair, "a full chain");
    for port in [server.rtmps_port.unwrap(), server.https_port.unwrap()] {
        verified_handshake(port, &root).unwrap_or_else(|e| panic!("port {port}: {e}"));
    }
    let ca = files.dir().join("root.pem");
    std::fs::write(&ca, root_pem).expect("write the root");
    let o = curl(
        &ca,
        &[
            "-w",
            "%{response_code}",
            "-o",
            "/dev/null",
            &server.https_url("/healthz"),
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "200",
        "curl: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

// 4. Bad input and slow handshakes on the TLS ports.

/// `len` bytes from a fixed xorshift sequence.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// A socket to 127.0.0.1:`port` that has sent `bytes`.
fn sent(port: u16, bytes: &[u8]) -> std::net::TcpStream {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(bytes).expect("send");
    s
}

/// What is not a TLS handshake ends the connection in its handshake with a logged reason
/// and counts as a failed handshake: on RTMPS plain RTMP's C0+C1, noise, and a ClientHello
/// cut in the middle (at the handshake time-out, 2 s here); on HTTPS a plaintext HTTP/1.1
/// request, noise, and the cut ClientHello (at its fixed 10 s).
#[test]
fn what_is_not_a_tls_handshake_ends_with_a_logged_reason() {
    let files = CertFiles::new(&Pair::new());
    let args = files.with(&[
        "--rtmp-tls-port",
        "0",
        "--http-tls-port",
        "0",
        "--rtmp-handshake-timeout",
        "2",
    ]);
    let server = ServerProcess::start(&strs(&args));
    let (rtmps, https) = (server.rtmps_port.unwrap(), server.https_port.unwrap());
    let hello = client_hello();
    let cut = &hello[..hello.len() / 2];
    let mut c0c1 = vec![3u8];
    c0c1.extend(noise(1536));
    // The cases whose bytes TLS refuses say why in an alert; the cut ones are dropped.
    let mut cases = [
        ("RTMP C0+C1 to RTMPS", sent(rtmps, &c0c1), true),
        ("noise to RTMPS", sent(rtmps, &noise(1024)), true),
        ("a cut ClientHello to RTMPS", sent(rtmps, cut), false),
        (
            "HTTP/1.1 to HTTPS",
            sent(https, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"),
            true,
        ),
        ("noise to HTTPS", sent(https, &noise(1024)), true),
        ("a cut ClientHello to HTTPS", sent(https, cut), false),
    ];
    for (case, socket, alert) in &mut cases {
        let (closed, received) = read_until_closed(socket, CLOSE_TIMEOUT);
        assert!(closed, "{case}: still open after {CLOSE_TIMEOUT:?}");
        if *alert {
            assert_eq!(
                received.first(),
                Some(&0x15),
                "{case}: a TLS alert record, got {received:?}"
            );
        } else {
            assert!(received.is_empty(), "{case}: got {received:?}");
        }
    }
    // RTMPS logs at info, HTTPS at debug.
    server.assert_logged_times("connection closed: TLS: ", 2);
    server.assert_logged("connection closed: no TLS handshake within 2s");
    server.assert_logged_times("HTTPS connection ended in its TLS handshake: ", 2);
    server.assert_logged("HTTPS connection ended: no TLS handshake within 10s");
    for (needle, level) in [
        ("connection closed: TLS: ", " INFO "),
        ("no TLS handshake within 2s", " INFO "),
        ("HTTPS connection ended in its TLS handshake: ", " DEBUG "),
        ("no TLS handshake within 10s", " DEBUG "),
    ] {
        for line in log_lines(&server, needle) {
            assert!(line.contains(level), "not at{level}: {line}");
        }
    }
    for listener in ["rtmps", "https"] {
        let counted = wait_for(STREAM_TIMEOUT, || {
            server.metric(&tls_failures(listener)) == Some(3.0)
        });
        assert!(counted, "{listener}: {}", server.metrics());
    }
    // Still serving.
    assert!(!presented_certificate(rtmps).is_empty());
    assert!(!presented_certificate(https).is_empty());
}

/// A server that ends an RTMPS connection (here a client past the TLS handshake that
/// sends no RTMP handshake, at the handshake time-out) says so with close_notify (RFC 8446
/// §6.1), so the client reads a clean end of the stream, not a truncation.
#[test]
fn the_server_ends_an_rtmps_connection_with_close_notify() {
    use std::io::Read;
    let files = CertFiles::new(&Pair::new());
    let args = files.with(&["--rtmp-tls-port", "0", "--rtmp-handshake-timeout", "2"]);
    let server = ServerProcess::start(&strs(&args));
    let mut client = tls_connected(server.rtmps_port.unwrap());
    let mut rest = Vec::new();
    let end = client.read_to_end(&mut rest);
    assert!(
        matches!(end, Ok(0)),
        "the end of the connection: {end:?} after {rest:?}"
    );
    server.assert_logged("connection closed: no handshake and connect within 2s");
    assert_eq!(server.metric(&tls_failures("rtmps")), Some(0.0));
}

/// How many slow handshakes: a thousand, half on each TLS port, with the test process's
/// open-file limit raised for them (fewer where its hard limit is lower).
fn slow_handshake_count() -> usize {
    let (_, limit) = rtmp_server::server::raise_open_file_limit().expect("getrlimit");
    // Room for the other tests of this binary running beside this one.
    let room = usize::try_from(limit.saturating_sub(512)).unwrap_or(usize::MAX);
    1000.min(room) & !1
}

/// A thousand connections that send half a ClientHello and hold, while a live RTMPS stream
/// publishes: every one is dropped at its handshake time-out (10 s on both listeners),
/// the server accepts and serves new handshakes meanwhile, the stream goes on, and the
/// server's memory stays bounded.
#[test]
fn a_thousand_slow_handshakes_leave_a_live_rtmps_stream_alone() {
    let files = CertFiles::new(&Pair::new());
    let args = files.with(&[
        "--rtmp-tls-port",
        "0",
        "--http-tls-port",
        "0",
        "--rtmp-handshake-timeout",
        "10",
    ]);
    let server = ServerProcess::start(&strs(&args));
    let (rtmps, https) = (server.rtmps_port.unwrap(), server.https_port.unwrap());
    let key = "busy";
    let mut publisher = Publisher::start(
        &testdata("flv/h264_aac.flv"),
        &server.rtmps_url(key),
        &["-stream_loop", "-1"],
    );
    let before = wait_playlist(&server, key);
    let rss_before = server.rss_kib();
    let live = server.metric("rtmp_server_rtmp_connections").unwrap();

    let count = slow_handshake_count();
    let hello = client_hello();
    let cut = &hello[..hello.len() / 2];
    let started = Instant::now();
    let mut slow: Vec<std::net::TcpStream> = (0..count)
        .map(|i| sent(if i % 2 == 0 { rtmps } else { https }, cut))
        .collect();
    let opened = started.elapsed();

    // All held at once, and the server still takes new connections and handshakes.
    let held = wait_for(STREAM_TIMEOUT, || {
        server.metric("rtmp_server_rtmp_connections") >= Some(live + (count / 2) as f64)
    });
    assert!(held, "the RTMPS connections held: {}", server.metrics());
    assert!(!presented_certificate(rtmps).is_empty(), "RTMPS handshake");
    assert!(!presented_certificate(https).is_empty(), "HTTPS handshake");
    assert_eq!(get(&server.http_url("/healthz")).status, 200);
    let rss_held = server.rss_kib();

    // Every one dropped by the server at its time-out.
    for (i, socket) in slow.iter_mut().enumerate() {
        let left = (started + CLOSE_TIMEOUT).saturating_duration_since(Instant::now());
        let (closed, _) = read_until_closed(socket, left);
        assert!(
            closed,
            "slow handshake {i} of {count} still open {CLOSE_TIMEOUT:?} after the first \
             (opened in {opened:?})"
        );
    }
    let gone = wait_for(STREAM_TIMEOUT, || {
        server.metric("rtmp_server_rtmp_connections") == Some(live)
    });
    assert!(gone, "RTMPS connections left: {}", server.metrics());
    let counted = wait_for(STREAM_TIMEOUT, || {
        server.metric(&tls_failures("rtmps")) == Some((count / 2) as f64)
            && server.metric(&tls_failures("https")) == Some((count / 2) as f64)
    });
    assert!(counted, "{}", server.metrics());

    assert_advances(&server, key, &mut publisher, &before);
    let rss_after = server.rss_kib();
    let bound = rss_before + 64 * 1024;
    assert!(
        rss_held <= bound && rss_after <= bound,
        "RSS {rss_before} KiB before, {rss_held} KiB with {count} slow handshakes, \
         {rss_after} KiB after"
    );
    eprintln!(
        "{count} slow handshakes: RSS {rss_before} KiB before, {rss_held} KiB held, \
         {rss_after} KiB after"
    );
}

/// How long an HTTP/2 connection may carry no request before the server closes it
/// (`http::idle::IDLE_LIMIT`).
const H2_IDLE_LIMIT: Duration = Duration::from_secs(60);

/// HTTP/2 connections that carry no request are closed and give their place back: one
/// silent after the TLS handshake, without even the connection preface (hyper waits for it
/// without end, and pings only after it), at the idle limit; one that sent the preface and
/// answers nothing, by then too (at the latest).
#[test]
fn http2_connections_that_carry_no_request_are_closed() {
    let pair = Pair::new();
    let files = CertFiles::new(&pair);
    let server = ServerProcess::start(&strs(&files.with(&["--http-tls-port", "0"])));
    let port = server.https_port.unwrap();
    let mut silent = H2Connection::handshake(port, &pair.der);
    let mut prefaced = H2Connection::handshake(port, &pair.der);
    prefaced.start().expect("preface");

    let started = Instant::now();
    let limit = H2_IDLE_LIMIT + CLOSE_TIMEOUT;
    for (case, conn) in [("silent", &mut silent), ("preface only", &mut prefaced)] {
        let left = (started + limit).saturating_duration_since(Instant::now());
        let (closed, _) = read_until_closed(conn.socket(), left);
        assert!(closed, "{case}: still open after {limit:?}");
    }
    server.assert_logged("HTTPS connection closed: no request for 60s");
    let freed = wait_for(STREAM_TIMEOUT, || {
        // The one connection left is the one asking for the metrics.
        server.metric("rtmp_server_http_connections") == Some(1.0)
    });
    assert!(freed, "{}", server.metrics());
}

// 5. The healthcheck over HTTPS.

/// `rtmp-server healthcheck args...`, its exit status and stderr.
fn healthcheck(args: &[String]) -> (std::process::ExitStatus, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rtmp-server"))
        .arg("healthcheck")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("rtmp-server runs");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// With only TLS listeners, `rtmp-server healthcheck`, given the same flags, asks over
/// HTTPS and exits 0; with nothing listening it exits non-zero.
#[test]
fn the_healthcheck_asks_over_https_when_only_tls_listens() {
    let files = CertFiles::new(&Pair::new());
    let args = files.with(&[
        "--rtmp-plain",
        "false",
        "--rtmp-tls-port",
        "0",
        "--http-plain",
        "false",
        "--http-tls-port",
        "0",
    ]);
    let mut server = ServerProcess::start(&strs(&args));
    assert_eq!((server.rtmp_port, server.http_port), (0, 0), "plain off");
    let port = server.https_port.unwrap().to_string();
    let probe = files.with(&["--http-plain", "false", "--http-tls-port", &port]);
    let (status, stderr) = healthcheck(&probe);
    assert!(status.success(), "healthcheck: {status} {stderr}");

    assert!(server.terminate().success(), "{}", server.logs());
    let (status, stderr) = healthcheck(&probe);
    assert!(!status.success(), "healthcheck with nothing listening");
    assert!(stderr.contains("unhealthy"), "{stderr}");
}

// 6. Start-up refusals.

/// `rtmp-server serve` with test defaults and `args`: its exit status and stderr once it
/// exits (it must, within START_TIMEOUT).
fn refused(args: &[String]) -> (std::process::ExitStatus, String) {
    let root = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rtmp-server"))
        .args(["serve", "--bind", "127.0.0.1", "--rtmp-port", "0"])
        .args(["--http-port", "0", "--media-root"])
        .arg(root.path())
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rtmp-server runs");
    let mut status = None;
    wait_for(START_TIMEOUT, || {
        status = child.try_wait().expect("wait");
        status.is_some()
    });
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the server started with {args:?}");
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).expect("stderr");
    (status, stderr)
}

fn owned(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// The server does not start when a side would not listen, when a TLS listener has no
/// certificate, or when the certificate or key does not load; each refusal names the option
/// or the file.
#[test]
fn tls_settings_that_cannot_serve_are_refused_at_start() {
    let pair = Pair::new();
    let files = CertFiles::new(&pair);
    let other = Pair::new();
    let mismatched = CertFiles::new(&pair);
    mismatched.write_key(&other.key_pem);
    let garbage = CertFiles::new(&pair);
    garbage.write_key("not a key\n");
    let missing = files.dir().join("missing.pem");
    let cases: Vec<(&str, Vec<String>, Vec<String>)> = vec![
        (
            "plain RTMP off and no RTMPS",
            owned(&["--rtmp-plain", "false"]),
            owned(&["rtmp.plain", "nothing would listen"]),
        ),
        (
            "plain HTTP off and no HTTPS",
            owned(&["--http-plain", "false"]),
            owned(&["http.plain", "nothing would listen"]),
        ),
        (
            "RTMPS without a certificate",
            owned(&["--rtmp-tls-port", "0"]),
            owned(&["tls.cert"]),
        ),
        (
            "HTTPS without a key",
            owned(&["--http-tls-port", "0", "--tls-cert", &path_arg(&files.cert)]),
            owned(&["tls.key"]),
        ),
        (
            "a certificate file that is not there",
            owned(&[
                "--rtmp-tls-port",
                "0",
                "--tls-cert",
                &path_arg(&missing),
                "--tls-key",
                &path_arg(&files.key),
            ]),
            owned(&["tls.cert", &path_arg(&missing)]),
        ),
        (
            "a certificate with another key",
            mismatched.with(&["--rtmp-tls-port", "0"]),
            owned(&["do not go together", &path_arg(&mismatched.key)]),
        ),
        (
            "a key file with no key",
            garbage.with(&["--http-tls-port", "0"]),
            owned(&["tls.key", &path_arg(&garbage.key)]),
        ),
    ];
    for (case, args, named) in cases {
        let (status, stderr) = refused(&args);
        assert!(!status.success(), "{case}: exit {status}");
        for name in named {
            assert!(stderr.contains(&name), "{case}: {name:?} not in {stderr}");
        }
    }
}

/// SIGHUP never ends the server: without a TLS listener there is nothing to reload, and it
/// says so.
#[test]
fn a_hangup_without_tls_is_logged_and_the_server_runs_on() {
    let mut server = ServerProcess::start(&[]);
    hangup(&server);
    server.assert_logged("SIGHUP: no TLS listener, nothing to reload");
    assert!(server.is_running(), "{}", server.logs());
    assert_eq!(get(&server.http_url("/healthz")).status, 200);
}

/// A listener that cannot bind names its option (here: RTMPS on the plain RTMP port).
#[test]
fn a_port_taken_is_refused_naming_the_option() {
    let pair = Pair::new();
    let files = CertFiles::new(&pair);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("address").port().to_string();
    let (status, stderr) = refused(&files.with(&["--rtmp-tls-port", &port]));
    assert!(!status.success(), "exit {status}");
    assert!(stderr.contains("rtmp.tls_port"), "{stderr}");
}
