#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade};
use libp2p::tcp::tokio::TcpStream;
use rustls::pki_types::PrivatePkcs8KeyDer;

use super::*;

/// A connected TCP pair on loopback: (dialer's end, listener's end).
async fn pair() -> (TcpStream, TcpStream) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (dialer, accepted) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
    (TcpStream(dialer.unwrap()), TcpStream(accepted.unwrap().0))
}

/// The suite a TLS connection negotiated.
fn suite<C>(stream: &SecureStream<C>) -> SupportedCipherSuite {
    match stream {
        Either::Left(tls) => tls.get_ref().1.negotiated_cipher_suite().unwrap(),
        Either::Right(_) => panic!("noise, not TLS"),
    }
}

/// Writes a message each way and checks both arrive.
async fn exchange<A, B>(a: &mut A, b: &mut B)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let big = vec![7u8; 300_000];
    let (sent, received) = tokio::join!(
        async {
            a.write_all(&big).await.unwrap();
            a.flush().await.unwrap();
            let mut back = [0u8; 5];
            a.read_exact(&mut back).await.unwrap();
            back
        },
        async {
            let mut got = vec![0u8; big.len()];
            b.read_exact(&mut got).await.unwrap();
            b.write_all(b"thank").await.unwrap();
            b.flush().await.unwrap();
            got
        }
    );
    assert_eq!(&sent, b"thank");
    assert!(received == big);
}

/// A handshake over `protocol` between two fresh nodes, A dialing B; checks that each side
/// learned the other's peer id and returns (A's stream, B's stream).
async fn handshake(protocol: &'static str) -> (SecureStream<TcpStream>, SecureStream<TcpStream>) {
    let (a_key, b_key) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let (a, b) = (
        Security::new(&a_key).unwrap(),
        Security::new(&b_key).unwrap(),
    );
    let (dialer, listener) = pair().await;
    let (out, inb) = tokio::join!(
        a.upgrade_outbound(dialer, protocol),
        b.upgrade_inbound(listener, protocol)
    );
    let ((b_seen, a_stream), (a_seen, b_stream)) = (out.unwrap(), inb.unwrap());
    assert_eq!(b_seen, b_key.public().to_peer_id());
    assert_eq!(a_seen, a_key.public().to_peer_id());
    (a_stream, b_stream)
}

#[tokio::test]
async fn tls_authenticates_both_peers_and_runs_aes_gcm() {
    let (mut a_stream, mut b_stream) = handshake(TLS_PROTOCOL).await;
    assert_eq!(suite(&a_stream).suite(), TLS13_AES_128_GCM_SHA256.suite());
    assert_eq!(suite(&b_stream).suite(), TLS13_AES_128_GCM_SHA256.suite());
    exchange(&mut a_stream, &mut b_stream).await;
}

#[tokio::test]
async fn noise_is_the_second_choice_and_works() {
    assert_eq!(
        Security::new(&Keypair::generate_ed25519())
            .unwrap()
            .protocol_info(),
        [TLS_PROTOCOL, NOISE_PROTOCOL]
    );
    let (mut a_stream, mut b_stream) = handshake(NOISE_PROTOCOL).await;
    assert!(matches!(a_stream, Either::Right(_)));
    exchange(&mut a_stream, &mut b_stream).await;
}

/// Both directions with libp2p-tls, an implementation of the spec that is not ours. Its client
/// puts ChaCha20 first and a TLS 1.3 server follows the client's order, so that connection runs
/// ChaCha20; ours as the client gets AES-GCM from a libp2p-tls server.
#[tokio::test]
async fn interoperates_with_libp2p_tls_both_ways() {
    let (ours_key, theirs_key) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let ours = Security::new(&ours_key).unwrap();
    let theirs = libp2p::tls::Config::new(&theirs_key).unwrap();

    let (dialer, listener) = pair().await;
    let (out, inb) = tokio::join!(
        theirs.clone().upgrade_outbound(dialer, TLS_PROTOCOL),
        ours.clone().upgrade_inbound(listener, TLS_PROTOCOL)
    );
    let ((ours_seen, mut theirs_stream), (theirs_seen, mut ours_stream)) =
        (out.unwrap(), inb.unwrap());
    assert_eq!(ours_seen, ours_key.public().to_peer_id());
    assert_eq!(theirs_seen, theirs_key.public().to_peer_id());
    assert_eq!(
        suite(&ours_stream).suite(),
        TLS13_CHACHA20_POLY1305_SHA256.suite()
    );
    exchange(&mut theirs_stream, &mut ours_stream).await;

    let (dialer, listener) = pair().await;
    let (out, inb) = tokio::join!(
        ours.upgrade_outbound(dialer, TLS_PROTOCOL),
        theirs.upgrade_inbound(listener, TLS_PROTOCOL)
    );
    let ((theirs_seen, mut ours_stream), (ours_seen, mut theirs_stream)) =
        (out.unwrap(), inb.unwrap());
    assert_eq!(ours_seen, ours_key.public().to_peer_id());
    assert_eq!(theirs_seen, theirs_key.public().to_peer_id());
    assert_eq!(
        suite(&ours_stream).suite(),
        TLS13_AES_128_GCM_SHA256.suite()
    );
    exchange(&mut ours_stream, &mut theirs_stream).await;
}

/// A self-signed certificate without the libp2p extension (an ordinary TLS peer).
fn plain_certificate() -> (
    CertificateDer<'static>,
    rustls::pki_types::PrivateKeyDer<'static>,
) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["peer".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (
        cert.der().clone(),
        PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
    )
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Our listener refuses a client that presents no certificate, and one whose certificate
/// carries no libp2p key, with a typed error.
#[tokio::test]
async fn a_client_without_a_libp2p_certificate_is_refused() {
    let ours = Security::new(&Keypair::generate_ed25519()).unwrap();
    let anonymous = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PeerCertificate))
        .with_no_client_auth();
    let (cert, key) = plain_certificate();
    let plain = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PeerCertificate))
        .with_client_auth_cert(vec![cert], key)
        .unwrap();
    for client in [anonymous, plain] {
        let (dialer, listener) = pair().await;
        let name = ServerName::IpAddress(IpAddr::V4(Ipv4Addr::UNSPECIFIED).into());
        let (client_side, server_side) = tokio::join!(
            async {
                let mut stream = TlsConnector::from(Arc::new(client))
                    .connect(name, dialer)
                    .await?;
                // TLS 1.3 clients finish first; the refusal arrives on the next read.
                let mut byte = [0u8; 1];
                stream.read(&mut byte).await
            },
            ours.clone().upgrade_inbound(listener, TLS_PROTOCOL)
        );
        match server_side {
            Err(SecurityError::Tls(e)) => assert!(
                e.to_string().contains("certificate") || e.to_string().contains("Certificate"),
                "{e}"
            ),
            Err(other) => panic!("expected a TLS error, got {other}"),
            Ok((peer, _)) => panic!("accepted {peer}"),
        }
        assert!(matches!(client_side, Err(_) | Ok(0)), "{client_side:?}");
    }
}

/// Our dialer refuses a server whose certificate carries no libp2p key.
#[tokio::test]
async fn a_server_without_a_libp2p_certificate_is_refused() {
    let ours = Security::new(&Keypair::generate_ed25519()).unwrap();
    let (cert, key) = plain_certificate();
    let server = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(Arc::new(PeerCertificate))
        .with_single_cert(vec![cert], key)
        .unwrap();
    let (dialer, listener) = pair().await;
    let (client_side, _) = tokio::join!(
        ours.upgrade_outbound(dialer, TLS_PROTOCOL),
        TlsAcceptor::from(Arc::new(server)).accept(listener)
    );
    match client_side {
        Err(SecurityError::Tls(e)) => assert!(e.to_string().contains("ertificate"), "{e}"),
        Err(other) => panic!("expected a TLS error, got {other}"),
        Ok((peer, _)) => panic!("accepted {peer}"),
    }
}
