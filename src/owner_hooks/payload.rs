//! What an owner-change delivery carries, as a pure function of the change: the JSON body, its
//! HMAC-SHA256 signature, and how long to wait before the next attempt.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::store::owner_changes::OwnerChange;

/// Header holding the hex HMAC-SHA256 of the raw body, keyed with `OWNER_CHANGE_WEBHOOK_SECRET`.
pub const SIGNATURE_HEADER: &str = "X-HubSpot-Sync-Signature";
/// Header repeating the body's `delivery_id`, the same on every attempt.
pub const DELIVERY_HEADER: &str = "X-HubSpot-Sync-Delivery";
/// Header holding the attempt's number (1 for the first).
pub const ATTEMPT_HEADER: &str = "X-HubSpot-Sync-Attempt";

/// First retry delay; each later one doubles, up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between two attempts (deliveries are retried until accepted).
pub const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// The body: `{"delivery_id", "event": "owner_changed", "portal_id", "object", "id",
/// "old_owner_id", "new_owner_id", "changed_at"}`, the same bytes on every attempt. `portal_id`
/// is the HubSpot portal (account) of the record: record ids are unique within a portal only.
pub fn body(change: &OwnerChange) -> Vec<u8> {
    let json = serde_json::json!({
        "delivery_id": change.id,
        "event": "owner_changed",
        "portal_id": change.portal_id,
        "object": change.object,
        "id": change.hubspot_id,
        "old_owner_id": change.old_owner_id,
        "new_owner_id": change.new_owner_id,
        "changed_at": change.changed_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    json.to_string().into_bytes()
}

/// Lower-case hex HMAC-SHA256 of `body` keyed with `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC takes a key of any length: this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// How long to wait after the `failures`-th failed attempt (1 s, 2 s, 4 s ... 10 min).
pub fn backoff(failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(20));
    FIRST_BACKOFF.saturating_mul(factor).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn change() -> OwnerChange {
        OwnerChange {
            id: uuid::Uuid::nil(),
            portal_id: 2002,
            object: "deals".into(),
            hubspot_id: "42".into(),
            old_owner_id: None,
            new_owner_id: Some("7".into()),
            changed_at: chrono::Utc.with_ymd_and_hms(2026, 12, 3, 9, 0, 0).unwrap(),
            attempts: 0,
        }
    }

    #[test]
    fn the_body_names_the_delivery_and_the_change() {
        let body: serde_json::Value = serde_json::from_slice(&body(&change())).unwrap();
        assert_eq!(body["delivery_id"], "00000000-0000-0000-0000-000000000000");
        assert_eq!(body["portal_id"], 2002, "ids are unique within a portal only");
        assert_eq!(body["object"], "deals");
        assert_eq!(body["id"], "42");
        assert_eq!(body["old_owner_id"], serde_json::Value::Null);
        assert_eq!(body["new_owner_id"], "7");
        assert_eq!(body["changed_at"], "2026-12-03T09:00:00.000Z");
    }

    #[test]
    fn the_signature_is_the_hex_hmac_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_doubles_up_to_ten_minutes() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(3), Duration::from_secs(4));
        assert_eq!(backoff(50), MAX_BACKOFF);
    }
}
