//! Reloads the certificate when asked (SIGHUP) and when its files change, so a renewed
//! certificate (certbot, cert-manager) is presented without a restart and without dropping a
//! connection.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::certs::{CertPaths, CertStore};

/// How often the files are looked at. Renewals happen days ahead of expiry; a few seconds
/// is prompt, and two `stat`s each time cost nothing.
const POLL: Duration = Duration::from_secs(2);

/// What identifies a version of a file: where it is (a renewal that replaces it by rename
/// gives a new inode), its size and when it was last written.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Version {
    inode: u64,
    len: u64,
    modified: Option<SystemTime>,
}

fn version(path: &Path) -> Option<Version> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some(Version {
        inode: meta.ino(),
        len: meta.len(),
        modified: meta.modified().ok(),
    })
}

fn versions(paths: &CertPaths) -> (Option<Version>, Option<Version>) {
    (version(&paths.cert), version(&paths.key))
}

/// Listens for SIGHUP. Installed before the server says it listens, so a SIGHUP never
/// ends the process (its default action), TLS or not.
pub fn hangups() -> Option<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            warn!("SIGHUP not handled ({e}): the certificate reloads when its files change");
            None
        }
    }
}

/// Reloads `store` on SIGHUP and when its files change, until `stop`. A change is acted on
/// once the files have stayed the same for one look (a renewal writes the certificate and
/// the key one after the other). A pair that does not load is logged once per change of the
/// files, and the certificate in use stays. Without a certificate (no TLS listener), a
/// SIGHUP is only logged.
pub async fn run(
    store: Option<Arc<CertStore>>,
    mut hangup: Option<tokio::signal::unix::Signal>,
    stop: CancellationToken,
) {
    let paths = store.as_ref().map(|s| s.paths().clone());
    let mut seen = paths.as_ref().map(versions);
    let mut changed = None;
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let cause = tokio::select! {
            _ = stop.cancelled() => return,
            _ = async { hangup.as_mut()?.recv().await }, if hangup.is_some() => "SIGHUP",
            _ = tick.tick(), if paths.is_some() => {
                let now = paths.as_ref().map(versions);
                if now == seen || changed.replace(now.clone()) != Some(now) {
                    continue;
                }
                "a file change"
            }
        };
        let Some(store) = &store else {
            info!("SIGHUP: no TLS listener, nothing to reload");
            continue;
        };
        changed = None;
        seen = paths.as_ref().map(versions);
        reload(store, cause);
    }
}

fn reload(store: &CertStore, cause: &str) {
    let paths = store.paths();
    match store.reload() {
        Ok(()) => info!(
            cert = %paths.cert.display(),
            key = %paths.key.display(),
            "TLS certificate reloaded on {cause}: new connections get it"
        ),
        Err(e) => warn!("TLS certificate not reloaded on {cause}, the one in use stays: {e}"),
    }
}
