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

/// Reloads `store` on SIGHUP and when its files change, until `stop`. A change is acted on
/// once the files have stayed the same for one look (a renewal writes the certificate and
/// the key one after the other). A pair that does not load is logged once per change of the
/// files, and the certificate in use stays.
pub async fn run(store: Arc<CertStore>, stop: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            warn!("SIGHUP not handled ({e}): the certificate reloads when its files change");
            None
        }
    };
    let mut seen = versions(store.paths());
    let mut changed = None;
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let cause = tokio::select! {
            _ = stop.cancelled() => return,
            _ = async { hangup.as_mut()?.recv().await }, if hangup.is_some() => "SIGHUP",
            _ = tick.tick() => {
                let now = versions(store.paths());
                if now == seen || changed.replace(now.clone()) != Some(now) {
                    continue;
                }
                "a file change"
            }
        };
        changed = None;
        seen = versions(store.paths());
        reload(&store, cause);
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
