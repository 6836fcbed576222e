//! HubSpot's webhook request signatures (docs/hubspot.md §1.2-1.4).

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// v1: lowercase hex SHA-256 of `secret + body` (a plain hash, not an HMAC).
pub fn v1(secret: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(secret.as_bytes());
    h.update(body);
    hex::encode(h.finalize())
}

/// v2: lowercase hex SHA-256 of `secret + method + uri + body`.
pub fn v2(secret: &str, method: &str, uri: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(secret.as_bytes());
    h.update(method.as_bytes());
    h.update(uri.as_bytes());
    h.update(body);
    hex::encode(h.finalize())
}

/// v3: base64 HMAC-SHA256, keyed by the secret, over `method + uri + body + timestamp`.
pub fn v3(secret: &str, method: &str, uri: &str, body: &[u8], timestamp: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail; fall back to an empty signature.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(method.as_bytes());
    mac.update(uri.as_bytes());
    mac.update(body);
    mac.update(timestamp.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The URI as HubSpot signs it: the 12 percent-encodings of the docs' table decoded.
pub fn signed_uri(url: &str) -> String {
    const TABLE: [(&str, &str); 12] = [
        ("%3A", ":"),
        ("%2F", "/"),
        ("%3F", "?"),
        ("%40", "@"),
        ("%21", "!"),
        ("%24", "$"),
        ("%27", "'"),
        ("%28", "("),
        ("%29", ")"),
        ("%2A", "*"),
        ("%2C", ","),
        ("%3B", ";"),
    ];
    let mut out = url.to_string();
    for (enc, dec) in TABLE {
        out = out.replace(enc, dec);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";
    const URI: &str = "https://www.example.com/webhook_uri";
    const D1_BODY: &str = r#"[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}]"#;
    const O_SECRET: &str = "hs-test-client-secret-0123456789";
    const O_URI: &str = "https://sync.example.com/hubspot/webhooks";
    const O_BODY: &str = r#"[{"eventId":100,"subscriptionId":2001,"portalId":62515,"appId":54321,"occurredAt":1700000000000,"subscriptionType":"deal.propertyChange","attemptNumber":0,"objectId":9001,"propertyName":"dealstage","propertyValue":"closedwon","changeSource":"CRM_UI","sourceId":"userId:12345"}]"#;

    #[test]
    fn v1_vectors() {
        assert_eq!(v1(SECRET, D1_BODY.as_bytes()), "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de");
        assert_eq!(O_BODY.len(), 277);
        assert_eq!(v1(O_SECRET, O_BODY.as_bytes()), "8c3bea70edf5053b4e6c4333b30bcd2010ceebf0ff038fe98890942a583448c6");
    }

    #[test]
    fn v2_vectors() {
        assert_eq!(v2(SECRET, "GET", URI, b""), "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e");
        assert_eq!(
            v2(SECRET, "POST", URI, br#"{"example_field":"example_value"}"#),
            "9569219f8ba981ffa6f6f16aa0f48637d35d728c7e4d93d0d52efaa512af7900"
        );
        assert_eq!(
            v2(O_SECRET, "POST", O_URI, O_BODY.as_bytes()),
            "723c3592ad023c2658cf02e3495090c27d55d7258655989cc34140d19df97eeb"
        );
    }

    #[test]
    fn v3_vectors() {
        let body = b"{'example_field':'example_value'}";
        assert_eq!(v3(SECRET, "POST", URI, body, "15000000"), "HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw=");
        assert_eq!(v3(SECRET, "POST", URI, body, "1700000300000"), "RnbPH7+UMKVkbV32P8bz450N4M56aPmcru1+D3kSDtw=");
        assert_eq!(
            v3(O_SECRET, "POST", O_URI, O_BODY.as_bytes(), "1700000005000"),
            "wQtaxoLLauXN7Vnogls8bd4dl/CBr+pVCuZMPHBArRg="
        );
    }

    #[test]
    fn uri_decoding() {
        assert_eq!(signed_uri("https://h.example/a%3Ab%2Cc?x=%40"), "https://h.example/a:b,c?x=@");
        assert_eq!(signed_uri("https://h.example/a%20b"), "https://h.example/a%20b");
    }
}
