//! The minimal accept loop from `docs/origin-guide.md`, kept here so that it
//! is compiled by `cargo test`. Run: `cargo run -p sigil-example-origin
//! --example minimal_origin` with `server.pem`, `server.key` and
//! `sigil-identity-ca.pem` in the current directory.

use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use sigil_origin::{IdentityVerifier, server_config};
use tokio_rustls::TlsAcceptor;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let chain = CertificateDer::pem_file_iter("server.pem")?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file("server.key")?;
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter("sigil-identity-ca.pem")? {
        roots.add(ca?)?;
    }
    // Step 1: rustls refuses any client without a certificate chaining to `roots`.
    let acceptor = TlsAcceptor::from(server_config(chain, key, roots, true)?);
    let identities = IdentityVerifier::new("sigil.local");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:9443").await?;
    loop {
        let (tcp, _) = listener.accept().await?;
        let Ok(tls) = acceptor.accept(tcp).await else {
            continue; // refused handshake
        };
        // Step 2: who is it?
        let peer = tls.get_ref().1.peer_certificates().unwrap_or_default();
        match identities.identify(peer) {
            Ok(id) if id.worker == "writer" => println!("{id}: may read and write"),
            Ok(id) => println!("{id}: may only read"),
            Err(e) => println!("verified certificate, but not a Sigil identity: {e}"),
        }
        // … hand `tls` to hyper (see examples/origin/src/server.rs) …
    }
}
