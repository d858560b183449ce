//! The server's certificate: read from `tls.cert` and `tls.key`, presented by every TLS
//! listener, and replaced in place by a reload. A connection keeps the certificate it
//! shook hands with; the next handshake gets the new one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Why a certificate and key did not load; the message names the file.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("tls.cert {path}: {message}")]
    Chain { path: PathBuf, message: String },
    #[error("tls.key {path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("tls.cert {cert} and tls.key {key} do not go together: {message}")]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        message: String,
    },
}

/// Where the certificate chain and its key are read from.
#[derive(Clone, Debug)]
pub struct CertPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The certificate the TLS listeners present, replaceable while they run.
#[derive(Debug)]
pub struct CertStore {
    paths: CertPaths,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertStore {
    /// Reads the pair at `paths`; the server does not start without one that loads.
    pub fn open(paths: CertPaths, provider: Arc<CryptoProvider>) -> Result<CertStore, CertError> {
        let current = load(&paths, &provider)?;
        Ok(CertStore {
            paths,
            provider,
            current: RwLock::new(Arc::new(current)),
        })
    }

    pub fn paths(&self) -> &CertPaths {
        &self.paths
    }

    /// Reads the files again and, when the pair loads, presents it from the next handshake
    /// on. A pair that does not load leaves the one in use in place.
    pub fn reload(&self) -> Result<(), CertError> {
        let fresh = Arc::new(load(&self.paths, &self.provider)?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    /// The certificate chain presented now (the server's certificate first).
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.certified().cert.clone()
    }

    fn certified(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// One certificate for every name a client asks for (SNI is not used to choose).
impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.certified())
    }
}

/// Reads a PEM chain and a PEM key (PKCS#8, PKCS#1 RSA or SEC1 EC) and checks that the key
/// is the first certificate's.
pub fn load(paths: &CertPaths, provider: &CryptoProvider) -> Result<CertifiedKey, CertError> {
    let chain = read_chain(&paths.cert)?;
    let key = PrivateKeyDer::from_pem_file(&paths.key).map_err(|e| CertError::Key {
        path: paths.key.clone(),
        message: match std::fs::read(&paths.key) {
            Ok(text) if text.windows(9).any(|w| w == b"ENCRYPTED") => {
                "an encrypted key: the server reads unencrypted keys only (openssl pkey -in KEY \
                 -out PLAIN_KEY decrypts one)"
                    .into()
            }
            _ => pem_message(e),
        },
    })?;
    let pair = |message: String| CertError::Pair {
        cert: paths.cert.clone(),
        key: paths.key.clone(),
        message,
    };
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| CertError::Key {
            path: paths.key.clone(),
            message: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(e) => Err(pair(e.to_string())),
    }
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let bad = |message: String| CertError::Chain {
        path: path.to_path_buf(),
        message,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(pem_message(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(pem_message(e)))?;
    if chain.is_empty() {
        return Err(bad("no CERTIFICATE block".into()));
    }
    Ok(chain)
}

fn pem_message(e: rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::NoItemsFound => "no PEM block of that kind".into(),
        rustls::pki_types::pem::Error::Io(e) => e.to_string(),
        e => format!("{e:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> (CertPaths, rcgen::CertifiedKey<rcgen::KeyPair>) {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let paths = CertPaths {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        std::fs::write(&paths.cert, made.cert.pem()).unwrap();
        std::fs::write(&paths.key, made.signing_key.serialize_pem()).unwrap();
        (paths, made)
    }

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    #[test]
    fn a_reload_presents_the_new_pair_and_a_bad_one_keeps_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let (paths, first) = write_pair(dir.path(), "a");
        let store = CertStore::open(paths.clone(), provider()).unwrap();
        assert_eq!(store.chain()[0].as_ref(), first.cert.der().as_ref());

        // A new certificate with the old key: the pair does not match, the old one stays.
        let (other, second) = write_pair(dir.path(), "b");
        std::fs::copy(&other.cert, &paths.cert).unwrap();
        let e = store.reload().unwrap_err();
        assert!(matches!(e, CertError::Pair { .. }), "{e}");
        assert_eq!(store.chain()[0].as_ref(), first.cert.der().as_ref());

        // Its key too: now presented.
        std::fs::copy(&other.key, &paths.key).unwrap();
        store.reload().unwrap();
        assert_eq!(store.chain()[0].as_ref(), second.cert.der().as_ref());

        // A truncated key file and a chain with no certificate are refused, naming the file.
        std::fs::write(&paths.key, "-----BEGIN PRIVATE KEY-----\nAAAA\n").unwrap();
        let e = store.reload().unwrap_err().to_string();
        assert!(e.starts_with("tls.key"), "{e}");
        std::fs::write(
            &paths.key,
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        )
        .unwrap();
        let e = store.reload().unwrap_err().to_string();
        assert!(e.contains("an encrypted key"), "{e}");
        std::fs::write(&paths.cert, "not a certificate").unwrap();
        let e = store.reload().unwrap_err().to_string();
        assert!(e.contains("no CERTIFICATE block"), "{e}");
        assert_eq!(store.chain()[0].as_ref(), second.cert.der().as_ref());
    }

    /// The key kinds rcgen makes (PKCS#8); RSA, PKCS#1 and SEC1 keys are made by openssl in
    /// `tests/tls.rs`.
    #[test]
    fn ec_and_ed25519_keys_load() {
        let dir = tempfile::tempdir().unwrap();
        for alg in [
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_ECDSA_P384_SHA384,
            &rcgen::PKCS_ED25519,
        ] {
            let key = rcgen::KeyPair::generate_for(alg).unwrap();
            let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            let paths = CertPaths {
                cert: dir.path().join("c.pem"),
                key: dir.path().join("k.pem"),
            };
            std::fs::write(&paths.cert, cert.pem()).unwrap();
            std::fs::write(&paths.key, key.serialize_pem()).unwrap();
            load(&paths, &provider()).unwrap();
        }
    }
}
