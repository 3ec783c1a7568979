//! The security handshake of TCP and relayed connections: TLS 1.3 (`/tls/1.0.0`, the libp2p TLS
//! spec) offered first and noise (`/noise`) second, kubo's order. Peers that speak only noise
//! (Helia, js-libp2p) answer `na` to TLS and get noise.
//!
//! Why our own TLS upgrade rather than libp2p-tls's `Config`: libp2p-tls lists
//! ChaCha20-Poly1305 first among its TLS 1.3 suites, and a TLS 1.3 server follows the client's
//! order, so every rust-libp2p connection ran ChaCha20. With AES-NI/VAES (x86 servers) or the
//! ARMv8 crypto extensions, AES-128-GCM costs a fraction of that: node to node over loopback the
//! 1 GiB fetch moved 10-25% faster with AES-GCM first (benches/README.md, "Session 7"), the cipher
//! having been 19% of both nodes' CPU. The certificate (a self-signed X.509 carrying the libp2p
//! public key and its signature) is libp2p-tls's: [`certificate::generate`] and
//! [`certificate::parse`], which checks the extension's signature. What is ours is the suite
//! order, the verifier that turns a certificate into a [`PeerId`], and the noise/TLS choice.
//!
//! The record ciphers are *ring*'s, the rest of the provider (key exchange, signatures) is
//! aws-lc's. ring has a VAES + VPCLMULQDQ AVX2 AES-GCM, which aws-lc 0.47 lacks: on an AMD EPYC
//! with VAES but no AVX-512, aws-lc ran the older AES-NI path (`_aesni_ctr32_ghash_6x`, 17% of
//! both nodes' CPU in the 1 GiB fetch) and ring's `aes_gcm_*_update_vaes_avx2` took 7%; the fetch
//! moved ~10% faster (benches/README.md, "Session 9"). Where aws-lc has its AVX-512 path, ring's
//! AVX2 one is close to it.
//!
//! The dialer does not tell the verifier which peer it expects: the swarm compares the dialed
//! `/p2p/` id with the [`PeerId`] this upgrade returns, as it does for noise.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use futures::future::{BoxFuture, Either};
use futures::{AsyncRead, AsyncWrite, FutureExt, TryFutureExt};
use futures_rustls::{TlsAcceptor, TlsConnector, TlsStream};
use libp2p::core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade, UpgradeInfo};
use libp2p::identity::Keypair;
use libp2p::tls::certificate;
use libp2p::{noise, PeerId};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::crypto::ring::cipher_suite::{
    TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384, TLS13_CHACHA20_POLY1305_SHA256,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, ClientConfig, CommonState, DigitallySignedStruct, DistinguishedName,
    OtherError, ServerConfig, SignatureScheme, SupportedCipherSuite,
};

/// The TLS handshake's protocol name.
pub const TLS_PROTOCOL: &str = "/tls/1.0.0";
/// The noise handshake's protocol name.
pub const NOISE_PROTOCOL: &str = "/noise";
/// The ALPN value the libp2p TLS spec requires.
const ALPN: &[u8] = b"libp2p";
/// How many bytes of encrypted records a TLS connection holds for the socket (rustls's
/// buffer limit, 64 KiB by default). The secure channel writes what it is given as records
/// into this buffer and hands the buffer to the kernel in one `writev` once it is full or the
/// input ends, so with 64 KiB every 256 KiB yamux frame ([`super::muxer::FRAME_SEND_BYTES_MAX`])
/// took four system calls, each a loopback delivery and a wake-up of the receiving thread.
/// One frame and its header fit in this; it bounds what a connection holds past yamux's own
/// windows.
pub const TLS_SEND_BUFFER_BYTES: usize = super::muxer::FRAME_SEND_BYTES_MAX + 64 * 1024;

/// TLS 1.3 suites, most preferred first: AES-GCM (hardware-accelerated on servers), then
/// ChaCha20-Poly1305 for peers without AES. ring's implementations (see the module docs).
static SUITES: &[SupportedCipherSuite] = &[
    TLS13_AES_128_GCM_SHA256,
    TLS13_AES_256_GCM_SHA384,
    TLS13_CHACHA20_POLY1305_SHA256,
];

/// Signature schemes a libp2p certificate's key can use (the ones [`certificate::parse`] knows).
const SCHEMES: &[SignatureScheme] = &[
    SignatureScheme::ECDSA_NISTP256_SHA256,
    SignatureScheme::ECDSA_NISTP384_SHA384,
    SignatureScheme::ED25519,
    SignatureScheme::RSA_PSS_SHA256,
    SignatureScheme::RSA_PSS_SHA384,
    SignatureScheme::RSA_PSS_SHA512,
    SignatureScheme::RSA_PKCS1_SHA256,
    SignatureScheme::RSA_PKCS1_SHA384,
    SignatureScheme::RSA_PKCS1_SHA512,
];

/// The connection upgrade: TLS or noise, whichever the two sides agree on (TLS first).
#[derive(Clone)]
pub struct Security {
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
    noise: noise::Config,
}

/// A secured connection: TLS or noise.
pub type SecureStream<C> = Either<TlsStream<C>, noise::Output<C>>;

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// The TLS handshake failed (I/O, protocol, or a certificate our verifier refused).
    #[error("TLS handshake: {0}")]
    Tls(#[source] io::Error),
    /// The peer did not present exactly one certificate.
    #[error("TLS: the peer presented {0} certificates, libp2p requires exactly one")]
    CertificateCount(usize),
    /// The peer's certificate is not a valid libp2p certificate.
    #[error("TLS: {0}")]
    Certificate(#[source] certificate::ParseError),
    /// The noise handshake failed.
    #[error("noise handshake: {0}")]
    Noise(#[source] noise::Error),
}

/// Why the upgrade could not be configured (certificate generation, rustls, noise).
pub type SecurityConfigError = Box<dyn std::error::Error + Send + Sync>;

impl Security {
    /// Both handshakes for `keypair`, with a fresh TLS certificate for this node's lifetime.
    pub fn new(keypair: &Keypair) -> Result<Self, SecurityConfigError> {
        let (cert, key) = certificate::generate(keypair)?;
        let mut provider = rustls::crypto::aws_lc_rs::default_provider();
        provider.cipher_suites = SUITES.to_vec();
        // rustls's own single-certificate setters parse the certificate with webpki, which
        // refuses the libp2p extension (it is marked critical); a resolver skips that check.
        let own = Arc::new(OwnCertificate(Arc::new(CertifiedKey::new(
            vec![cert],
            provider.key_provider.load_private_key(key)?,
        ))));
        let provider: Arc<CryptoProvider> = Arc::new(provider);
        let verifier = Arc::new(PeerCertificate);
        let mut client = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_client_cert_resolver(own.clone());
        client.alpn_protocols = vec![ALPN.to_vec()];
        let mut server = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(own);
        server.alpn_protocols = vec![ALPN.to_vec()];
        Ok(Self {
            client: Arc::new(client),
            server: Arc::new(server),
            noise: noise::Config::new(keypair)?,
        })
    }
}

impl UpgradeInfo for Security {
    type Info = &'static str;
    type InfoIter = [&'static str; 2];

    fn protocol_info(&self) -> Self::InfoIter {
        [TLS_PROTOCOL, NOISE_PROTOCOL]
    }
}

impl<C> InboundConnectionUpgrade<C> for Security
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = (PeerId, SecureStream<C>);
    type Error = SecurityError;
    type Future = BoxFuture<'static, Result<Self::Output, Self::Error>>;

    fn upgrade_inbound(self, socket: C, protocol: Self::Info) -> Self::Future {
        if protocol != TLS_PROTOCOL {
            return noise_upgrade(self.noise.upgrade_inbound(socket, NOISE_PROTOCOL));
        }
        tls_upgrade(TlsAcceptor::from(self.server).accept_with(socket, |c| {
            c.set_buffer_limit(Some(TLS_SEND_BUFFER_BYTES));
        }))
    }
}

impl<C> OutboundConnectionUpgrade<C> for Security
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = (PeerId, SecureStream<C>);
    type Error = SecurityError;
    type Future = BoxFuture<'static, Result<Self::Output, Self::Error>>;

    fn upgrade_outbound(self, socket: C, protocol: Self::Info) -> Self::Future {
        if protocol != TLS_PROTOCOL {
            return noise_upgrade(self.noise.upgrade_outbound(socket, NOISE_PROTOCOL));
        }
        // The spec forbids a server name indication; rustls sends none for an IP address.
        let name = ServerName::IpAddress(IpAddr::V4(Ipv4Addr::UNSPECIFIED).into());
        tls_upgrade(
            TlsConnector::from(self.client).connect_with(name, socket, |c| {
                c.set_buffer_limit(Some(TLS_SEND_BUFFER_BYTES));
            }),
        )
    }
}

/// A TLS handshake (client or server side) and the peer its certificate names.
fn tls_upgrade<C, S, F>(
    handshake: F,
) -> BoxFuture<'static, Result<(PeerId, SecureStream<C>), SecurityError>>
where
    C: Send + 'static,
    S: Into<TlsStream<C>>,
    F: std::future::Future<Output = io::Result<S>> + Send + 'static,
{
    async move {
        let stream: TlsStream<C> = handshake.await.map_err(SecurityError::Tls)?.into();
        let peer = peer_of(stream.get_ref().1)?;
        Ok((peer, Either::Left(stream)))
    }
    .boxed()
}

fn noise_upgrade<C, F>(
    handshake: F,
) -> BoxFuture<'static, Result<(PeerId, SecureStream<C>), SecurityError>>
where
    F: std::future::Future<Output = Result<(PeerId, noise::Output<C>), noise::Error>>
        + Send
        + 'static,
{
    handshake
        .map_ok(|(peer, stream)| (peer, Either::Right(stream)))
        .map_err(SecurityError::Noise)
        .boxed()
}

/// This node's certificate, presented on both sides of every handshake.
#[derive(Debug)]
struct OwnCertificate(Arc<CertifiedKey>);

impl ResolvesClientCert for OwnCertificate {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl ResolvesServerCert for OwnCertificate {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// The peer a finished handshake authenticated: the key in its one certificate.
fn peer_of(state: &CommonState) -> Result<PeerId, SecurityError> {
    match state.peer_certificates() {
        Some([cert]) => Ok(certificate::parse(cert)
            .map_err(SecurityError::Certificate)?
            .peer_id()),
        other => Err(SecurityError::CertificateCount(other.map_or(0, <[_]>::len))),
    }
}

/// The verifier on both sides: the peer's certificate must be a single valid libp2p
/// certificate, and the handshake signature must verify under its key. There is no CA: the
/// identity is the libp2p key inside the certificate.
#[derive(Debug)]
struct PeerCertificate;

impl PeerCertificate {
    fn check(
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<(), rustls::Error> {
        if !intermediates.is_empty() {
            return Err(rustls::Error::General(format!(
                "libp2p TLS: {} intermediate certificates, expected none",
                intermediates.len()
            )));
        }
        certificate::parse(end_entity).map_err(invalid)?;
        Ok(())
    }

    fn signature(
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        certificate::parse(cert)
            .map_err(invalid)?
            .verify_signature(dss.scheme, message, dss.signature())
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadSignature))?;
        Ok(HandshakeSignatureValid::assertion())
    }
}

fn invalid(e: impl std::error::Error + Send + Sync + 'static) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
}

/// The handshake-signature methods, the same in both verifier traits.
macro_rules! signature_methods {
    () => {
        fn verify_tls12_signature(
            &self,
            _message: &[u8],
            _cert: &CertificateDer<'_>,
            _dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            // TLS 1.2 is never negotiated (the configs offer 1.3 only); refuse it if asked.
            Err(rustls::Error::General("libp2p TLS requires TLS 1.3".into()))
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Self::signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            SCHEMES.to_vec()
        }
    };
}

impl ServerCertVerifier for PeerCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Self::check(end_entity, intermediates)?;
        Ok(ServerCertVerified::assertion())
    }

    signature_methods!();
}

impl ClientCertVerifier for PeerCertificate {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Self::check(end_entity, intermediates)?;
        Ok(ClientCertVerified::assertion())
    }

    signature_methods!();
}

impl fmt::Debug for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Security")
            .field("protocols", &[TLS_PROTOCOL, NOISE_PROTOCOL])
            .finish()
    }
}

#[cfg(test)]
#[path = "security_tests.rs"]
mod tests;
