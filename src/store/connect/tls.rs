//! rustls client configuration for each libpq `sslmode`, the custom certificate verifiers that
//! libpq's semantics need, loading of `DATABASE_CA_CERT`, and turning a rustls certificate error
//! into a sentence an operator can act on.
//!
//! Every configuration uses the `ring` provider explicitly, so nothing depends on a process-wide
//! default provider being installed.

use std::{error::Error as StdError, path::Path, sync::Arc};

use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::{
        WebPkiServerVerifier,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    crypto::{CryptoProvider, WebPkiSupportedAlgorithms},
    pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject},
};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::mode::{DbUrlError, SslMode};

/// Where the trust anchors for `verify-ca`/`verify-full` come from.
#[derive(Clone)]
pub(super) enum Roots {
    /// The CA certificates of a PEM file (`DATABASE_CA_CERT` or `sslrootcert`).
    File(Arc<RootCertStore>),
    /// The public web PKI roots (`webpki-roots`).
    Public,
}

impl Roots {
    fn store(&self) -> Arc<RootCertStore> {
        match self {
            Roots::File(store) => Arc::clone(store),
            Roots::Public => Arc::new(RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() }),
        }
    }
}

/// Reads a PEM file of CA certificates; fails when it cannot be read or holds no usable CA.
pub(super) fn load_ca(path: &Path) -> Result<Roots, DbUrlError> {
    let fail = |reason: String| DbUrlError::CaCert { path: path.to_path_buf(), reason };
    let pem = std::fs::read(path).map_err(|e| fail(format!("cannot be read: {e}")))?;
    let mut store = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| fail(format!("is not valid PEM: {e}")))?;
        store.add(cert).map_err(|e| fail(format!("holds a certificate that cannot be used as a CA: {e}")))?;
    }
    if store.is_empty() {
        return Err(fail("holds no certificate (expected a -----BEGIN CERTIFICATE----- block)".to_owned()));
    }
    Ok(Roots::File(Arc::new(store)))
}

/// Builds the TLS connector for `mode`; `None` for `disable`.
pub(super) fn make_tls(mode: SslMode, roots: &Roots) -> Result<Option<MakeRustlsConnect>, DbUrlError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match mode {
        SslMode::Disable => return Ok(None),
        SslMode::Prefer | SslMode::Require => {
            Arc::new(AnyCertificate { algorithms: provider.signature_verification_algorithms })
        }
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let webpki = webpki_verifier(roots, &provider)?;
            if mode == SslMode::VerifyCa { Arc::new(ChainOnly { inner: webpki }) } else { webpki }
        }
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DbUrlError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Some(MakeRustlsConnect::new(config)))
}

fn webpki_verifier(roots: &Roots, provider: &Arc<CryptoProvider>) -> Result<Arc<WebPkiServerVerifier>, DbUrlError> {
    WebPkiServerVerifier::builder_with_provider(roots.store(), Arc::clone(provider))
        .build()
        .map_err(|e| DbUrlError::Tls(e.to_string()))
}

/// `prefer`/`require`: any certificate is accepted (libpq semantics), but the handshake signatures
/// are still checked, so the peer must hold the key of the certificate it presents.
#[derive(Debug)]
struct AnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `verify-ca`: the full web PKI verification, except that a certificate not naming the host is
/// accepted. webpki checks the chain before the name, so a name error means the chain was good.
#[derive(Debug)]
struct ChainOnly {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Finds the rustls certificate error inside a connection error. tokio-rustls wraps it in an
/// `io::Error`, whose `source()` skips the wrapped error, so each `io::Error` is opened too.
pub(super) fn certificate_error<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a CertificateError> {
    let mut next = Some(error);
    while let Some(current) = next {
        let inner = current
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|inner| inner as &(dyn StdError + 'static));
        for candidate in [Some(current), inner].into_iter().flatten() {
            if let Some(rustls::Error::InvalidCertificate(cert)) = candidate.downcast_ref::<rustls::Error>() {
                return Some(cert);
            }
        }
        next = current.source();
    }
    None
}

/// Explains why the certificate was refused and what to do about it.
pub(super) fn explain(error: &CertificateError, ca_file: Option<&Path>) -> (String, String) {
    let set_ca = "set DATABASE_CA_CERT to the PEM file of the CA that signs the database's \
                  certificate (for Supabase, the CA certificate from the project's database \
                  settings)";
    match error {
        CertificateError::UnknownIssuer => {
            let trusted = match ca_file {
                Some(path) => format!("the CA in {}", path.display()),
                None => "a public root CA (DATABASE_CA_CERT is not set)".to_owned(),
            };
            let remedy = match ca_file {
                Some(_) => format!("check that DATABASE_CA_CERT is the right CA, or {set_ca}"),
                None => set_ca.to_owned(),
            };
            (format!("unknown issuer: it is not signed by {trusted}"), remedy)
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => (
            format!("hostname mismatch: {error}"),
            "connect with a host name the certificate names, or use sslmode=verify-ca to check \
             only the chain against DATABASE_CA_CERT"
                .to_owned(),
        ),
        other => (other.to_string(), set_ca.to_owned()),
    }
}
