//! TLS for the end-to-end tests: certificate and key files for `localhost` and 127.0.0.1
//! (made with rcgen, or with openssl for the key formats rcgen does not write), replaced the
//! way a renewal replaces them; rustls clients that record the certificate a server presents,
//! keep an HTTPS connection alive, or send a ClientHello and nothing more; curl over HTTPS.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme,
    SupportedProtocolVersion,
};

use super::START_TIMEOUT;
use super::http::Response;

/// The names every test certificate is for: what the tests connect to.
const NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// A certificate and its key as PEM, and the certificate's DER (what a client is shown).
#[derive(Clone)]
pub struct Pair {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
}

impl Pair {
    /// A new self-signed ECDSA P-256 certificate for `localhost` and 127.0.0.1.
    pub fn new() -> Pair {
        let made = rcgen::generate_simple_self_signed(NAMES.map(String::from).to_vec())
            .expect("rcgen makes a certificate");
        Pair {
            cert_pem: made.cert.pem(),
            key_pem: made.signing_key.serialize_pem(),
            der: made.cert.der().to_vec(),
        }
    }

    /// A certificate for `localhost` and 127.0.0.1 issued by an intermediate CA that a root
    /// CA issued, as a public CA issues one: the certificate file holds the certificate and
    /// then the intermediate's (a "full chain"). Also returns the root, which is not in the
    /// file (what a client trusts), as DER and as PEM.
    pub fn chained() -> (Pair, Vec<u8>, String) {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
        let ca = |name: &str| {
            let mut params = CertificateParams::new(Vec::new()).expect("params");
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            params
        };
        let root = CertifiedIssuer::self_signed(ca("test root"), KeyPair::generate().unwrap())
            .expect("root CA");
        let intermediate = CertifiedIssuer::signed_by(
            ca("test intermediate"),
            KeyPair::generate().unwrap(),
            &root,
        )
        .expect("intermediate CA");
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(NAMES.map(String::from).to_vec()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let leaf = params.signed_by(&key, &intermediate).expect("leaf");
        let pair = Pair {
            cert_pem: leaf.pem() + &intermediate.pem(),
            key_pem: key.serialize_pem(),
            der: leaf.der().to_vec(),
        };
        (pair, root.der().to_vec(), root.pem())
    }

    /// A certificate for a key `openssl` writes with `genkey` (its arguments after
    /// `openssl`, `KEY` standing for the key file), self-signed by `openssl req -x509`: the
    /// key stays in the PEM form the command wrote (PKCS#8, PKCS#1 or SEC1).
    pub fn openssl(genkey: &[&str]) -> Pair {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = dir.path().join("key.pem");
        let cert = dir.path().join("cert.pem");
        let out = Command::new("openssl")
            .args(genkey.iter().map(|a| match *a {
                "KEY" => key.as_os_str(),
                a => a.as_ref(),
            }))
            .output()
            .expect("openssl is installed");
        assert_ok(&out, &format!("openssl {genkey:?}"));
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-new",
                "-days",
                "2",
                "-subj",
                "/CN=localhost",
            ])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            .arg("-key")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl is installed");
        assert_ok(&out, "openssl req -x509");
        let cert_pem = std::fs::read_to_string(&cert).expect("openssl wrote the certificate");
        let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .expect("a PEM certificate")
            .to_vec();
        Pair {
            cert_pem,
            key_pem: std::fs::read_to_string(&key).expect("openssl wrote the key"),
            der,
        }
    }
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `tls.cert` and `tls.key` files in a folder of their own, holding [`Pair`]s.
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    dir: tempfile::TempDir,
}

impl CertFiles {
    /// Files holding `pair`.
    pub fn new(pair: &Pair) -> CertFiles {
        let dir = tempfile::tempdir().expect("temp dir");
        let files = CertFiles {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
            dir,
        };
        files.install(pair);
        files
    }

    /// `--tls-cert CERT --tls-key KEY`.
    pub fn flags(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            path_arg(&self.cert),
            "--tls-key".into(),
            path_arg(&self.key),
        ]
    }

    /// `args`, then [`CertFiles::flags`].
    pub fn with(&self, args: &[&str]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string())
            .chain(self.flags())
            .collect()
    }

    /// Replaces both files by `pair`'s, the certificate first, as a renewal does.
    pub fn install(&self, pair: &Pair) {
        self.write_cert(&pair.cert_pem);
        self.write_key(&pair.key_pem);
    }

    /// Replaces the certificate file (written aside, then renamed over it).
    pub fn write_cert(&self, pem: &str) {
        replace(&self.cert, pem.as_bytes());
    }

    /// Replaces the key file (written aside, then renamed over it).
    pub fn write_key(&self, pem: &str) {
        replace(&self.key, pem.as_bytes());
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// A path as a command-line argument.
pub fn path_arg(path: &Path) -> String {
    path.to_str().expect("a UTF-8 temp path").to_string()
}

/// `args` as `&str`s, for [`super::ServerProcess::start`].
pub fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Writes `bytes` to a file beside `path`, then renames it over `path`: readers see the old
/// file or the new one, never half of one.
pub fn replace(path: &Path, bytes: &[u8]) {
    let aside = path.with_extension("new");
    std::fs::write(&aside, bytes).expect("write beside");
    std::fs::rename(&aside, path).expect("rename over");
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration that takes any certificate (checking the handshake's signatures
/// with it as usual) and records the server's certificate in `seen`.
fn recording_config(
    seen: Arc<Mutex<Option<Vec<u8>>>>,
    versions: &[&'static SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let provider = provider();
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .expect("ring supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Recording { provider, seen }))
        .with_no_client_auth();
    Arc::new(config)
}

/// A client configuration that trusts `trusted` (a self-signed certificate) only.
pub fn trusting(trusted: &[u8], alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(trusted.to_vec()))
        .expect("a certificate rustls reads");
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").expect("a valid name")
}

fn connect(port: u16) -> TcpStream {
    let socket = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    socket
        .set_read_timeout(Some(START_TIMEOUT))
        .expect("read timeout");
    socket
        .set_write_timeout(Some(START_TIMEOUT))
        .expect("write timeout");
    socket
}

/// The DER of the certificate a fresh TLS handshake with 127.0.0.1:`port` is shown, once
/// the handshake completed (its signature made with that certificate's key).
pub fn presented_certificate(port: u16) -> Vec<u8> {
    try_presented_certificate(port, rustls::DEFAULT_VERSIONS)
        .unwrap_or_else(|e| panic!("TLS handshake on {port}: {e}"))
}

/// [`presented_certificate`] over one TLS version only.
pub fn presented_certificate_over(
    port: u16,
    version: &'static SupportedProtocolVersion,
) -> Vec<u8> {
    try_presented_certificate(port, &[version])
        .unwrap_or_else(|e| panic!("{version:?} handshake on {port}: {e}"))
}

/// [`presented_certificate`] over `versions`, with a failed handshake as an error.
pub fn try_presented_certificate(
    port: u16,
    versions: &[&'static SupportedProtocolVersion],
) -> Result<Vec<u8>, String> {
    let seen = Arc::new(Mutex::new(None));
    let mut conn = ClientConnection::new(recording_config(seen.clone(), versions), localhost())
        .map_err(|e| e.to_string())?;
    let mut socket = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(START_TIMEOUT))
        .map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        conn.complete_io(&mut socket).map_err(|e| e.to_string())?;
    }
    conn.send_close_notify();
    let _ = conn.complete_io(&mut socket);
    let der = seen.lock().unwrap().take();
    der.ok_or_else(|| "no certificate seen".into())
}

/// A TLS connection to 127.0.0.1:`port` past its handshake (any certificate taken), for a
/// test to speak through or to read until the server ends it.
pub fn tls_connected(port: u16) -> rustls::StreamOwned<ClientConnection, TcpStream> {
    let seen = Arc::new(Mutex::new(None));
    let mut conn = ClientConnection::new(
        recording_config(seen, rustls::DEFAULT_VERSIONS),
        localhost(),
    )
    .expect("a client");
    let mut socket = connect(port);
    while conn.is_handshaking() {
        conn.complete_io(&mut socket).expect("TLS handshake");
    }
    rustls::StreamOwned::new(conn, socket)
}

/// Completes a TLS handshake with 127.0.0.1:`port` as `localhost`, verifying the server's
/// certificate against `trusted` (a root it must chain to) as a client does.
pub fn verified_handshake(port: u16, trusted: &[u8]) -> Result<(), String> {
    let mut conn =
        ClientConnection::new(trusting(trusted, &[]), localhost()).map_err(|e| e.to_string())?;
    let mut socket = connect(port);
    while conn.is_handshaking() {
        conn.complete_io(&mut socket).map_err(|e| e.to_string())?;
    }
    conn.send_close_notify();
    let _ = conn.complete_io(&mut socket);
    Ok(())
}

/// The first TLS record a rustls client sends: its ClientHello.
pub fn client_hello() -> Vec<u8> {
    let seen = Arc::new(Mutex::new(None));
    let mut conn = ClientConnection::new(
        recording_config(seen, rustls::DEFAULT_VERSIONS),
        localhost(),
    )
    .expect("a client");
    let mut hello = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut hello).expect("into a Vec");
    }
    assert_eq!(hello[0], 0x16, "a handshake record");
    hello
}

/// Takes any certificate and records it; checks the handshake's signatures with it.
#[derive(Debug)]
struct Recording {
    provider: Arc<CryptoProvider>,
    seen: Arc<Mutex<Option<Vec<u8>>>>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.seen.lock().unwrap() = Some(end_entity.to_vec());
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// One HTTPS connection (HTTP/1.1, kept alive) over rustls, verifying the server's
/// certificate against the one it was given.
pub struct HttpsConnection {
    stream: BufReader<rustls::StreamOwned<ClientConnection, TcpStream>>,
}

impl HttpsConnection {
    pub fn open(port: u16, trusted: &[u8]) -> HttpsConnection {
        let conn = ClientConnection::new(trusting(trusted, &[b"http/1.1"]), localhost())
            .expect("a client");
        HttpsConnection {
            stream: BufReader::new(rustls::StreamOwned::new(conn, connect(port))),
        }
    }

    /// `GET path` on this connection; an error when the connection failed or closed.
    pub fn get(&mut self, path: &str) -> std::io::Result<Response> {
        let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        let stream = self.stream.get_mut();
        stream.write_all(request.as_bytes())?;
        stream.flush()?;
        let mut line = String::new();
        self.read_line(&mut line)?;
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(format!("status line {line:?}")))?;
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.read_line(&mut line)?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header
                .split_once(':')
                .ok_or_else(|| bad(format!("header {header:?}")))?;
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
        let response = Response {
            status,
            headers,
            body: Vec::new(),
        };
        let body = if let Some(len) = response.header("content-length") {
            let len = len.parse().map_err(|_| bad(format!("length {len:?}")))?;
            let mut body = vec![0; len];
            self.stream.read_exact(&mut body)?;
            body
        } else if response
            .header("transfer-encoding")
            .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
        {
            self.read_chunked()?
        } else {
            return Err(bad("a response with neither length nor chunks".into()));
        };
        Ok(Response { body, ..response })
    }

    fn read_line(&mut self, line: &mut String) -> std::io::Result<()> {
        if self.stream.read_line(line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }

    fn read_chunked(&mut self) -> std::io::Result<Vec<u8>> {
        let mut body = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            self.read_line(&mut line)?;
            let size = line.trim_end().split(';').next().unwrap_or_default();
            let size =
                usize::from_str_radix(size, 16).map_err(|_| bad(format!("chunk size {line:?}")))?;
            if size == 0 {
                // Trailers, if any, end with an empty line.
                loop {
                    line.clear();
                    self.read_line(&mut line)?;
                    if line.trim_end().is_empty() {
                        return Ok(body);
                    }
                }
            }
            let start = body.len();
            body.resize(start + size, 0);
            self.stream.read_exact(&mut body[start..])?;
            line.clear();
            self.read_line(&mut line)?;
        }
    }
}

fn bad(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

/// One HTTP/2 connection (ALPN h2) over rustls, spoken frame by frame (RFC 9113): past
/// the TLS handshake, and with the connection preface sent or not.
pub struct H2Connection {
    stream: rustls::StreamOwned<ClientConnection, TcpStream>,
}

/// The connection preface a client sends first (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

impl H2Connection {
    /// Completes the TLS handshake with ALPN h2 (and asserts it was agreed on), and sends
    /// nothing more.
    pub fn handshake(port: u16, trusted: &[u8]) -> H2Connection {
        let mut conn =
            ClientConnection::new(trusting(trusted, &[b"h2"]), localhost()).expect("a client");
        let mut socket = connect(port);
        while conn.is_handshaking() {
            conn.complete_io(&mut socket).expect("TLS handshake");
        }
        assert_eq!(conn.alpn_protocol(), Some(&b"h2"[..]), "ALPN h2 agreed");
        H2Connection {
            stream: rustls::StreamOwned::new(conn, socket),
        }
    }

    /// The TCP socket under TLS.
    pub fn socket(&mut self) -> &mut TcpStream {
        &mut self.stream.sock
    }

    /// Sends the preface and empty SETTINGS (RFC 9113 §3.4).
    pub fn start(&mut self) -> std::io::Result<()> {
        self.stream.write_all(H2_PREFACE)?;
        self.frame(4, 0, 0, &[])
    }

    fn frame(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) -> std::io::Result<()> {
        let mut frame = (payload.len() as u32).to_be_bytes()[1..].to_vec();
        frame.extend_from_slice(&[kind, flags]);
        frame.extend_from_slice(&stream.to_be_bytes());
        frame.extend_from_slice(payload);
        self.stream.write_all(&frame)?;
        self.stream.flush()
    }
}

/// `curl -sS --cacert CA args...`: its output, and whether it succeeded.
pub fn curl(ca: &Path, args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "60", "--cacert"])
        .arg(ca)
        .args(args)
        .output()
        .expect("curl is installed")
}
