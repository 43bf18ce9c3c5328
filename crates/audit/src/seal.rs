//! What an entry's hash and MAC cover.
//!
//! The hash is SHA-256 over a version tag and every field but the storage id, each
//! length-prefixed: the event's id, chain, entry number, tenant, actor, action, the details as canonical JSON
//! (keys sorted, no spaces), the time in microseconds, and the previous entry's hash. The MAC
//! is HMAC-SHA256 of the hash under the chain's own key, derived from the master key, so an
//! entry cannot be forged or recomputed without it, nor moved to another tenant's chain.

use bulkhead_directory::{AuditEntry, AuditHead, ChainSeal};
use bulkhead_keys::{hmac, MasterKey};
use hmac::Mac;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Seals and checks entries with keys derived from the master key.
#[derive(Clone)]
pub struct KeyedSeal {
    master: MasterKey,
}

impl std::fmt::Debug for KeyedSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyedSeal(..)")
    }
}

fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// `v` as canonical JSON: object keys sorted, no insignificant whitespace.
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                write_canonical(&map[k.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The entry's hash as its fields say.
pub fn entry_hash(e: &AuditEntry) -> Vec<u8> {
    let mut b = Vec::with_capacity(256);
    field(&mut b, b"bulkhead audit entry v1");
    field(&mut b, e.event_id.as_bytes());
    field(&mut b, e.chain.as_bytes());
    field(&mut b, &e.n.to_be_bytes());
    field(
        &mut b,
        e.tenant_id
            .map(|t| t.to_string())
            .unwrap_or_default()
            .as_bytes(),
    );
    field(&mut b, e.actor.as_bytes());
    field(&mut b, e.action.as_bytes());
    field(&mut b, canonical_json(&e.details).as_bytes());
    field(&mut b, &e.at.timestamp_micros().to_be_bytes());
    field(&mut b, &e.prev_hash);
    Sha256::digest(&b).to_vec()
}

fn head_bytes(h: &AuditHead) -> Vec<u8> {
    let mut b = Vec::with_capacity(96);
    field(&mut b, b"bulkhead audit head v1");
    field(&mut b, h.chain.as_bytes());
    field(&mut b, &h.n.to_be_bytes());
    field(&mut b, &h.hash);
    b
}

impl KeyedSeal {
    /// Seals with keys derived from `master`.
    pub fn new(master: MasterKey) -> Self {
        Self { master }
    }

    fn mac(&self, chain: &str, bytes: &[u8]) -> hmac::Hmac<Sha256> {
        let mut m = hmac(
            &self
                .master
                .derived(&format!("bulkhead audit chain v1 {chain}")),
        );
        m.update(bytes);
        m
    }

    /// True when the entry's stored hash is what its fields give.
    pub fn hash_matches(&self, e: &AuditEntry) -> bool {
        entry_hash(e) == e.hash
    }

    /// True when the entry's MAC is its chain key's over its stored hash.
    pub fn mac_matches(&self, e: &AuditEntry) -> bool {
        self.mac(&e.chain, &e.hash).verify_slice(&e.mac).is_ok()
    }

    /// True when the head's MAC is right.
    pub fn head_matches(&self, h: &AuditHead) -> bool {
        self.mac(&h.chain, &head_bytes(h))
            .verify_slice(&h.mac)
            .is_ok()
    }
}

impl ChainSeal for KeyedSeal {
    fn seal(&self, e: &mut AuditEntry) {
        e.hash = entry_hash(e);
        e.mac = self.mac(&e.chain, &e.hash).finalize().into_bytes().to_vec();
    }

    fn seal_head(&self, h: &mut AuditHead) {
        h.mac = self
            .mac(&h.chain, &head_bytes(h))
            .finalize()
            .into_bytes()
            .to_vec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let a = json!({"b": 1, "a": {"d": [1, {"z": 0, "y": "x"}], "c": null}});
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"c":null,"d":[1,{"y":"x","z":0}]},"b":1}"#
        );
    }

    #[test]
    fn every_covered_field_changes_the_hash_and_the_key_changes_the_mac() {
        let seal = KeyedSeal::new(MasterKey::from_bytes([3; 32]));
        let mut e = AuditEntry {
            id: 1,
            event_id: uuid::Uuid::nil(),
            chain: "c".into(),
            n: 1,
            tenant_id: None,
            actor: "api".into(),
            action: "tenant.created".into(),
            details: json!({"slug": "acme"}),
            at: chrono::DateTime::from_timestamp_micros(1_700_000_000_000_001).unwrap_or_default(),
            prev_hash: vec![0; 32],
            hash: vec![],
            mac: vec![],
        };
        seal.seal(&mut e);
        assert!(seal.hash_matches(&e) && seal.mac_matches(&e));
        type Change = Box<dyn Fn(&mut AuditEntry)>;
        let changes: Vec<Change> = vec![
            Box::new(|e| e.event_id = uuid::Uuid::max()),
            Box::new(|e| e.chain = "d".into()),
            Box::new(|e| e.n = 2),
            Box::new(|e| e.actor = "cli".into()),
            Box::new(|e| e.action = "tenant.deleted".into()),
            Box::new(|e| e.details = json!({"slug": "acmf"})),
            Box::new(|e| e.at += chrono::Duration::microseconds(1)),
            Box::new(|e| e.prev_hash = vec![1; 32]),
        ];
        for change in changes {
            let mut x = e.clone();
            change(&mut x);
            assert!(!seal.hash_matches(&x));
        }
        // The id is storage order only.
        let mut x = e.clone();
        x.id = 9;
        assert!(seal.hash_matches(&x));
        let other = KeyedSeal::new(MasterKey::from_bytes([4; 32]));
        assert!(!other.mac_matches(&e));
        // Another chain's key does not verify it either.
        let mut moved = e.clone();
        moved.chain = "d".into();
        seal.seal(&mut moved);
        let mut back = moved.clone();
        back.chain = "c".into();
        assert!(!seal.mac_matches(&back));
    }
}
