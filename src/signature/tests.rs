//! Known-answer vectors and the verdict matrix.
//!
//! Two sources of vectors:
//! - `docs/hubspot.md` §1.7: HubSpot's documented examples (D1-D3),
//!   the Python and Ruby SDK test vectors (P1, R1) and our own (O1-O3);
//! - vectors computed for this file with HubSpot's official Python client, `pip install
//!   hubspot-api-client` (version 12.0.0), by
//!   `hubspot.utils.signature.Signature.get_signature(secret, body, version, uri, "POST", ts)`
//!   with the `PY_*` inputs below (the body holds non-ASCII text, the URI a query string whose
//!   `%3A`/`%2C` HubSpot decodes before signing).

use super::uri::{UriSource, signed_uri};
use super::*;

const DOC_SECRET: &str = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";
const DOC_URI: &str = "https://www.example.com/webhook_uri";
const D1_BODY: &str = r#"[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}]"#;
const SDK_BODY: &str = "{'example_field':'example_value'}";

const O_SECRET: &str = "hs-test-client-secret-0123456789";
const O_URI: &str = "https://sync.example.com/hubspot/webhooks";
const O_TS: &str = "1700000005000";
const O_BODY: &str = r#"[{"eventId":100,"subscriptionId":2001,"portalId":62515,"appId":54321,"occurredAt":1700000000000,"subscriptionType":"deal.propertyChange","attemptNumber":0,"objectId":9001,"propertyName":"dealstage","propertyValue":"closedwon","changeSource":"CRM_UI","sourceId":"userId:12345"}]"#;

const PY_SECRET: &str = "py-client-secret-rotated-2026";
/// As received on the wire; HubSpot signs `...&tag=a:b,c`.
const PY_PATH: &str = "/webhooks/hubspot?portal=62515&tag=a%3Ab%2Cc";
const PY_TS: &str = "1767225600000";
const PY_BODY: &str = r#"[{"eventId":7,"subscriptionType":"contact.propertyChange","objectId":501,"propertyName":"firstname","propertyValue":"Zoë Ångström – 東京"}]"#;
const PY_V3: &str = "r8ZC/9ethasmIgBHmas9oALnvfQhZHCgb9GqANCsVPQ=";
const PY_V1: &str = "4617ebf3f6c2acce22e340f4137b483879beef2ddc55e97db4cf41efd6575cfd";
const PY_V2: &str = "3bc83ec13730a99885b108ea89c4a8385b34ed72748804456014cc499dbb42e6";
/// `get_signature(PY_SECRET, "[]", "v3", "https://sync.example.com/webhooks/hubspot", "POST", PY_EMPTY_TS)`.
const PY_EMPTY_V3: &str = "Im0l7/ZJlrSwQNlnbOGOt1DiZwO6jgobc+/yMRGKPoI=";
const PY_EMPTY_TS: &str = "1767225600123";

fn secrets(list: &str) -> SecretList {
    list.parse().unwrap()
}

fn v3<'a>(sig: &'a str, ts: &'a str) -> SignatureHeaders<'a> {
    SignatureHeaders { v3: Some(sig), timestamp: Some(ts), ..Default::default() }
}

fn legacy<'a>(sig: &'a str, version: &'a str) -> SignatureHeaders<'a> {
    SignatureHeaders { legacy: Some(sig), legacy_version: Some(version), ..Default::default() }
}

fn check(
    method: &str,
    uri: &str,
    body: &str,
    headers: SignatureHeaders<'_>,
    secret: &str,
    now_ms: i64,
) -> Result<Verified, Rejection> {
    let req = SignedRequest { method, uri, body: body.as_bytes(), headers };
    verify(&req, Some(&secrets(secret)), false, now_ms)
}

const V1: Result<Verified, Rejection> = Ok(Verified { version: Version::V1, secret_index: 0 });
const V2: Result<Verified, Rejection> = Ok(Verified { version: Version::V2, secret_index: 0 });
const V3: Result<Verified, Rejection> = Ok(Verified { version: Version::V3, secret_index: 0 });

#[test]
fn reference_v1_and_v2_vectors() {
    let d1 = "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de";
    assert_eq!(check("POST", DOC_URI, D1_BODY, legacy(d1, "v1"), DOC_SECRET, 0), V1);
    let d2 = "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e";
    assert_eq!(check("GET", DOC_URI, "", legacy(d2, "v2"), DOC_SECRET, 0), V2);
    let d3 = "9569219f8ba981ffa6f6f16aa0f48637d35d728c7e4d93d0d52efaa512af7900";
    assert_eq!(check("POST", DOC_URI, r#"{"example_field":"example_value"}"#, legacy(d3, "v2"), DOC_SECRET, 0), V2);
    assert_eq!(O_BODY.len(), 277);
    let o1 = "8c3bea70edf5053b4e6c4333b30bcd2010ceebf0ff038fe98890942a583448c6";
    assert_eq!(check("POST", O_URI, O_BODY, legacy(o1, "v1"), O_SECRET, 0), V1);
    let o2 = "723c3592ad023c2658cf02e3495090c27d55d7258655989cc34140d19df97eeb";
    assert_eq!(check("POST", O_URI, O_BODY, legacy(o2, "v2"), O_SECRET, 0), V2);
}

#[test]
fn reference_v3_vectors_with_an_injected_clock() {
    let p1 = "HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw=";
    assert_eq!(check("POST", DOC_URI, SDK_BODY, v3(p1, "15000000"), DOC_SECRET, 15_001_000), V3);
    let r1 = "RnbPH7+UMKVkbV32P8bz450N4M56aPmcru1+D3kSDtw=";
    assert_eq!(check("POST", DOC_URI, SDK_BODY, v3(r1, "1700000300000"), DOC_SECRET, 1_700_000_301_000), V3);
    let o3 = "wQtaxoLLauXN7Vnogls8bd4dl/CBr+pVCuZMPHBArRg=";
    assert_eq!(check("POST", O_URI, O_BODY, v3(o3, O_TS), O_SECRET, 1_700_000_006_000), V3);
}

#[test]
fn python_client_vectors_through_the_rebuilt_uri() {
    let base = url::Url::parse("https://sync.example.com").unwrap();
    let source = UriSource { public_url: Some(&base), host: None, forwarded_proto: None, connection_scheme: "http" };
    let uri = signed_uri(&source, PY_PATH).unwrap();
    assert_eq!(uri, "https://sync.example.com/webhooks/hubspot?portal=62515&tag=a:b,c");
    let now = 1_767_225_600_000 + 1000;
    assert_eq!(check("POST", &uri, PY_BODY, v3(PY_V3, PY_TS), PY_SECRET, now), V3);
    assert_eq!(check("POST", &uri, PY_BODY, legacy(PY_V1, "v1"), PY_SECRET, now), V1);
    assert_eq!(check("POST", &uri, PY_BODY, legacy(PY_V2, "v2"), PY_SECRET, now), V2);
    let empty_uri = "https://sync.example.com/webhooks/hubspot";
    assert_eq!(check("POST", empty_uri, "[]", v3(PY_EMPTY_V3, PY_EMPTY_TS), PY_SECRET, now), V3);
    // The undecoded URI is not what HubSpot signed.
    let raw = format!("https://sync.example.com{PY_PATH}");
    assert_eq!(check("POST", &raw, PY_BODY, v3(PY_V3, PY_TS), PY_SECRET, now), Err(Rejection::Forged));
}

#[test]
fn rotation_accepts_any_configured_secret() {
    let req = SignedRequest { method: "POST", uri: O_URI, body: O_BODY.as_bytes(), headers: v3("", O_TS) };
    let sig = "wQtaxoLLauXN7Vnogls8bd4dl/CBr+pVCuZMPHBArRg=";
    let req = SignedRequest { headers: v3(sig, O_TS), ..req };
    let list = secrets(&format!("old-secret,{O_SECRET}"));
    assert_eq!(
        verify(&req, Some(&list), true, 1_700_000_005_000),
        Ok(Verified { version: Version::V3, secret_index: 1 })
    );
    assert_eq!(verify(&req, Some(&secrets("old-secret")), false, 1_700_000_005_000), Err(Rejection::Forged));
    assert_eq!(verify(&req, None, false, 1_700_000_005_000), Err(Rejection::NoSecret));
}

#[test]
fn timestamps_within_five_minutes_both_ways() {
    let sig = "wQtaxoLLauXN7Vnogls8bd4dl/CBr+pVCuZMPHBArRg=";
    let ts = 1_700_000_005_000;
    let at = |now| check("POST", O_URI, O_BODY, v3(sig, O_TS), O_SECRET, now);
    assert_eq!(at(ts + MAX_SKEW_MS), V3);
    assert_eq!(at(ts + MAX_SKEW_MS + 1), Err(Rejection::Stale));
    assert_eq!(at(ts - MAX_SKEW_MS), V3);
    assert_eq!(at(ts - MAX_SKEW_MS - 1), Err(Rejection::Future));
    for bad in ["", "-1", "1.7e12", " 1700000005000", "17000000050000000000000"] {
        let r = check("POST", O_URI, O_BODY, v3(sig, bad), O_SECRET, ts);
        assert_eq!(r, Err(Rejection::MalformedTimestamp), "{bad:?}");
    }
}

#[test]
fn forged_and_missing() {
    let now = 1_700_000_005_000;
    let sig = "wQtaxoLLauXN7Vnogls8bd4dl/CBr+pVCuZMPHBArRg=";
    let tampered = O_BODY.replace("closedwon", "closedlost");
    assert_eq!(check("POST", O_URI, &tampered, v3(sig, O_TS), O_SECRET, now), Err(Rejection::Forged));
    assert_eq!(check("POST", &format!("{O_URI}/"), O_BODY, v3(sig, O_TS), O_SECRET, now), Err(Rejection::Forged));
    assert_eq!(check("PUT", O_URI, O_BODY, v3(sig, O_TS), O_SECRET, now), Err(Rejection::Forged));
    assert_eq!(check("POST", O_URI, O_BODY, v3("not base64!", O_TS), O_SECRET, now), Err(Rejection::Forged));
    let only_sig = SignatureHeaders { v3: Some(sig), ..Default::default() };
    assert_eq!(check("POST", O_URI, O_BODY, only_sig, O_SECRET, now), Err(Rejection::MissingHeaders));
    assert_eq!(
        check("POST", O_URI, O_BODY, SignatureHeaders::default(), O_SECRET, now),
        Err(Rejection::MissingHeaders)
    );
    let o1 = "8c3bea70edf5053b4e6c4333b30bcd2010ceebf0ff038fe98890942a583448c6";
    assert_eq!(check("POST", O_URI, O_BODY, legacy(o1, "v2"), O_SECRET, now), Err(Rejection::Forged));
    assert_eq!(check("POST", O_URI, O_BODY, legacy(o1, "v9"), O_SECRET, now), Err(Rejection::UnknownVersion));
    assert_eq!(check("POST", O_URI, O_BODY, legacy("zz", "v1"), O_SECRET, now), Err(Rejection::Forged));
}

#[test]
fn v3_headers_are_judged_alone_and_v3_can_be_required() {
    let now = 1_700_000_005_000;
    let o1 = "8c3bea70edf5053b4e6c4333b30bcd2010ceebf0ff038fe98890942a583448c6";
    // A valid v1 next to a stale v3 does not rescue the request.
    let stale = SignatureHeaders {
        v3: Some("wQtaxoLLauXN7Vnogls8bd4dl/CBr+pVCuZMPHBArRg="),
        timestamp: Some(O_TS),
        legacy: Some(o1),
        legacy_version: Some("v1"),
    };
    assert_eq!(check("POST", O_URI, O_BODY, stale, O_SECRET, now + 10 * MAX_SKEW_MS), Err(Rejection::Stale));
    let req = SignedRequest { method: "POST", uri: O_URI, body: O_BODY.as_bytes(), headers: legacy(o1, "v1") };
    assert_eq!(verify(&req, Some(&secrets(O_SECRET)), true, now), Err(Rejection::V3Required));
    assert_eq!(verify(&req, Some(&secrets(O_SECRET)), false, now), V1);
}

#[test]
fn headers_are_read_by_lowercase_name() {
    let h = SignatureHeaders::from_lookup(|name| match name {
        headers::V3 => Some("s"),
        headers::TIMESTAMP => Some("1"),
        _ => None,
    });
    assert_eq!(h, SignatureHeaders { v3: Some("s"), timestamp: Some("1"), legacy: None, legacy_version: None });
}

#[test]
fn the_legacy_signature_identifies_a_body_however_its_hex_is_written() {
    let o1 = "8c3bea70edf5053b4e6c4333b30bcd2010ceebf0ff038fe98890942a583448c6";
    let bytes = legacy_signature(&legacy(o1, "v1")).unwrap();
    assert_eq!(hex::encode(bytes), o1);
    // Forms `verify` accepts give the same bytes: upper case, surrounding spaces, v3 next to it.
    let upper = o1.to_uppercase();
    assert_eq!(legacy_signature(&legacy(&upper, "v1")), Some(bytes));
    let spaced = format!(" {o1} ");
    assert_eq!(legacy_signature(&legacy(&spaced, "v1")), Some(bytes));
    let req = SignedRequest { method: "POST", uri: O_URI, body: O_BODY.as_bytes(), headers: legacy(&upper, "v1") };
    assert_eq!(verify(&req, Some(&secrets(O_SECRET)), false, 0), V1);
    let both = SignatureHeaders { v3: Some("x"), timestamp: Some(O_TS), ..legacy(o1, "v1") };
    assert_eq!(legacy_signature(&both), Some(bytes));
    // None without one, or with one `verify` would refuse as forged.
    assert_eq!(legacy_signature(&v3("x", O_TS)), None);
    assert_eq!(legacy_signature(&legacy("zz", "v1")), None);
    assert_eq!(legacy_signature(&legacy(&o1[2..], "v1")), None);
}
