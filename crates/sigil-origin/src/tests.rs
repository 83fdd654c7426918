use super::*;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

fn ca(cn: &str) -> Ca {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().expect("generate CA key");
    Ca {
        issuer: CertifiedIssuer::self_signed(params, key).expect("self-sign CA"),
    }
}

fn leaf_params(cn: &str, uris: &[&str]) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.subject_alt_names = uris
        .iter()
        .map(|u| SanType::URI((*u).try_into().expect("ia5 uri")))
        .collect();
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params
}

fn issue(ca: &Ca, params: CertificateParams) -> Vec<u8> {
    let key = KeyPair::generate().expect("generate leaf key");
    params
        .signed_by(&key, &ca.issuer)
        .expect("sign leaf")
        .der()
        .to_vec()
}

fn worker_cert(ca: &Ca, worker: &str) -> Vec<u8> {
    issue(
        ca,
        leaf_params(worker, &[&format!("spiffe://sigil.local/worker/{worker}")]),
    )
}

#[test]
fn valid_identity_is_accepted() {
    let ca = ca("Sigil identity CA");
    let der = worker_cert(&ca, "writer");
    let id = identity_from_certificate(&der).expect("valid SVID");
    assert_eq!(
        id,
        WorkerIdentity {
            trust_domain: "sigil.local".into(),
            worker: "writer".into(),
            spiffe_id: "spiffe://sigil.local/worker/writer".into(),
        }
    );
    let verifier = IdentityVerifier::new("sigil.local");
    let chain = [CertificateDer::from(der)];
    assert_eq!(
        verifier.identify(&chain).expect("identify").worker,
        "writer"
    );
}

#[test]
fn two_uri_sans_are_rejected() {
    let ca = ca("Sigil identity CA");
    let der = issue(
        &ca,
        leaf_params(
            "writer",
            &[
                "spiffe://sigil.local/worker/writer",
                "spiffe://sigil.local/worker/admin",
            ],
        ),
    );
    assert_eq!(
        identity_from_certificate(&der),
        Err(IdentityError::MultipleUriSans(2))
    );
}

#[test]
fn ca_leaf_is_rejected() {
    let ca = ca("Sigil identity CA");
    let mut params = leaf_params("writer", &["spiffe://sigil.local/worker/writer"]);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![];
    let der = issue(&ca, params);
    assert_eq!(
        identity_from_certificate(&der),
        Err(IdentityError::LeafIsCa)
    );
}

#[test]
fn signing_key_usage_is_rejected() {
    let ca = ca("Sigil identity CA");
    let mut params = leaf_params("writer", &["spiffe://sigil.local/worker/writer"]);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
    ];
    let der = issue(&ca, params);
    assert_eq!(
        identity_from_certificate(&der),
        Err(IdentityError::LeafCanSign)
    );
}

#[test]
fn wrong_trust_domain_is_rejected() {
    let ca = ca("Other CA");
    let der = issue(
        &ca,
        leaf_params("writer", &["spiffe://evil.example/worker/writer"]),
    );
    // The certificate itself is a valid SVID...
    assert!(identity_from_certificate(&der).is_ok());
    // ...but not for this origin's trust domain.
    let verifier = IdentityVerifier::new("sigil.local");
    assert_eq!(
        verifier.identify(&[CertificateDer::from(der)]),
        Err(IdentityError::UnexpectedTrustDomain {
            expected: "sigil.local".into(),
            found: "evil.example".into(),
        })
    );
}

#[test]
fn bad_path_is_rejected() {
    let ca = ca("Sigil identity CA");
    let der = issue(
        &ca,
        leaf_params("writer", &["spiffe://sigil.local/service/writer"]),
    );
    assert_eq!(
        identity_from_certificate(&der),
        Err(IdentityError::NotAWorker(
            "spiffe://sigil.local/service/writer".into()
        ))
    );
    let der = issue(
        &ca,
        leaf_params("writer", &["spiffe://sigil.local/worker/../admin"]),
    );
    assert!(matches!(
        identity_from_certificate(&der),
        Err(IdentityError::InvalidPath { .. })
    ));
}

#[test]
fn uppercase_trust_domain_is_rejected() {
    let ca = ca("Sigil identity CA");
    let der = issue(
        &ca,
        leaf_params("writer", &["spiffe://Sigil.Local/worker/writer"]),
    );
    assert_eq!(
        identity_from_certificate(&der),
        Err(IdentityError::InvalidTrustDomain {
            trust_domain: "Sigil.Local".into(),
            reason: "trust domain must be lowercase",
        })
    );
}

#[test]
fn byo_certificate_has_no_identity_but_a_summary() {
    let ca = ca("Customer CA");
    let mut params = leaf_params("writer", &[]);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Example, Inc.");
    params.serial_number = Some(SerialNumber::from_slice(&[0x0A, 0xBC, 0x01]));
    let der = issue(&ca, params);
    assert_eq!(
        identity_from_certificate(&der),
        Err(IdentityError::NoUriSan)
    );
    let summary = ClientCertSummary::from_der(&der).expect("summary");
    assert_eq!(summary.common_name.as_deref(), Some("writer"));
    assert_eq!(summary.subject_dn, "O=Example\\, Inc.,CN=writer");
    assert_eq!(summary.issuer_dn, "CN=Customer CA");
    assert_eq!(summary.serial_hex, "0ABC01");
    assert!(summary.serial_matches("0a:bc:01"));
    assert!(summary.serial_matches("ABC01"));
    assert!(!summary.serial_matches("ABC02"));
}

#[test]
fn spiffe_id_string_rules() {
    let ok = parse_worker_spiffe_id("spiffe://sigil.local/worker/my-worker_1.v2").expect("valid");
    assert_eq!(ok.worker, "my-worker_1.v2");

    type Check = fn(&IdentityError) -> bool;
    let cases: &[(&str, Check)] = &[
        ("https://sigil.local/worker/w", |e| {
            matches!(e, IdentityError::NotSpiffe(_))
        }),
        ("SPIFFE://sigil.local/worker/w", |e| {
            matches!(e, IdentityError::NotSpiffe(_))
        }),
        ("spiffe:///worker/w", |e| {
            matches!(e, IdentityError::InvalidTrustDomain { .. })
        }),
        ("spiffe://sigil.local:443/worker/w", |e| {
            matches!(e, IdentityError::InvalidTrustDomain { .. })
        }),
        ("spiffe://user@sigil.local/worker/w", |e| {
            matches!(e, IdentityError::InvalidTrustDomain { .. })
        }),
        ("spiffe://sigil.local/worker/w/", |e| {
            matches!(e, IdentityError::InvalidPath { .. })
        }),
        ("spiffe://sigil.local/worker//w", |e| {
            matches!(e, IdentityError::InvalidPath { .. })
        }),
        ("spiffe://sigil.local/worker/./w", |e| {
            matches!(e, IdentityError::InvalidPath { .. })
        }),
        ("spiffe://sigil.local/worker/w?x=1", |e| {
            matches!(e, IdentityError::InvalidPath { .. })
        }),
        ("spiffe://sigil.local/worker/w%20", |e| {
            matches!(e, IdentityError::InvalidPath { .. })
        }),
        ("spiffe://sigil.local", |e| {
            matches!(e, IdentityError::NotAWorker(_))
        }),
        ("spiffe://sigil.local/worker", |e| {
            matches!(e, IdentityError::NotAWorker(_))
        }),
        ("spiffe://sigil.local/worker/a/b", |e| {
            matches!(e, IdentityError::NotAWorker(_))
        }),
    ];
    for (id, check) in cases {
        let err = parse_worker_spiffe_id(id).expect_err(id);
        assert!(check(&err), "{id}: unexpected error {err:?}");
    }

    let long_td = format!("spiffe://{}/worker/w", "a".repeat(256));
    assert!(matches!(
        parse_worker_spiffe_id(&long_td),
        Err(IdentityError::InvalidTrustDomain { .. })
    ));
    let long_id = format!("spiffe://sigil.local/worker/{}", "w".repeat(2048));
    assert!(matches!(
        parse_worker_spiffe_id(&long_id),
        Err(IdentityError::IdTooLong(_))
    ));
}

#[test]
fn garbage_is_a_parse_error() {
    assert!(matches!(
        identity_from_certificate(b"not a certificate"),
        Err(IdentityError::Parse(_))
    ));
    assert_eq!(
        IdentityVerifier::new("sigil.local").identify(&[]),
        Err(IdentityError::NoCertificate)
    );
}

#[test]
fn server_config_offers_h2_and_http11() {
    let ca = ca("Sigil identity CA");
    let mut roots = RootCertStore::empty();
    roots.add(ca.issuer.der().clone()).expect("add root");
    let server_key = KeyPair::generate().expect("key");
    let server_cert = CertificateParams::new(vec!["localhost".to_owned()])
        .expect("params")
        .self_signed(&server_key)
        .expect("self-signed");
    let key = PrivateKeyDer::try_from(server_key.serialize_der()).expect("key der");
    let config = server_config(vec![server_cert.der().clone()], key, roots, true).expect("config");
    assert_eq!(
        config.alpn_protocols,
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    );

    let err = server_config(
        vec![server_cert.der().clone()],
        PrivateKeyDer::try_from(KeyPair::generate().expect("key").serialize_der()).expect("der"),
        RootCertStore::empty(),
        true,
    )
    .expect_err("empty roots");
    assert!(matches!(err, ServerConfigError::NoClientRoots));
}
