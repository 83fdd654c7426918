//! Process-wide metrics on `prometheus-client`, rendered on the admin
//! listener in the OpenMetrics text format.
//!
//! Every family has a typed label set: a label can only take the values its
//! type allows (an enum for outcomes and reasons, a name from the manifest
//! for workers and hostnames), so no client, guest or error text can create
//! a new series.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};
use std::sync::{Arc, OnceLock};

/// Upper bounds (seconds) of the latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of `sigil_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The worker, or `-` when no worker was chosen.
    pub worker: Arc<str>,
    /// The response status.
    pub status: u16,
}

/// A label set of one worker name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkerLabel {
    /// The worker, or `-` when no worker was chosen.
    pub worker: Arc<str>,
}

/// Why a request failed inside a worker.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types, missing_docs)]
pub enum WorkerErrorKind {
    cpu_limit,
    memory_limit,
    timeout,
    response_too_large,
    panic,
    trap,
    handler_error,
    capacity,
    loop_detected,
    invalid_response,
}

/// Where a worker's output went.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum WorkerStream {
    /// `sigil.log` (the SDK's `log` functions).
    log,
    /// WASI stdout (`println!`).
    stdout,
    /// WASI stderr (`eprintln!`).
    stderr,
}

impl WorkerStream {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerStream::log => "log",
            WorkerStream::stdout => "stdout",
            WorkerStream::stderr => "stderr",
        }
    }
}

/// Labels of `sigil_worker_output_truncated_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkerOutputLabels {
    /// The worker.
    pub worker: Arc<str>,
    /// The stream that was cut.
    pub stream: WorkerStream,
}

/// Labels of `sigil_worker_errors_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkerErrorLabels {
    /// The worker.
    pub worker: Arc<str>,
    /// What went wrong.
    pub kind: WorkerErrorKind,
}

/// How a subrequest ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types, missing_docs)]
pub enum SubrequestOutcome {
    ok,
    unknown_binding,
    host_not_allowed,
    subrequest_limit,
    invalid_request,
    connect_failed,
    untrusted_origin,
    client_cert_refused,
    timeout,
    response_too_large,
    other,
}

/// Labels of `sigil_subrequests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SubrequestLabels {
    /// The calling worker.
    pub worker: Arc<str>,
    /// The binding the worker named (one of its own), `none`, or `-`.
    pub binding: Arc<str>,
    /// How it ended.
    pub outcome: SubrequestOutcome,
}

/// How an inbound TLS handshake ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum HandshakeResult {
    /// Completed.
    ok,
    /// The client took longer than the handshake timeout.
    timeout,
    /// The first bytes were not a TLS client hello.
    bad_client_hello,
    /// The SNI names no configured hostname and there is no default hostname.
    unknown_sni,
    /// No SNI and no default hostname.
    no_sni,
    /// No client certificate where one is required.
    no_certificate,
    /// The client certificate (or one of its chain) has expired.
    expired,
    /// The client certificate is not valid yet.
    not_yet_valid,
    /// No path to the hostname's client CAs.
    unknown_issuer,
    /// A self-signed client certificate.
    self_signed,
    /// Revoked by a configured CRL.
    revoked,
    /// A signature in the chain does not verify.
    bad_signature,
    /// The certificate may not be used for client authentication.
    bad_purpose,
    /// The verified path is longer than `max_chain_depth`.
    chain_too_long,
    /// The client sent a TLS alert (for example, it refused our certificate).
    client_alert,
    /// No common protocol version, cipher suite or other TLS parameter.
    protocol,
    /// The connection ended during the handshake.
    connection_closed,
    /// Anything else.
    other,
}

/// Labels of `sigil_tls_handshakes_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandshakeLabels {
    /// A configured hostname, or `unknown` when none was chosen.
    pub hostname: Arc<str>,
    /// `ok`, or why the handshake failed.
    pub result: HandshakeResult,
}

/// How a reload ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types, missing_docs)]
pub enum ReloadResult {
    ok,
    failed,
}

/// Labels of `sigil_reload_ignored_settings_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SettingLabel {
    /// A `[server]` key that applies only at start (`server.https`, ...).
    pub key: Arc<str>,
}

/// Labels of `sigil_reloads_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// How it ended.
    pub result: ReloadResult,
}

/// Labels of `sigil_certificate_not_after_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CertificateLabel {
    /// `certificate:<name>`, `hostname:<name>` or `identity:<worker>`.
    pub certificate: Arc<str>,
}

/// An inbound listener.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types, missing_docs)]
pub enum Listener {
    https,
    http,
    admin,
}

/// Labels of `sigil_inbound_connections`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabel {
    /// The listener.
    pub listener: Listener,
}

/// Why Sigil closed an inbound connection itself.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum CloseReason {
    /// The request head did not arrive within `header_read_timeout_ms`.
    header_timeout,
    /// The request body sent nothing for `body_idle_timeout_ms` (the request got 408).
    body_timeout,
    /// Pending output made no progress for `write_timeout_ms`.
    write_timeout,
    /// No request was in flight for `keepalive_idle_secs`.
    idle_timeout,
    /// The TLS handshake did not finish within `tls_handshake_timeout_ms`.
    tls_handshake_timeout,
    /// `max_connections` were already open: accepted and closed at once.
    connection_limit,
}

/// Labels of `sigil_inbound_connections_closed_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionClosedLabels {
    /// The listener that accepted the connection.
    pub listener: Listener,
    /// Why it was closed.
    pub reason: CloseReason,
}

/// What kind of error a listener's `accept` returned.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum AcceptErrorKind {
    /// EMFILE: the process is at its file-descriptor limit.
    process_descriptor_limit,
    /// ENFILE: the system is at its file-descriptor limit.
    system_descriptor_limit,
    /// ENOBUFS / ENOMEM.
    out_of_memory,
    /// The client gave up before it was accepted (ECONNABORTED, ECONNRESET).
    connection_aborted,
    /// Anything else.
    other,
}

/// Labels of `sigil_accept_errors_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AcceptErrorLabels {
    /// The listener.
    pub listener: Listener,
    /// The kind of error.
    pub kind: AcceptErrorKind,
}

/// Every metric family Sigil exports.
pub struct Metrics {
    registry: Registry,
    /// Inbound requests by worker and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Inbound request latency by worker.
    pub request_duration: Family<WorkerLabel, Histogram>,
    /// Requests that failed inside a worker, by worker and kind.
    pub worker_errors: Family<WorkerErrorLabels, Counter>,
    /// Subrequests by worker, binding and outcome.
    pub subrequests: Family<SubrequestLabels, Counter>,
    /// Inbound TLS handshakes by hostname and result.
    pub tls_handshakes: Family<HandshakeLabels, Counter>,
    /// Seconds until each certificate expires.
    pub certificate_not_after: Family<CertificateLabel, Gauge<i64>>,
    /// Reloads that changed a setting applied only at start, by key.
    pub reload_ignored_settings: Family<SettingLabel, Counter>,
    /// Configuration reloads by result.
    pub reloads: Family<ReloadLabels, Counter>,
    /// Worker identity renewals by worker.
    pub identity_renewals: Family<WorkerLabel, Counter>,
    /// Inbound connections: open, closed by Sigil, failed accepts.
    pub connections: ConnectionMetrics,
    /// Requests whose worker output was cut to the per-request log budget,
    /// by worker and stream.
    pub worker_output_truncated: Family<WorkerOutputLabels, Counter>,
}

/// The inbound connection families (the listeners' room).
#[derive(Debug)]
pub struct ConnectionMetrics {
    /// Open inbound connections by listener.
    pub inbound_connections: Family<ListenerLabel, Gauge>,
    /// Inbound connections Sigil closed itself, by listener and reason.
    pub connections_closed: Family<ConnectionClosedLabels, Counter>,
    /// Failed `accept` calls by listener and kind.
    pub accept_errors: Family<AcceptErrorLabels, Counter>,
}

impl ConnectionMetrics {
    fn new(r: &mut Registry) -> Self {
        ConnectionMetrics {
            inbound_connections: registered(
                r,
                "sigil_inbound_connections",
                "Open inbound connections by listener",
                Family::default(),
            ),
            connections_closed: registered(
                r,
                "sigil_inbound_connections_closed",
                "Inbound connections Sigil closed itself, by listener and reason (a timeout, or refused at max_connections)",
                Family::default(),
            ),
            accept_errors: registered(
                r,
                "sigil_accept_errors",
                "Failed accept calls by listener and kind",
                Family::default(),
            ),
        }
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// Register `metric` under `name` and hand it back.
fn registered<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

impl Metrics {
    fn new() -> Self {
        let mut r = Registry::default();
        let latency =
            Family::<WorkerLabel, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        Metrics {
            requests: registered(
                &mut r,
                "sigil_requests",
                "Inbound requests by worker and status",
                Family::default(),
            ),
            request_duration: registered(
                &mut r,
                "sigil_request_duration_seconds",
                "Inbound request latency by worker",
                latency,
            ),
            worker_errors: registered(
                &mut r,
                "sigil_worker_errors",
                "Requests that failed inside a worker, by worker and kind",
                Family::default(),
            ),
            subrequests: registered(
                &mut r,
                "sigil_subrequests",
                "Subrequests by worker, binding and outcome",
                Family::default(),
            ),
            tls_handshakes: registered(
                &mut r,
                "sigil_tls_handshakes",
                "Inbound TLS handshakes by hostname and result (ok, or the failure reason)",
                Family::default(),
            ),
            certificate_not_after: registered(
                &mut r,
                "sigil_certificate_not_after_seconds",
                "When each certificate expires (its notAfter), unix seconds; alert on it minus time()",
                Family::default(),
            ),
            reload_ignored_settings: registered(
                &mut r,
                "sigil_reload_ignored_settings",
                "Reloads that changed a [server] setting applied only at start (restart to apply it), by key",
                Family::default(),
            ),
            reloads: registered(
                &mut r,
                "sigil_reloads",
                "Configuration reloads by result",
                Family::default(),
            ),
            identity_renewals: registered(
                &mut r,
                "sigil_identity_renewals",
                "Worker identity renewals by worker",
                Family::default(),
            ),
            connections: ConnectionMetrics::new(&mut r),
            worker_output_truncated: registered(
                &mut r,
                "sigil_worker_output_truncated",
                "Requests whose worker output (log, stdout, stderr) was cut to the per-request cap",
                Family::default(),
            ),
            registry: r,
        }
    }

    /// Render every family in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// One worker's request series, looked up once and then held: the latency
/// histogram and the counter of its `200` responses (most requests), so a
/// request does not hash its labels into the shared families. Other
/// statuses go through the family. Series are made on first use, so a
/// worker that served nothing exports nothing.
pub struct WorkerSeries {
    worker: Arc<str>,
    duration: OnceLock<Histogram>,
    ok: OnceLock<Counter>,
}

impl WorkerSeries {
    /// The series of `worker`.
    pub fn new(worker: Arc<str>) -> WorkerSeries {
        WorkerSeries {
            worker,
            duration: OnceLock::new(),
            ok: OnceLock::new(),
        }
    }

    /// The series of requests no worker was chosen for (`worker="-"`).
    pub fn unrouted() -> &'static WorkerSeries {
        static UNROUTED: OnceLock<WorkerSeries> = OnceLock::new();
        UNROUTED.get_or_init(|| WorkerSeries::new("-".into()))
    }

    /// Count one response with `status`, which took `seconds`.
    pub fn record(&self, status: u16, seconds: f64) {
        let m = metrics();
        let labels = |status| RequestLabels {
            worker: self.worker.clone(),
            status,
        };
        if status == 200 {
            self.ok
                .get_or_init(|| m.requests.get_or_create(&labels(200)).clone())
                .inc();
        } else {
            m.requests.get_or_create(&labels(status)).inc();
        }
        let worker = || WorkerLabel {
            worker: self.worker.clone(),
        };
        self.duration
            .get_or_init(|| m.request_duration.get_or_create(&worker()).clone())
            .observe(seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms_with_escaped_labels() {
        let m = Metrics::new();
        let worker: Arc<str> = "a\"b".into();
        let labels = RequestLabels {
            worker: worker.clone(),
            status: 200,
        };
        m.requests.get_or_create(&labels).inc();
        m.requests.get_or_create(&labels).inc();
        m.request_duration
            .get_or_create(&WorkerLabel { worker })
            .observe(0.003);
        let text = m.render();
        assert!(
            text.contains("sigil_requests_total{worker=\"a\\\"b\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(
            text.contains(
                "sigil_request_duration_seconds_bucket{le=\"0.005\",worker=\"a\\\"b\"} 1"
            ) || text.contains(
                "sigil_request_duration_seconds_bucket{worker=\"a\\\"b\",le=\"0.005\"} 1"
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
