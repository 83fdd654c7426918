//! Fuzz entry points: every parser of outside bytes, each as a function
//! that takes arbitrary bytes and must return without panicking. The
//! cargo-fuzz targets in `fuzz/` call them, and the end-to-end tests replay
//! each target's committed corpus through them (`tests/e2e/fuzz_corpora.rs`),
//! so a crash found once stays fixed.

use crate::authority::{parse_authority, parse_sni};
use crate::inbound::host_rule::authority_of;
use http::{HeaderValue, Version};
use sigil_sdk::codec;
use sigil_sdk::wire::{FetchRequest, HandlerOutput, Invocation};
use sigil_sdk::wire_ref::{FetchRequestView, HandlerOutputView};
use std::path::Path;

/// A fuzz target: its name (the directory of its corpus under
/// `fuzz/corpus/`) and the function that takes the bytes.
pub type Target = (&'static str, fn(&[u8]));

/// The fuzz targets.
pub const TARGETS: [Target; 5] = [
    ("host_calls", host_calls),
    ("manifest", manifest),
    ("authority", authority),
    ("xfcc_dn", xfcc_dn),
    ("pem", pem),
];

/// What a guest hands the host: a subrequest (`sigil.fetch_start`), a
/// handler's result (`sigil_handle`), an invocation (the guest's own decode,
/// with the host's limit), and a log line (`sigil.log`).
pub fn host_calls(data: &[u8]) {
    let limit = 1 << 20;
    let _ = codec::decode::<FetchRequest>(data, limit);
    let _ = codec::decode::<HandlerOutput>(data, limit);
    // What the host really reads from guest memory: the borrowed views.
    if let Ok(HandlerOutputView::Response(view)) = codec::decode_view(data, limit) {
        let _ = crate::engine::response_from_view(view);
    }
    let _ = codec::decode_view::<FetchRequestView>(data, limit);
    let _ = codec::decode::<Invocation>(data, limit);
    let (ptr, len) = codec::unpack(u64::from_le_bytes(
        data.get(..8)
            .and_then(|b| b.try_into().ok())
            .unwrap_or([0; 8]),
    ));
    let _ = (ptr, len);
    // A log line as `sigil.log` reads it (a longer line is read cut).
    let read = data.len().min(crate::engine::MAX_LINE);
    let _ = crate::engine::guest_log_line(data[..read].to_vec(), data.len());
}

/// A manifest: parsed and checked (no file it names is opened).
pub fn manifest(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::config::parse(Path::new("fuzz/sigil.toml"), text);
    }
}

/// SNI, `Host`, `:authority` and absolute-form targets, alone and against
/// each other (the first line is the target, the rest `Host` headers), and
/// the path a target is routed by.
pub fn authority(data: &[u8]) {
    let _ = parse_authority(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_sni(text);
    }
    let mut lines = data.split(|b| *b == b'\n');
    let target = lines.next().and_then(|t| std::str::from_utf8(t).ok());
    let hosts: Vec<HeaderValue> = lines
        .filter_map(|l| HeaderValue::from_bytes(l).ok())
        .collect();
    let hosts: Vec<&HeaderValue> = hosts.iter().collect();
    for version in [Version::HTTP_11, Version::HTTP_2] {
        let _ = authority_of(version, target, &hosts, "https");
    }
    // The path a request is routed by: normalising is idempotent, and a
    // path stays a path.
    if let Some(path) = target.filter(|t| t.starts_with('/') && t.is_ascii()) {
        let routed = crate::route_path::route_path(path);
        assert!(routed.starts_with('/'), "{path:?} routed as {routed:?}");
        assert_eq!(crate::route_path::route_path(&routed), routed, "{path:?}");
    }
}

/// A client certificate as workers and origins see it: its details (RFC
/// 4514 subject and issuer, SANs, SPIFFE ID) and its XFCC element.
pub fn xfcc_dn(data: &[u8]) {
    let Ok(details) = sigil_pki::CertificateDetails::from_der(data) else {
        return;
    };
    let element = crate::headers::xfcc::render_element(&crate::headers::xfcc::ClientCert {
        der: data,
        subject: &details.subject_dn,
        uri_sans: &details.uri_sans,
        dns_sans: &details.dns_sans,
    });
    assert!(
        element.bytes().all(|b| b == b' ' || b.is_ascii_graphic()),
        "XFCC must be printable ASCII: {element:?}"
    );
}

/// PEM files: certificate chains, private keys, CA bundles and CRLs.
pub fn pem(data: &[u8]) {
    let path = Path::new("fuzz.pem");
    let _ = sigil_pki::load::parse_chain(data, path);
    let _ = sigil_pki::load::parse_private_key(data, path);
    let _ = sigil_pki::load::parse_crls(data, path);
}
