//! The webhook signature check on hostile input: arbitrary method, URI pieces, body, headers,
//! secrets and clock. It must never panic, must refuse what it cannot verify, and must accept
//! every request signed by the simulator's independent signer (v1, v2, v3) within the skew.
#![no_main]

use hubspot_sim::webhooks::sign;
use hubspot_sync::config::SecretList;
use hubspot_sync::signature::uri::{UriSource, signed_form, signed_uri};
use hubspot_sync::signature::{self, MAX_SKEW_MS, SignatureHeaders, SignedRequest, Version};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    method: &'a str,
    path_and_query: &'a str,
    host: Option<&'a str>,
    forwarded_proto: Option<&'a str>,
    public_url: Option<&'a str>,
    body: &'a [u8],
    v3: Option<&'a str>,
    timestamp: Option<&'a str>,
    legacy: Option<&'a str>,
    legacy_version: Option<&'a str>,
    secrets: &'a str,
    require_v3: bool,
    now_ms: i64,
    /// 0: headers as given; 1: v1; 2: v2; 3: v3 signed by the simulator's signer.
    mode: u8,
    skew_ms: i32,
}

fuzz_target!(|input: Input<'_>| {
    // The twelve-decoding pass agrees with the simulator's (independent) implementation.
    assert_eq!(signed_form(input.path_and_query), sign::signed_uri(input.path_and_query));
    let public_url = input.public_url.and_then(|u| url::Url::parse(u).ok());
    let source = UriSource {
        public_url: public_url.as_ref(),
        host: input.host,
        forwarded_proto: input.forwarded_proto,
        connection_scheme: "http",
    };
    let uri = signed_uri(&source, input.path_and_query);
    let secrets: Option<SecretList> = input.secrets.parse().ok();
    let uri_str = uri.as_deref().unwrap_or("");
    let headers = SignatureHeaders {
        v3: input.v3,
        timestamp: input.timestamp,
        legacy: input.legacy,
        legacy_version: input.legacy_version,
    };
    let req = SignedRequest { method: input.method, uri: uri_str, body: input.body, headers };
    // Arbitrary headers: any verdict, but no panic.
    let _ = signature::verify(&req, secrets.as_ref(), input.require_v3, input.now_ms);

    let Some(secrets) = secrets else { return };
    let Some(secret) = secrets.iter().last().map(|s| s.expose().to_owned()) else { return };
    // A clock between 1970 and 2100 (HubSpot's timestamps are 13-digit Unix ms; the check
    // refuses anything over 18 digits, which no correct signer sends).
    let now = input.now_ms.rem_euclid(4_102_444_800_000);
    let (verdict, want) = match input.mode % 4 {
        1 => {
            let sig = sign::v1(&secret, input.body);
            let headers = SignatureHeaders { legacy: Some(&sig), legacy_version: Some("v1"), ..Default::default() };
            let req = SignedRequest { headers, ..req };
            (signature::verify(&req, Some(&secrets), input.require_v3, now), Version::V1)
        }
        2 => {
            let sig = sign::v2(&secret, input.method, uri_str, input.body);
            let headers = SignatureHeaders { legacy: Some(&sig), legacy_version: Some("v2"), ..Default::default() };
            let req = SignedRequest { headers, ..req };
            (signature::verify(&req, Some(&secrets), input.require_v3, now), Version::V2)
        }
        3 => {
            let skew = i64::from(input.skew_ms) % (MAX_SKEW_MS + 1);
            let Some(ts) = now.checked_add(skew).filter(|t| *t >= 0) else { return };
            let ts = ts.to_string();
            let sig = sign::v3(&secret, input.method, uri_str, input.body, &ts);
            let headers = SignatureHeaders { v3: Some(&sig), timestamp: Some(&ts), ..Default::default() };
            let req = SignedRequest { headers, ..req };
            (signature::verify(&req, Some(&secrets), input.require_v3, now), Version::V3)
        }
        _ => return,
    };
    if want != Version::V3 && input.require_v3 {
        assert_eq!(verdict, Err(signature::Rejection::V3Required));
        return;
    }
    let verified = verdict.unwrap_or_else(|e| panic!("a correctly signed {want:?} request was refused: {e}"));
    assert_eq!(verified.version, want);
});
