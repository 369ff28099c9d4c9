//! libpq's `sslmode` and `sslrootcert` on rustls (ring): the TLS stack that
//! keeps the binary static. What each mode means, as libpq documents it:
//!
//! - `disable`: plain TCP.
//! - `prefer`: TLS when the server offers it, else plain; the server's
//!   certificate is not checked (libpq does not check it either).
//! - `require`: TLS or fail; the certificate is not checked, unless an
//!   `sslrootcert` file is given, which makes it `verify-ca` (libpq does so).
//! - `verify-ca`: the chain must end at a trusted root; the host name is
//!   not checked.
//! - `verify-full`: the chain and the host name.
//!
//! The trusted roots are the `sslrootcert` file, or Mozilla's roots built
//! in when it is unset (or `system`): the image has no CA bundle.
//!
//! The connector hands tokio-postgres a rustls stream; it offers no channel
//! binding, so SCRAM runs without `-PLUS`, as libpq's default `prefer`
//! allows.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::{CryptoProvider, ring};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

use crate::config::SslMode;

/// What goes wrong before a byte reaches the server: the root file.
#[derive(Debug, thiserror::Error)]
#[error("{problem}")]
pub struct RootsError {
    pub problem: String,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// The rustls configuration for one `sslmode` (unused with `disable`, but
/// the connector wants one).
pub fn client_config(mode: SslMode, root_cert: Option<&Path>) -> Result<ClientConfig, RootsError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| RootsError {
            problem: e.to_string(),
        })?;
    let config = match (mode, root_cert) {
        (SslMode::Prefer | SslMode::Require, Some(_)) => {
            return client_config(SslMode::VerifyCa, root_cert);
        }
        (SslMode::Disable, _) | (SslMode::Prefer | SslMode::Require, None) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Lax {
                roots: None,
                provider,
            }))
            .with_no_client_auth(),
        (SslMode::VerifyCa, _) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Lax {
                roots: Some(load_roots(root_cert)?),
                provider,
            }))
            .with_no_client_auth(),
        (SslMode::VerifyFull, _) => builder
            .with_root_certificates(load_roots(root_cert)?)
            .with_no_client_auth(),
    };
    Ok(config)
}

/// The `sslrootcert` PEM bundle, or Mozilla's roots.
fn load_roots(root_cert: Option<&Path>) -> Result<RootCertStore, RootsError> {
    let Some(path) = root_cert else {
        return Ok(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        });
    };
    let fail = |problem: String| RootsError {
        problem: format!("sslrootcert {}: {problem}", path.display()),
    };
    let mut store = RootCertStore::empty();
    let certificates = CertificateDer::pem_file_iter(path).map_err(|e| fail(e.to_string()))?;
    for certificate in certificates {
        let certificate = certificate.map_err(|e| fail(e.to_string()))?;
        store.add(certificate).map_err(|e| fail(e.to_string()))?;
    }
    if store.is_empty() {
        return Err(fail("holds no PEM certificate".to_owned()));
    }
    Ok(store)
}

/// A certificate check laxer than rustls's own: `verify-ca` (`roots`
/// given) wants a chain to a trusted root, whatever name the certificate is
/// for; `prefer` and `require` without a root file (no `roots`) encrypt
/// without authenticating (libpq's meaning). The handshake signatures are
/// checked as usual in both.
#[derive(Debug)]
struct Lax {
    roots: Option<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Lax {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let certificate = ParsedCertificate::try_from(end_entity)?;
            verify_server_cert_signed_by_trust_anchor(
                &certificate,
                roots,
                intermediates,
                now,
                self.provider.signature_verification_algorithms.all,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            certificate,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            certificate,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// tokio-postgres's TLS hook, over tokio-rustls.
#[derive(Clone)]
pub struct MakeTls {
    config: Arc<ClientConfig>,
}

impl MakeTls {
    pub fn new(config: ClientConfig) -> Self {
        Self {
            config: Arc::new(config),
        }
    }
}

impl<S> MakeTlsConnect<S> for MakeTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Stream<S>;
    type TlsConnect = Connect;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Connect, Self::Error> {
        Ok(Connect {
            connector: tokio_rustls::TlsConnector::from(self.config.clone()),
            name: ServerName::try_from(domain)?.to_owned(),
        })
    }
}

pub struct Connect {
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
}

type Handshake<S> = Pin<Box<dyn Future<Output = io::Result<Stream<S>>> + Send>>;

impl<S> TlsConnect<S> for Connect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Stream<S>;
    type Error = io::Error;
    type Future = Handshake<S>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let stream = self.connector.connect(self.name, stream).await?;
            Ok(Stream(stream))
        })
    }
}

pub struct Stream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Stream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Stream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for Stream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}
