//! Tests for [`super`]: real rcgen PKIs, a hand-made X.509 v1 certificate,
//! and in-memory rustls handshakes.

use super::*;
use crate::test_support::der;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SerialNumber, SigningKey, date_time_ymd,
};
use rustls::client::ResolvesClientCert;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};
use std::time::Duration;

/// 2027-01-15: inside every test certificate's validity unless said otherwise.
fn now() -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(1_800_000_000))
}

type Issuer = CertifiedIssuer<'static, KeyPair>;

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = date_time_ymd(2020, 1, 1);
    p.not_after = date_time_ymd(4000, 1, 1);
    p
}

fn root(cn: &str) -> Issuer {
    CertifiedIssuer::self_signed(ca_params(cn), KeyPair::generate().expect("key")).expect("root")
}

fn intermediate(cn: &str, parent: &Issuer) -> Issuer {
    CertifiedIssuer::signed_by(ca_params(cn), KeyPair::generate().expect("key"), parent)
        .expect("intermediate")
}

fn leaf_params(cn: &str, serial: u64) -> CertificateParams {
    let mut p = CertificateParams::new(vec![format!("{cn}.devices.example")]).expect("params");
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.serial_number = Some(SerialNumber::from(serial));
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.not_before = date_time_ymd(2020, 1, 1);
    p.not_after = date_time_ymd(4000, 1, 1);
    p
}

/// A client certificate with its key and the chain it sends.
struct Client {
    chain: Vec<CertificateDer<'static>>,
    key: KeyPair,
}

impl Client {
    fn issued(params: CertificateParams, issuer: &Issuer, extra: &[&Issuer]) -> Client {
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, issuer).expect("leaf");
        let mut chain = vec![cert.der().clone()];
        chain.extend(extra.iter().map(|i| i.der().clone()));
        Client { chain, key }
    }

    fn self_signed(params: CertificateParams) -> Client {
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("self-signed");
        Client {
            chain: vec![cert.der().clone()],
            key,
        }
    }
}

fn crl(
    issuer: &Issuer,
    revoked: &[u64],
    next_update: (i32, u8, u8),
) -> CertificateRevocationListDer<'static> {
    let params = CertificateRevocationListParams {
        this_update: date_time_ymd(2020, 1, 1),
        next_update: date_time_ymd(next_update.0, next_update.1, next_update.2),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|&serial| RevokedCertParams {
                serial_number: SerialNumber::from(serial),
                revocation_time: date_time_ymd(2021, 1, 1),
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    params.signed_by(issuer).expect("crl").der().clone()
}

/// A hand-made X.509 **v1** certificate (no version field, no extensions)
/// for `subject_key`, signed with ECDSA P-256/SHA-256 by `issuer`
/// (or self-signed when `issuer` is `None`).
fn v1_certificate(
    cn: &str,
    subject_key: &KeyPair,
    issuer: Option<&Issuer>,
) -> CertificateDer<'static> {
    let subject = der::seq(&[der::set(&[der::seq(&[
        der::oid("2.5.4.3"),
        der::tlv(0x0c, cn.as_bytes()),
    ])])]);
    let (issuer_name, signer): (Vec<u8>, &KeyPair) = match issuer {
        Some(issuer) => {
            let (_, parsed) = x509_parser::parse_x509_certificate(issuer.der()).expect("issuer");
            (parsed.subject().as_raw().to_vec(), issuer.key())
        }
        None => (subject.clone(), subject_key),
    };
    let ecdsa_sha256 = der::seq(&[der::oid("1.2.840.10045.4.3.2")]);
    let validity = der::seq(&[
        der::tlv(0x17, b"200101000000Z"),
        der::generalized_time("40000101000000Z"),
    ]);
    let tbs = der::seq(&[
        der::uint(&[0x1f, 0x01]),
        ecdsa_sha256.clone(),
        issuer_name,
        validity,
        subject,
        rcgen::PublicKeyData::subject_public_key_info(subject_key),
    ]);
    let signature = signer.sign(&tbs).expect("sign");
    CertificateDer::from(der::seq(&[tbs, ecdsa_sha256, der::bit_string(&signature)]))
}

/// The PKI every test uses.
struct Pki {
    a: Issuer,
    b: Issuer,
    /// Under A, not on A's CRL; has no CRL of its own.
    int_a: Issuer,
    /// Under A, revoked on A's CRL.
    int_a_revoked: Issuer,
    /// Under `int_a`: makes a 4-certificate path.
    int_a_deep: Issuer,
    /// A CA whose CRL expired in 2021.
    stale: Issuer,
    /// Not trusted.
    unknown: Issuer,
    crl_a: CertificateRevocationListDer<'static>,
    crl_stale: CertificateRevocationListDer<'static>,
}

const REVOKED_SERIAL: u64 = 0x0bad;
const REVOKED_INT_SERIAL: u64 = 0x1bad;

impl Pki {
    fn new() -> Pki {
        let a = root("CA A");
        let b = root("CA B");
        let int_a = intermediate("Intermediate A", &a);
        let mut revoked_int = ca_params("Revoked Intermediate A");
        revoked_int.serial_number = Some(SerialNumber::from(REVOKED_INT_SERIAL));
        let int_a_revoked =
            CertifiedIssuer::signed_by(revoked_int, KeyPair::generate().expect("key"), &a)
                .expect("revoked intermediate");
        let int_a_deep = intermediate("Deep Intermediate A", &int_a);
        let stale = root("Stale CA");
        let unknown = root("Unknown CA");
        let crl_a = crl(&a, &[REVOKED_SERIAL, REVOKED_INT_SERIAL], (4000, 1, 1));
        let crl_stale = crl(&stale, &[], (2021, 6, 1));
        Pki {
            a,
            b,
            int_a,
            int_a_revoked,
            int_a_deep,
            stale,
            unknown,
            crl_a,
            crl_stale,
        }
    }

    fn config(&self, mode: ClientCertMode) -> VerifierConfig {
        let mut c = VerifierConfig::new(
            vec![
                self.a.der().clone(),
                self.b.der().clone(),
                self.stale.der().clone(),
            ],
            mode,
        );
        c.crls = vec![self.crl_a.clone(), self.crl_stale.clone()];
        c
    }

    fn verifier(&self, edit: impl FnOnce(&mut VerifierConfig)) -> ClientVerifier {
        let mut c = self.config(ClientCertMode::Optional);
        edit(&mut c);
        ClientVerifier::new(c).expect("verifier")
    }
}

fn keep(_: &mut VerifierConfig) {}

#[test]
fn verdicts_for_real_pkis() {
    let pki = Pki::new();
    let a_leaf = Client::issued(leaf_params("a-device", 1), &pki.a, &[]);
    let a_revoked = Client::issued(leaf_params("a-revoked", REVOKED_SERIAL), &pki.a, &[]);
    // Same serial as A's revoked leaf, but issued by B: A's CRL must not apply.
    let b_leaf = Client::issued(leaf_params("b-device", REVOKED_SERIAL), &pki.b, &[]);
    let int_leaf = Client::issued(
        leaf_params("int-device", REVOKED_SERIAL),
        &pki.int_a,
        &[&pki.int_a],
    );
    let int_leaf_with_root = Client::issued(
        leaf_params("int-device", 7),
        &pki.int_a,
        &[&pki.int_a, &pki.a],
    );
    let behind_revoked_int = Client::issued(
        leaf_params("behind-revoked", 8),
        &pki.int_a_revoked,
        &[&pki.int_a_revoked],
    );
    let deep = Client::issued(
        leaf_params("deep", 9),
        &pki.int_a_deep,
        &[&pki.int_a_deep, &pki.int_a],
    );
    let mut expired_params = leaf_params("expired", 10);
    expired_params.not_after = date_time_ymd(2021, 1, 1);
    let expired = Client::issued(expired_params, &pki.b, &[]);
    let mut future_params = leaf_params("future", 11);
    future_params.not_before = date_time_ymd(3000, 1, 1);
    let future = Client::issued(future_params, &pki.b, &[]);
    let self_signed = Client::self_signed(leaf_params("selfie", 12));
    let mut self_signed_ca_params = leaf_params("selfie-ca", 13);
    self_signed_ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let self_signed_ca = Client::self_signed(self_signed_ca_params);
    let unknown_leaf = Client::issued(leaf_params("stranger", 14), &pki.unknown, &[]);
    // Subject equals issuer, but the signature is by the (untrusted) CA of
    // that name, not by the certificate's own key: not self-signed.
    let same_name = Client::issued(leaf_params("Unknown CA", 21), &pki.unknown, &[]);
    let unknown_with_root =
        Client::issued(leaf_params("stranger", 15), &pki.unknown, &[&pki.unknown]);
    let mut server_only = leaf_params("server-only", 16);
    server_only.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_only = Client::issued(server_only, &pki.b, &[]);
    // Issued by a CA named "CA A" with another key: the signature fails.
    let impostor_a = root("CA A");
    let forged = Client::issued(leaf_params("forged", 17), &impostor_a, &[]);
    let stale_leaf = Client::issued(leaf_params("stale", 18), &pki.stale, &[]);
    let v1_key = KeyPair::generate().expect("key");
    let v1 = vec![v1_certificate("v1-device", &v1_key, Some(&pki.a))];
    let v1_self_key = KeyPair::generate().expect("key");
    let v1_self = vec![v1_certificate("v1-self", &v1_self_key, None)];
    let ca_as_leaf = vec![pki.a.der().clone()];
    // A leaf "issued" by another leaf: the issuer is not a CA.
    let not_a_ca = {
        let mut p = leaf_params("not-a-ca", 19);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let fake_issuer = CertifiedIssuer::signed_by(p, KeyPair::generate().expect("key"), &pki.b)
            .expect("issuer");
        Client::issued(leaf_params("child", 20), &fake_issuer, &[&fake_issuer]).chain
    };
    let garbage = vec![CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01])];

    type Edit = fn(&mut VerifierConfig);
    let crl_required: Edit = |c| c.crl_required = true;
    let depth2: Edit = |c| c.max_chain_depth = 2;
    let depth3: Edit = |c| c.max_chain_depth = 3;
    let depth4: Edit = |c| c.max_chain_depth = 4;
    let ignore_crl_expiry: Edit = |c| c.enforce_crl_next_update = false;

    let cases: Vec<(&str, &[CertificateDer<'static>], Edit, &str)> = vec![
        ("leaf under A", &a_leaf.chain, keep, "SUCCESS"),
        (
            "revoked leaf under A",
            &a_revoked.chain,
            keep,
            "FAILED:certificate revoked",
        ),
        ("leaf under B, A has a CRL", &b_leaf.chain, keep, "SUCCESS"),
        (
            "leaf under B with crl_required",
            &b_leaf.chain,
            crl_required,
            "FAILED:unable to get certificate CRL",
        ),
        (
            "leaf under A with crl_required",
            &a_leaf.chain,
            crl_required,
            "SUCCESS",
        ),
        (
            "leaf behind an intermediate without CRL",
            &int_leaf.chain,
            keep,
            "SUCCESS",
        ),
        (
            "same with crl_required",
            &int_leaf.chain,
            crl_required,
            "FAILED:unable to get certificate CRL",
        ),
        (
            "leaf behind a revoked intermediate",
            &behind_revoked_int.chain,
            keep,
            "FAILED:certificate revoked",
        ),
        (
            "expired leaf",
            &expired.chain,
            keep,
            "FAILED:certificate has expired",
        ),
        (
            "not yet valid leaf",
            &future.chain,
            keep,
            "FAILED:certificate is not yet valid",
        ),
        (
            "self-signed leaf",
            &self_signed.chain,
            keep,
            "FAILED:self-signed certificate",
        ),
        (
            "self-signed CA:TRUE leaf",
            &self_signed_ca.chain,
            keep,
            "FAILED:self-signed certificate",
        ),
        (
            "unknown issuer",
            &unknown_leaf.chain,
            keep,
            "FAILED:unable to get local issuer certificate",
        ),
        (
            "subject equals issuer, other key",
            &same_name.chain,
            keep,
            "FAILED:unable to get local issuer certificate",
        ),
        (
            "unknown root sent along",
            &unknown_with_root.chain,
            keep,
            "FAILED:self-signed certificate in certificate chain",
        ),
        (
            "serverAuth-only leaf",
            &server_only.chain,
            keep,
            "FAILED:unsupported certificate purpose",
        ),
        (
            "forged issuer signature",
            &forged.chain,
            keep,
            "FAILED:certificate signature failure",
        ),
        (
            "issuer CRL expired",
            &stale_leaf.chain,
            keep,
            "FAILED:CRL has expired",
        ),
        (
            "issuer CRL expired, expiry ignored",
            &stale_leaf.chain,
            ignore_crl_expiry,
            "SUCCESS",
        ),
        (
            "v1 leaf",
            &v1,
            keep,
            "FAILED:unsupported certificate version",
        ),
        (
            "v1 self-signed leaf",
            &v1_self,
            keep,
            "FAILED:self-signed certificate",
        ),
        (
            "CA certificate as leaf",
            &ca_as_leaf,
            keep,
            "FAILED:unsupported certificate purpose",
        ),
        (
            "issuer is not a CA",
            &not_a_ca,
            keep,
            "FAILED:invalid CA certificate",
        ),
        ("garbage", &garbage, keep, "FAILED:certificate is malformed"),
        ("nothing", &[], keep, "NONE"),
        // Depth counts the verified path: leaf + intermediate + anchor = 3,
        // whether or not the client also sent the root.
        ("leaf+int, depth 3", &int_leaf.chain, depth3, "SUCCESS"),
        (
            "leaf+int+root, depth 3",
            &int_leaf_with_root.chain,
            depth3,
            "SUCCESS",
        ),
        (
            "leaf+int, depth 2",
            &int_leaf.chain,
            depth2,
            "FAILED:certificate chain too long",
        ),
        (
            "leaf+int+root, depth 2",
            &int_leaf_with_root.chain,
            depth2,
            "FAILED:certificate chain too long",
        ),
        ("direct leaf, depth 2", &a_leaf.chain, depth2, "SUCCESS"),
        (
            "4-certificate path, depth 3",
            &deep.chain,
            depth3,
            "FAILED:certificate chain too long",
        ),
        (
            "4-certificate path, depth 4",
            &deep.chain,
            depth4,
            "SUCCESS",
        ),
    ];
    for (what, chain, edit, want) in cases {
        let verifier = pki.verifier(edit);
        let (verdict, revoked) = verifier.check_at(chain, now());
        assert_eq!(verdict.to_string(), want, "{what}");
        assert_eq!(
            revoked,
            want == "FAILED:certificate revoked",
            "{what}: revoked flag"
        );
    }
}

#[test]
fn sending_extra_unrelated_certificates_does_not_count() {
    let pki = Pki::new();
    let extra = [&pki.b, &pki.unknown, &pki.stale];
    let leaf = Client::issued(leaf_params("noisy", 30), &pki.a, &extra);
    assert_eq!(leaf.chain.len(), 4);
    let verifier = pki.verifier(|c| c.max_chain_depth = 2);
    assert_eq!(verifier.check_at(&leaf.chain, now()).0, Verdict::Success);
}

/// Ten certificates that name each other as issuer (a "maze"): webpki
/// would try every ordering up to its budget, 0.14 s of CPU per handshake
/// on the runtime's threads. Past `MAX_SENT_INTERMEDIATES` the chain is
/// refused before any path is built; a real chain with the root and extras
/// sent along still verifies.
#[test]
fn a_maze_of_intermediates_is_refused_before_path_building() {
    let pki = Pki::new();
    let mut maze: Vec<Issuer> = vec![root("Maze")];
    for _ in 0..10 {
        let parent = maze.last().expect("a maze certificate");
        let next = intermediate("Maze", parent);
        maze.push(next);
    }
    let leaf_key = KeyPair::generate().expect("key");
    let leaf = leaf_params("lost", 40)
        .signed_by(&leaf_key, &maze[3])
        .expect("leaf");
    let mut chain = vec![leaf.der().clone()];
    chain.extend(maze.iter().map(|m| m.der().clone()));
    let verifier = pki.verifier(keep);
    assert_eq!(
        verifier.check_at(&chain, now()).0.to_string(),
        "FAILED:certificate chain too long"
    );
    assert_eq!(
        verifier
            .check_at(&chain[..MAX_SENT_INTERMEDIATES + 2], now())
            .0
            .to_string(),
        "FAILED:certificate chain too long"
    );
    // At the bound: path building runs (and finds no trusted issuer).
    assert_eq!(
        verifier
            .check_at(&chain[..MAX_SENT_INTERMEDIATES + 1], now())
            .0
            .to_string(),
        "FAILED:unable to get local issuer certificate"
    );
    // A real chain with its root and three unrelated certificates sent along.
    let extra = [&pki.int_a, &pki.a, &pki.b, &pki.unknown, &pki.stale];
    let device = Client::issued(leaf_params("device", 41), &pki.int_a, &extra);
    assert_eq!(device.chain.len(), MAX_SENT_INTERMEDIATES + 1);
    assert_eq!(verifier.check_at(&device.chain, now()).0, Verdict::Success);
    // A deeper configured path may be sent whole, with its root: six
    // intermediates under A and A itself, seven besides the leaf.
    let mut ladder: Vec<Issuer> = vec![intermediate("Rung 1", &pki.a)];
    for i in 2..=6 {
        let next = intermediate(&format!("Rung {i}"), ladder.last().expect("a rung"));
        ladder.push(next);
    }
    let mut sent: Vec<&Issuer> = ladder.iter().rev().collect();
    sent.push(&pki.a);
    let climber = Client::issued(leaf_params("climber", 42), &ladder[5], &sent);
    assert_eq!(climber.chain.len(), 8);
    let deep = pki.verifier(|c| c.max_chain_depth = 8);
    assert_eq!(deep.check_at(&climber.chain, now()).0, Verdict::Success);
    assert_eq!(
        verifier.check_at(&climber.chain, now()).0.to_string(),
        "FAILED:certificate chain too long"
    );
}

/// The chain forwarded to origins is the verified path, leaf's issuer
/// first: a device under tenant Y's intermediate that sends tenant X's
/// intermediate (and unrelated CAs) along forwards only Y's. Before,
/// `Client-Cert-Chain` carried the chain as sent, X first.
#[test]
fn the_verified_intermediates_are_the_path_not_what_was_sent() {
    let pki = Pki::new();
    let tenant_x = intermediate("Tenant X", &pki.a);
    let tenant_y = intermediate("Tenant Y", &pki.a);
    let device = Client::issued(
        leaf_params("device-y", 43),
        &tenant_y,
        &[&tenant_x, &pki.unknown, &tenant_y],
    );
    let verifier = pki.verifier(keep);
    assert_eq!(verifier.check_at(&device.chain, now()).0, Verdict::Success);
    assert_eq!(
        verifier.verified_intermediates(&device.chain),
        Some(vec![tenant_y.der().clone()])
    );
    // A deeper path, sent root-first and shuffled: issuer first.
    let deep = Client::issued(
        leaf_params("deep", 44),
        &pki.int_a_deep,
        &[&pki.a, &pki.int_a, &pki.int_a_deep],
    );
    assert_eq!(
        verifier.verified_intermediates(&deep.chain),
        Some(vec![pki.int_a_deep.der().clone(), pki.int_a.der().clone()])
    );
    // Nothing for a chain that does not verify.
    let stranger = Client::issued(leaf_params("stranger", 45), &pki.unknown, &[]);
    assert_eq!(verifier.verified_intermediates(&stranger.chain), None);
}

#[test]
fn path_building_goes_on_past_a_path_that_is_too_long() {
    // The leaf's issuer X is cross-certified twice, with the same key and
    // name: by Intermediate A (path of 4) and directly by A (path of 3). The
    // client sends the long cross-certificate first, so webpki builds the
    // 4-certificate path first; with depth 3 it must reject it and go on to
    // find the 3-certificate path.
    let pki = Pki::new();
    let x_params = ca_params("Cross X");
    let x_key = KeyPair::generate().expect("key");
    let x_via_int = x_params
        .signed_by(&x_key, &pki.int_a)
        .expect("long cross-cert");
    let x_direct = x_params
        .signed_by(&x_key, &pki.a)
        .expect("short cross-cert");
    let x = rcgen::Issuer::new(x_params, x_key);
    let leaf_key = KeyPair::generate().expect("key");
    let leaf = leaf_params("crossed", 31)
        .signed_by(&leaf_key, &x)
        .expect("leaf");
    let long_first = [
        leaf.der().clone(),
        x_via_int.der().clone(),
        pki.int_a.der().clone(),
        x_direct.der().clone(),
    ];
    let cases: [(&[CertificateDer<'static>], usize, &str); 5] = [
        (&long_first, 3, "SUCCESS"),
        (&long_first, 4, "SUCCESS"),
        (&long_first, 2, "FAILED:certificate chain too long"),
        (&long_first[..3], 3, "FAILED:certificate chain too long"),
        (&long_first[..3], 4, "SUCCESS"),
    ];
    for (chain, depth, want) in cases {
        let verifier = pki.verifier(|c| c.max_chain_depth = depth);
        assert_eq!(
            verifier.check_at(chain, now()).0.to_string(),
            want,
            "{} certificates sent, depth {depth}",
            chain.len()
        );
    }
}

#[test]
fn labels_are_closed_and_reasons_are_fixed_text() {
    let all = [
        VerifyFailure::NoCertificate,
        VerifyFailure::Expired,
        VerifyFailure::NotYetValid,
        VerifyFailure::UnknownIssuer,
        VerifyFailure::SelfSigned,
        VerifyFailure::SelfSignedInChain,
        VerifyFailure::Revoked,
        VerifyFailure::BadSignature,
        VerifyFailure::BadPurpose,
        VerifyFailure::CrlMissing,
        VerifyFailure::CrlExpired,
        VerifyFailure::CrlSignature,
        VerifyFailure::CrlNotSigner,
        VerifyFailure::ChainTooLong,
        VerifyFailure::PathLengthExceeded,
        VerifyFailure::InvalidCa,
        VerifyFailure::UnsupportedVersion,
        VerifyFailure::UnhandledCriticalExtension,
        VerifyFailure::NameConstraints,
        VerifyFailure::NameConstraintSyntax,
        VerifyFailure::NameSyntax,
        VerifyFailure::Rejected,
        VerifyFailure::InvalidExtension,
        VerifyFailure::Malformed,
        VerifyFailure::Unspecified,
    ];
    let labels: Vec<&str> = FailureLabel::ALL.iter().map(|l| l.as_str()).collect();
    assert_eq!(
        labels,
        [
            "expired",
            "not_yet_valid",
            "unknown_issuer",
            "self_signed",
            "revoked",
            "bad_signature",
            "bad_purpose",
            "no_certificate",
            "chain_too_long",
            "other"
        ]
    );
    let expected_labels = [
        (VerifyFailure::Expired, "expired"),
        (VerifyFailure::NotYetValid, "not_yet_valid"),
        (VerifyFailure::UnknownIssuer, "unknown_issuer"),
        (VerifyFailure::SelfSignedInChain, "unknown_issuer"),
        (VerifyFailure::SelfSigned, "self_signed"),
        (VerifyFailure::Revoked, "revoked"),
        (VerifyFailure::BadSignature, "bad_signature"),
        (VerifyFailure::BadPurpose, "bad_purpose"),
        (VerifyFailure::NoCertificate, "no_certificate"),
        (VerifyFailure::ChainTooLong, "chain_too_long"),
        (VerifyFailure::CrlMissing, "other"),
        (VerifyFailure::UnsupportedVersion, "other"),
    ];
    for (failure, label) in expected_labels {
        assert_eq!(failure.label().as_str(), label, "{failure:?}");
    }
    for failure in all {
        let reason = failure.reason();
        assert!(FailureLabel::ALL.contains(&failure.label()));
        assert!(!reason.is_empty());
        assert!(
            reason
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == ' ' || c == '-' || c.is_ascii_uppercase()),
            "{reason:?} has digits or punctuation"
        );
        assert!(
            !reason.contains("Error") && !reason.contains('{'),
            "{reason:?}"
        );
        // Round trip through the handshake error.
        assert_eq!(
            handshake_failure(&failure.to_rustls_error()),
            Some(failure),
            "{failure:?}"
        );
    }
    // Errors that carry times still give fixed text.
    let expired = webpki::Error::CertExpired {
        time: now(),
        not_after: UnixTime::since_unix_epoch(Duration::from_secs(1)),
    };
    assert_eq!(
        VerifyFailure::from_webpki(&expired).reason(),
        "certificate has expired"
    );
    assert_eq!(handshake_failure(&Error::DecryptError), None);
}

#[test]
fn build_errors() {
    let pki = Pki::new();
    let cases: Vec<(VerifierConfig, BuildError)> = vec![
        (
            VerifierConfig::new(vec![], ClientCertMode::Require),
            BuildError::NoClientCas,
        ),
        (
            {
                let mut c = pki.config(ClientCertMode::Require);
                c.max_chain_depth = 1;
                c
            },
            BuildError::DepthTooSmall { depth: 1 },
        ),
        (
            {
                let mut c = VerifierConfig::new(vec![pki.a.der().clone()], ClientCertMode::Require);
                c.crl_required = true;
                c
            },
            BuildError::CrlRequiredWithoutCrls,
        ),
        (
            VerifierConfig::new(
                vec![pki.a.der().clone(), CertificateDer::from(vec![1, 2, 3])],
                ClientCertMode::Require,
            ),
            BuildError::BadClientCa { index: 1 },
        ),
        (
            {
                let mut c = pki.config(ClientCertMode::Require);
                c.crls
                    .push(CertificateRevocationListDer::from(vec![0x30, 0x00]));
                c
            },
            BuildError::BadCrl { index: 2 },
        ),
    ];
    for (config, want) in cases {
        assert_eq!(ClientVerifier::new(config).err(), Some(want.clone()));
        assert!(!want.to_string().is_empty());
    }
}

#[test]
fn hints_name_every_client_ca() {
    let pki = Pki::new();
    let verifier = ClientVerifier::new(pki.config(ClientCertMode::Require)).expect("verifier");
    assert_eq!(verifier.root_hint_subjects().len(), 3);
    assert!(verifier.client_auth_mandatory());
    let optional = ClientVerifier::new(pki.config(ClientCertMode::Optional)).expect("verifier");
    assert!(!optional.client_auth_mandatory());
    assert!(optional.offer_client_auth());
}

#[test]
fn v1_certificate_is_really_v1() {
    let pki = Pki::new();
    let key = KeyPair::generate().expect("key");
    let cert = v1_certificate("v1", &key, Some(&pki.a));
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).expect("parses");
    assert_eq!(parsed.version(), x509_parser::x509::X509Version::V1);
    assert!(parsed.extensions().is_empty());
    assert_eq!(
        webpki::EndEntityCert::try_from(&cert).err(),
        Some(webpki::Error::UnsupportedCertVersion)
    );
}

// ---------------------------------------------------------------------------
// In-memory handshakes.

const SERVER_NAME: &str = "edge.alpha.example";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

struct Server {
    ca: Issuer,
    chain: Vec<CertificateDer<'static>>,
    key: KeyPair,
}

impl Server {
    fn new() -> Server {
        let ca = root("Server CA");
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::new(vec![SERVER_NAME.to_string()]).expect("params");
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = p.signed_by(&key, &ca).expect("server cert");
        Server {
            chain: vec![cert.der().clone()],
            ca,
            key,
        }
    }

    fn config(&self, verifier: Arc<ClientVerifier>) -> Arc<ServerConfig> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()));
        Arc::new(
            ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_client_cert_verifier(verifier)
                .with_single_cert(self.chain.clone(), key)
                .expect("server config"),
        )
    }

    fn client_roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der().clone()).expect("root");
        roots
    }
}

/// Presents a fixed chain and signs with a fixed (possibly mismatched) key.
#[derive(Debug)]
struct FixedClientCert(Arc<CertifiedKey>);

impl ResolvesClientCert for FixedClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

enum Presented<'a> {
    Nothing,
    /// The chain, signed with this key.
    Chain(&'a [CertificateDer<'static>], &'a KeyPair),
}

fn client_config(
    server: &Server,
    presented: Presented<'_>,
    version: &'static rustls::SupportedProtocolVersion,
) -> Arc<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[version])
        .expect("versions")
        .with_root_certificates(server.client_roots());
    Arc::new(match presented {
        Presented::Nothing => builder.with_no_client_auth(),
        Presented::Chain(chain, key) => {
            let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
            let signing_key = provider()
                .key_provider
                .load_private_key(key_der)
                .expect("signing key");
            builder.with_client_cert_resolver(Arc::new(FixedClientCert(Arc::new(
                CertifiedKey::new(chain.to_vec(), signing_key),
            ))))
        }
    })
}

/// Runs a handshake in memory; on success returns the server side, else
/// the server's error (or the client's, when the server saw none).
fn handshake(
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
) -> Result<ServerConnection, Error> {
    let name = ServerName::try_from(SERVER_NAME).expect("name");
    let mut client = ClientConnection::new(client, name).expect("client");
    let mut server = ServerConnection::new(server).expect("server");
    for _ in 0..20 {
        let mut to_server = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut to_server).expect("client write");
        }
        let mut input = &to_server[..];
        while !input.is_empty() {
            server.read_tls(&mut input).expect("server read");
            server.process_new_packets()?;
        }
        let mut to_client = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut to_client).expect("server write");
        }
        let mut input = &to_client[..];
        while !input.is_empty() {
            client.read_tls(&mut input).expect("client read");
            client.process_new_packets()?;
        }
        if !client.is_handshaking() && !server.is_handshaking() && !client.wants_write() {
            return Ok(server);
        }
    }
    panic!("handshake did not finish");
}

fn peer_chain(server: &ServerConnection) -> Vec<CertificateDer<'static>> {
    server
        .peer_certificates()
        .map(|c| c.iter().map(|d| d.clone().into_owned()).collect())
        .unwrap_or_default()
}

#[test]
fn handshake_require_mode() {
    let pki = Pki::new();
    let server = Server::new();
    let verifier =
        Arc::new(ClientVerifier::new(pki.config(ClientCertMode::Require)).expect("verifier"));
    let config = server.config(verifier.clone());

    let good = Client::issued(leaf_params("good", 40), &pki.int_a, &[&pki.int_a]);
    let b_good = Client::issued(leaf_params("b-good", REVOKED_SERIAL), &pki.b, &[]);
    let revoked = Client::issued(leaf_params("revoked", REVOKED_SERIAL), &pki.a, &[]);
    let selfie = Client::self_signed(leaf_params("selfie", 41));
    let v1_key = KeyPair::generate().expect("key");
    let v1 = vec![v1_certificate("v1-device", &v1_key, Some(&pki.a))];

    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        for client in [&good, &b_good] {
            let conn = handshake(
                config.clone(),
                client_config(
                    &server,
                    Presented::Chain(&client.chain, &client.key),
                    version,
                ),
            )
            .unwrap_or_else(|e| panic!("{version:?}: verified client refused: {e}"));
            assert_eq!(peer_chain(&conn), client.chain);
            assert_eq!(
                verifier.check(&peer_chain(&conn)),
                (Verdict::Success, false)
            );
        }
        let refusals: Vec<(&str, Presented<'_>, VerifyFailure)> = vec![
            (
                "revoked",
                Presented::Chain(&revoked.chain, &revoked.key),
                VerifyFailure::Revoked,
            ),
            (
                "self-signed",
                Presented::Chain(&selfie.chain, &selfie.key),
                VerifyFailure::SelfSigned,
            ),
            (
                "v1",
                Presented::Chain(&v1, &v1_key),
                VerifyFailure::UnsupportedVersion,
            ),
            (
                "no certificate",
                Presented::Nothing,
                VerifyFailure::NoCertificate,
            ),
        ];
        for (what, presented, want) in refusals {
            let err = handshake(config.clone(), client_config(&server, presented, version))
                .err()
                .unwrap_or_else(|| panic!("{version:?}: {what} was accepted"));
            assert_eq!(
                handshake_failure(&err),
                Some(want),
                "{version:?}: {what}: {err}"
            );
        }
    }
}

#[test]
fn handshake_require_mode_depth_is_the_verified_path() {
    let pki = Pki::new();
    let server = Server::new();
    let mut c = pki.config(ClientCertMode::Require);
    c.max_chain_depth = 3;
    let config = server.config(Arc::new(ClientVerifier::new(c).expect("verifier")));
    let with_root = Client::issued(leaf_params("r", 42), &pki.int_a, &[&pki.int_a, &pki.a]);
    assert!(
        handshake(
            config.clone(),
            client_config(
                &server,
                Presented::Chain(&with_root.chain, &with_root.key),
                &rustls::version::TLS13
            ),
        )
        .is_ok()
    );
    let deep = Client::issued(
        leaf_params("d", 43),
        &pki.int_a_deep,
        &[&pki.int_a_deep, &pki.int_a],
    );
    let err = handshake(
        config,
        client_config(
            &server,
            Presented::Chain(&deep.chain, &deep.key),
            &rustls::version::TLS13,
        ),
    )
    .expect_err("a 4-certificate path exceeds depth 3");
    assert_eq!(handshake_failure(&err), Some(VerifyFailure::ChainTooLong));
}

#[test]
fn handshake_optional_mode() {
    let pki = Pki::new();
    let server = Server::new();
    let verifier =
        Arc::new(ClientVerifier::new(pki.config(ClientCertMode::Optional)).expect("verifier"));
    let config = server.config(verifier.clone());

    let good = Client::issued(leaf_params("good", 50), &pki.a, &[]);
    let revoked = Client::issued(leaf_params("revoked", REVOKED_SERIAL), &pki.a, &[]);
    let selfie = Client::self_signed(leaf_params("selfie", 51));
    let v1_key = KeyPair::generate().expect("key");
    let v1 = vec![v1_certificate("v1-device", &v1_key, Some(&pki.a))];
    let v1_self_key = KeyPair::generate().expect("key");
    let v1_self = vec![v1_certificate("v1-self", &v1_self_key, None)];

    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let accepted: Vec<(&str, &[CertificateDer<'static>], &KeyPair, &str, bool)> = vec![
            ("verified", &good.chain, &good.key, "SUCCESS", false),
            (
                "revoked",
                &revoked.chain,
                &revoked.key,
                "FAILED:certificate revoked",
                true,
            ),
            (
                "self-signed",
                &selfie.chain,
                &selfie.key,
                "FAILED:self-signed certificate",
                false,
            ),
            (
                "v1",
                &v1,
                &v1_key,
                "FAILED:unsupported certificate version",
                false,
            ),
            (
                "v1 self-signed",
                &v1_self,
                &v1_self_key,
                "FAILED:self-signed certificate",
                false,
            ),
        ];
        for (what, chain, key, verdict, is_revoked) in accepted {
            let conn = handshake(
                config.clone(),
                client_config(&server, Presented::Chain(chain, key), version),
            )
            .unwrap_or_else(|e| panic!("{version:?}: optional mode refused {what}: {e}"));
            let presented = peer_chain(&conn);
            assert_eq!(presented, chain, "{what}");
            let (got, got_revoked) = verifier.check(&presented);
            assert_eq!(got.to_string(), verdict, "{version:?}: {what}");
            assert_eq!(got_revoked, is_revoked, "{what}");
        }

        let none = handshake(
            config.clone(),
            client_config(&server, Presented::Nothing, version),
        )
        .expect("optional mode accepts no certificate");
        assert_eq!(verifier.check(&peer_chain(&none)), (Verdict::None, false));

        // The handshake signature is still checked against the leaf's key,
        // also for a v1 certificate webpki cannot parse.
        let wrong_key = KeyPair::generate().expect("key");
        for (what, chain) in [("v3", &good.chain), ("v1", &v1)] {
            let err = handshake(
                config.clone(),
                client_config(&server, Presented::Chain(chain, &wrong_key), version),
            )
            .err()
            .unwrap_or_else(|| {
                panic!("{version:?}: {what} certificate with the wrong key was accepted")
            });
            assert_eq!(
                err,
                Error::InvalidCertificate(CertificateError::BadSignature),
                "{version:?}: {what}"
            );
        }
    }
}

#[test]
fn optional_mode_refuses_an_unparsable_leaf() {
    let pki = Pki::new();
    let verifier = ClientVerifier::new(pki.config(ClientCertMode::Optional)).expect("verifier");
    let garbage = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01]);
    assert_eq!(
        verifier.verify_client_cert(&garbage, &[], now()).err(),
        Some(Error::InvalidCertificate(CertificateError::BadEncoding))
    );
}

#[test]
fn der_splitter() {
    let pki = Pki::new();
    let parts = split_certificate(pki.a.der()).expect("splits");
    assert_eq!(
        parts.signature_algorithm,
        &der::oid("1.2.840.10045.4.3.2")[..]
    );
    assert!(parts.tbs.len() < pki.a.der().len());
    assert!(is_self_signed(
        pki.a.der(),
        &rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms
    ));
    assert!(!is_self_signed(
        pki.int_a.der(),
        &rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms
    ));
    for bad in [
        &[][..],
        &[0x30],
        &[0x30, 0x81],
        &[0x30, 0x85, 1, 1, 1, 1, 1],
        &[0x1f, 0],
    ] {
        assert!(split_certificate(bad).is_none(), "{bad:?}");
    }
}
