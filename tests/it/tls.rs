//! Proves that `sslmode` in `DATABASE_URL` is honoured: a private PostgreSQL server is started
//! with a certificate from a CA generated here, and every mode is tried against it, with the
//! right CA, a wrong CA, no CA and a host name the certificate does not name.

use std::path::{Path, PathBuf};

use diesel::sql_types::Bool;
use diesel_async::RunQueryDsl;
use hubspot_sync::localpg::{LocalPgOptions, LocalPostgres, SslFiles};
use hubspot_sync::store::connect::{ConnectError, DbTarget, SslMode};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};

const IS_SSL: &str = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";

/// A CA and a server certificate for `localhost` and `127.0.0.1` signed by it.
struct Pki {
    ca_pem: String,
    server: SslFiles,
}

fn make_pki(name: &str) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, name);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

    let mut params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, "localhost");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    Pki { ca_pem: ca.pem(), server: SslFiles { cert_pem: cert.pem(), key_pem: key.serialize_pem() } }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Connects with the raw client and reports whether the session is encrypted.
async fn is_ssl(url: &str, ca: Option<&Path>) -> Result<bool, ConnectError> {
    let target = DbTarget::parse(url, ca).unwrap();
    let client = target.connect_raw("hubspot-sync-tls-test").await?;
    let row = client.query_one(IS_SSL, &[]).await.unwrap();
    Ok(row.get(0))
}

#[tokio::test]
async fn sslmode_is_honoured_against_a_tls_server() {
    let pki = make_pki("hubspot-sync test CA");
    let other = make_pki("some other CA");
    let files = tempfile::tempdir().unwrap();
    let ca = write(files.path(), "ca.pem", &pki.ca_pem);
    let wrong_ca = write(files.path(), "wrong-ca.pem", &other.ca_pem);

    let pg = LocalPostgres::start(LocalPgOptions { ssl: Some(pki.server), ..LocalPgOptions::default() }).unwrap();
    let port = pg.port();
    let url = |host: &str, mode: &str| format!("postgres://postgres@{host}:{port}/postgres?sslmode={mode}");

    // verify-full with the right CA, by IP address and by name.
    for host in ["127.0.0.1", "localhost"] {
        let ssl = is_ssl(&url(host, "verify-full"), Some(&ca)).await;
        assert!(ssl.unwrap(), "verify-full to {host} must use TLS");
    }

    // The diesel-async connection goes through the same TLS and sets application_name.
    let target = DbTarget::parse(&url("localhost", "verify-full"), Some(&ca)).unwrap();
    assert_eq!(target.ssl_mode(), SslMode::VerifyFull);
    let mut conn = target.connect("hubspot-sync-tls-test").await.unwrap();
    let query = format!("({IS_SSL}) AND current_setting('application_name') = 'hubspot-sync-tls-test'");
    let ok: bool = diesel::select(diesel::dsl::sql::<Bool>(&query)).get_result(&mut conn).await.unwrap();
    assert!(ok, "diesel connection must use TLS and set application_name");

    // A wrong CA is refused with a message naming the cause and the remedy.
    let error = is_ssl(&url("localhost", "verify-full"), Some(&wrong_ca)).await.unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, ConnectError::Certificate { .. }), "{message}");
    assert!(message.contains("could not verify the server certificate"), "{message}");
    assert!(message.contains("unknown issuer"), "{message}");
    assert!(message.contains("DATABASE_CA_CERT"), "{message}");

    // Without DATABASE_CA_CERT only public roots are trusted; the message says so.
    let message = is_ssl(&url("localhost", "verify-ca"), None).await.unwrap_err().to_string();
    assert!(message.contains("unknown issuer"), "{message}");
    assert!(message.contains("DATABASE_CA_CERT is not set"), "{message}");

    // A host name the certificate does not name: verify-full refuses, verify-ca accepts.
    let renamed = |mode: &str| {
        format!("postgres://postgres@db.example.invalid:{port}/postgres?hostaddr=127.0.0.1&sslmode={mode}")
    };
    let message = is_ssl(&renamed("verify-full"), Some(&ca)).await.unwrap_err().to_string();
    assert!(message.contains("hostname mismatch"), "{message}");
    assert!(message.contains("db.example.invalid"), "{message}");
    assert!(is_ssl(&renamed("verify-ca"), Some(&ca)).await.unwrap(), "verify-ca ignores the name");

    // require (without a CA) and prefer encrypt without checking the certificate; disable does
    // not encrypt.
    assert!(is_ssl(&url("localhost", "require"), None).await.unwrap(), "require");
    assert!(is_ssl(&format!("postgres://postgres@localhost:{port}/postgres"), None).await.unwrap(), "prefer");
    assert!(!is_ssl(&url("127.0.0.1", "disable"), None).await.unwrap(), "disable");

    pg.stop().await;
}

/// libpq: "if a root CA file exists, the behavior of sslmode=require will be the same as that of
/// verify-ca". An operator who sets `DATABASE_CA_CERT` with `require` is verified.
#[tokio::test]
async fn require_with_a_ca_verifies_the_chain_as_libpq_does() {
    let pki = make_pki("hubspot-sync test CA");
    let other = make_pki("some other CA");
    let files = tempfile::tempdir().unwrap();
    let ca = write(files.path(), "ca.pem", &pki.ca_pem);
    let wrong_ca = write(files.path(), "wrong-ca.pem", &other.ca_pem);
    let pg = LocalPostgres::start(LocalPgOptions { ssl: Some(pki.server), ..LocalPgOptions::default() }).unwrap();
    let port = pg.port();
    let require = |host: &str| format!("postgres://postgres@{host}:{port}/postgres?sslmode=require");

    // A wrong CA is refused, saying why, what to do and that require verifies with a CA.
    let error = is_ssl(&require("localhost"), Some(&wrong_ca)).await.unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, ConnectError::Certificate { .. }), "{message}");
    assert!(message.contains("could not verify the server certificate"), "{message}");
    assert!(message.contains("unknown issuer"), "{message}");
    assert!(message.contains("wrong-ca.pem"), "{message}");
    assert!(message.contains("sslmode=require checks the certificate against DATABASE_CA_CERT"), "{message}");
    // So is the same wrong CA given as `sslrootcert` in the URL.
    let in_url = format!("{}&sslrootcert={}", require("localhost"), wrong_ca.display());
    assert!(matches!(is_ssl(&in_url, None).await, Err(ConnectError::Certificate { .. })), "sslrootcert");

    // The right CA connects, encrypted; like verify-ca, the host name is not checked.
    assert!(is_ssl(&require("localhost"), Some(&ca)).await.unwrap(), "require + the right CA");
    let renamed = format!("postgres://postgres@db.example.invalid:{port}/postgres?hostaddr=127.0.0.1&sslmode=require");
    assert!(is_ssl(&renamed, Some(&ca)).await.unwrap(), "require + CA ignores the name, as verify-ca");
    let target = DbTarget::parse(&require("localhost"), Some(&ca)).unwrap();
    assert_eq!(target.ssl_mode(), SslMode::VerifyCa);
    assert!(target.redacted().ends_with("sslmode=verify-ca"), "the logged URL says what is in force");

    // Without a CA, require still connects without verifying (libpq's behaviour).
    assert!(is_ssl(&require("localhost"), None).await.unwrap(), "require without a CA");
    pg.stop().await;
}

#[tokio::test]
async fn require_fails_when_the_server_has_no_tls() {
    let pg = LocalPostgres::start(LocalPgOptions::default()).unwrap();
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port());
    assert!(!is_ssl(&format!("{url}?sslmode=prefer"), None).await.unwrap(), "prefer falls back");
    let message = is_ssl(&format!("{url}?sslmode=require"), None).await.unwrap_err().to_string();
    assert!(message.contains("TLS"), "{message}");
    pg.stop().await;
}
