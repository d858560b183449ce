//! Server-wide counters and gauges, exposed at `/metrics` in the Prometheus text format.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The `reason` label of rejected publishes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

/// Every figure the server counts. Cheap to update from any task (atomics).
#[derive(Default)]
pub struct Metrics {
    pub rtmp_connections: Gauge,
    pub rtmp_connections_total: Counter,
    pub rtmp_connections_refused_total: Counter,
    pub rtmp_bytes_in_total: Counter<u64, AtomicU64>,
    pub streams_live: Gauge,
    pub publishes_total: Counter,
    pub publishes_rejected_total: Family<ReasonLabel, Counter>,
    pub segments_total: Counter,
}

impl Metrics {
    /// Registers every metric under the `rtmp_server` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("rtmp_server");
        r.register(
            "rtmp_connections",
            "RTMP connections open now",
            self.rtmp_connections.clone(),
        );
        r.register(
            "rtmp_connections",
            "RTMP connections accepted",
            self.rtmp_connections_total.clone(),
        );
        r.register(
            "rtmp_connections_refused",
            "RTMP connections refused at accept (rtmp.max_connections reached)",
            self.rtmp_connections_refused_total.clone(),
        );
        r.register(
            "rtmp_bytes_in",
            "Bytes received from RTMP clients",
            self.rtmp_bytes_in_total.clone(),
        );
        r.register(
            "streams_live",
            "Streams with a publisher now",
            self.streams_live.clone(),
        );
        r.register(
            "publishes",
            "Publishes accepted",
            self.publishes_total.clone(),
        );
        r.register(
            "publishes_rejected",
            "Publishes refused, by reason",
            self.publishes_rejected_total.clone(),
        );
        r.register(
            "segments",
            "HLS segments produced",
            self.segments_total.clone(),
        );
    }

    pub fn reject(&self, reason: &'static str) {
        self.publishes_rejected_total
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }
}
