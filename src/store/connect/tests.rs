//! Unit tests of `DATABASE_URL` parsing: sslmode handling, the transaction-pooler refusal,
//! password redaction, per-test databases and `DATABASE_CA_CERT` validation.

use std::io::Write;

use super::*;

const URL: &str = "postgres://app:s3cret@db.example.com:5432/crm";

#[test]
fn every_sslmode_is_parsed_and_stripped() {
    for (text, mode) in [
        ("disable", SslMode::Disable),
        ("prefer", SslMode::Prefer),
        ("require", SslMode::Require),
        ("verify-ca", SslMode::VerifyCa),
        ("verify-full", SslMode::VerifyFull),
    ] {
        let target = DbTarget::parse(&format!("{URL}?sslmode={text}"), None).unwrap();
        assert_eq!(target.ssl_mode(), mode);
        assert_eq!(mode.to_string(), text);
        assert_eq!(text.parse::<SslMode>().unwrap(), mode);
        assert_eq!(target.tls.is_none(), mode == SslMode::Disable);
    }
}

#[test]
fn every_connection_keeps_alive_unless_the_url_says_otherwise() {
    let target = DbTarget::parse(URL, None).unwrap();
    assert!(target.config.get_keepalives());
    assert_eq!(target.config.get_keepalives_idle(), KEEPALIVE_IDLE);
    assert_eq!(target.config.get_keepalives_interval(), Some(KEEPALIVE_INTERVAL));
    assert_eq!(target.config.get_keepalives_retries(), Some(KEEPALIVE_PROBES));
    assert_eq!(target.config.get_tcp_user_timeout(), Some(&DEAD_PEER_AFTER));
    assert_eq!(KEEPALIVE_IDLE + KEEPALIVE_INTERVAL * KEEPALIVE_PROBES, DEAD_PEER_AFTER);

    let own = DbTarget::parse(&format!("{URL}?keepalives_idle=7&keepalives=0&tcp_user_timeout=9000"), None).unwrap();
    assert!(!own.config.get_keepalives());
    assert_eq!(own.config.get_keepalives_idle(), std::time::Duration::from_secs(7));
    assert_eq!(own.config.get_tcp_user_timeout(), Some(&std::time::Duration::from_secs(9)), "milliseconds, as libpq");
    let system = DbTarget::parse(&format!("{URL}?tcp_user_timeout=0"), None).unwrap();
    assert_eq!(system.config.get_tcp_user_timeout(), None, "0: the system's default");
    assert_eq!(own.config.get_keepalives_retries(), Some(KEEPALIVE_PROBES), "the rest keep our values");
}

#[test]
fn missing_sslmode_means_prefer() {
    let target = DbTarget::parse(URL, None).unwrap();
    assert_eq!(target.ssl_mode(), SslMode::Prefer);
}

#[test]
fn other_parameters_are_kept() {
    let url = format!("{URL}?application_name=x&sslmode=require&connect_timeout=3");
    let target = DbTarget::parse(&url, None).unwrap();
    assert_eq!(target.ssl_mode(), SslMode::Require);
    assert_eq!(target.config.get_connect_timeout(), Some(&std::time::Duration::from_secs(3)));
    assert!(!target.url.as_str().contains("sslmode"));
}

#[test]
fn unknown_sslmode_names_the_value() {
    let error = DbTarget::parse(&format!("{URL}?sslmode=verify-everything"), None).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("verify-everything"), "{message}");
    assert!(message.contains("verify-full"), "{message}");
}

#[test]
fn transaction_pooler_is_refused_with_the_reason() {
    let url = "postgresql://postgres.abc:pw@aws-0-eu-west-1.pooler.supabase.com:6543/postgres";
    let message = DbTarget::parse(url, None).unwrap_err().to_string();
    assert!(message.contains("6543"), "{message}");
    assert!(message.contains("transaction pooler"), "{message}");
    assert!(message.contains("prepared statements"), "{message}");
    assert!(message.contains("session pooler on port 5432"), "{message}");
    assert!(!message.contains("pw"), "{message}");
}

#[test]
fn other_schemes_are_refused() {
    let message = DbTarget::parse("mysql://u@h/db", None).unwrap_err().to_string();
    assert!(message.contains("postgres://"), "{message}");
}

#[test]
fn password_is_redacted() {
    let target = DbTarget::parse(&format!("{URL}?sslmode=require"), None).unwrap();
    let redacted = target.redacted();
    assert!(!redacted.contains("s3cret"), "{redacted}");
    assert_eq!(redacted, "postgres://app:***@db.example.com:5432/crm?sslmode=require");
    let debug = format!("{target:?}");
    assert!(!debug.contains("s3cret"), "{debug}");

    let in_query = DbTarget::parse("postgres://app@h/crm?password=s3cret", None).unwrap();
    assert!(!in_query.redacted().contains("s3cret"));
}

#[test]
fn with_database_switches_only_the_database() {
    let target = DbTarget::parse(&format!("{URL}?sslmode=verify-full"), None).unwrap();
    assert_eq!(target.database(), "crm");
    let other = target.with_database("test_42");
    assert_eq!(other.database(), "test_42");
    assert_eq!(other.ssl_mode(), SslMode::VerifyFull);
    assert_eq!(other.redacted(), "postgres://app:***@db.example.com:5432/test_42?sslmode=verify-full");
    assert_eq!(target.database(), "crm");
}

#[test]
fn database_defaults_to_the_user() {
    let target = DbTarget::parse("postgres://app@localhost", None).unwrap();
    assert_eq!(target.database(), "app");
}

#[test]
fn bad_ca_file_is_reported_at_parse_time() {
    let missing = Path::new("/nonexistent/ca.pem");
    let message = DbTarget::parse(URL, Some(missing)).unwrap_err().to_string();
    assert!(message.contains("DATABASE_CA_CERT"), "{message}");
    assert!(message.contains("/nonexistent/ca.pem"), "{message}");

    let mut not_pem = tempfile::NamedTempFile::new().unwrap();
    not_pem.write_all(b"this is not a certificate\n").unwrap();
    let message = DbTarget::parse(URL, Some(not_pem.path())).unwrap_err().to_string();
    assert!(message.contains("DATABASE_CA_CERT"), "{message}");
    assert!(message.contains("BEGIN CERTIFICATE"), "{message}");
}

#[test]
fn sslrootcert_is_an_alternative_ca_path() {
    let url = format!("{URL}?sslmode=verify-full&sslrootcert=/nonexistent/root.crt");
    let message = DbTarget::parse(&url, None).unwrap_err().to_string();
    assert!(message.contains("/nonexistent/root.crt"), "{message}");
    // `system` means the public roots.
    let url = format!("{URL}?sslmode=verify-full&sslrootcert=system");
    assert!(DbTarget::parse(&url, None).is_ok());
}

/// A PEM file holding one freshly generated CA certificate.
fn ca_file() -> tempfile::NamedTempFile {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = params.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap();
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(ca.pem().as_bytes()).unwrap();
    file
}

#[test]
fn require_with_a_ca_file_verifies_the_chain_as_libpq_does() {
    let ca = ca_file();
    let with_ca = DbTarget::parse(&format!("{URL}?sslmode=require"), Some(ca.path())).unwrap();
    assert_eq!(with_ca.ssl_mode(), SslMode::VerifyCa);
    assert_eq!(with_ca.redacted(), "postgres://app:***@db.example.com:5432/crm?sslmode=verify-ca");
    let url = format!("{URL}?sslmode=require&sslrootcert={}", ca.path().display());
    assert_eq!(DbTarget::parse(&url, None).unwrap().ssl_mode(), SslMode::VerifyCa, "sslrootcert too");
    // Without a CA file, require stays unverified; other modes are never changed by one.
    assert_eq!(DbTarget::parse(&format!("{URL}?sslmode=require"), None).unwrap().ssl_mode(), SslMode::Require);
    for mode in [SslMode::Disable, SslMode::Prefer, SslMode::VerifyCa, SslMode::VerifyFull] {
        let target = DbTarget::parse(&format!("{URL}?sslmode={mode}"), Some(ca.path())).unwrap();
        assert_eq!(target.ssl_mode(), mode);
    }
}

#[test]
fn system_roots_mean_verify_full_as_in_libpq() {
    let url = format!("{URL}?sslrootcert=system");
    assert_eq!(DbTarget::parse(&url, None).unwrap().ssl_mode(), SslMode::VerifyFull, "the default with system");
    for weak in ["disable", "prefer", "require", "verify-ca"] {
        let message = DbTarget::parse(&format!("{url}&sslmode={weak}"), None).unwrap_err().to_string();
        assert!(message.contains(&format!("sslmode={weak}")), "{message}");
        assert!(message.contains("verify-full"), "{message}");
    }
}
