//! Verification of one chain: which entries were altered, removed, inserted or reordered.
//!
//! An entry is authentic when its hash is what its fields give and its MAC is the chain key's.
//! The chain's head (MACed too) says how many entries there are. Then:
//! - an entry that is not authentic but claims a number no authentic entry has is *altered*
//!   (its content or hash was changed in place); one that claims a number an authentic entry
//!   has, or one past the head, is *inserted*;
//! - a number up to the head that no entry has is *removed* (a cut-off tail too);
//! - an entry stored after one with a higher number is *reordered*;
//! - authentic neighbours whose links disagree, or a head that does not match its entry, are
//!   *broken* (only possible with the key).

use std::collections::{BTreeSet, HashMap};

use bulkhead_directory::{AuditEntry, AuditHead, GENESIS};
use serde::Serialize;

use crate::seal::KeyedSeal;

/// What was found wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FindingKind {
    /// Changed in place.
    Altered,
    /// Missing.
    Removed,
    /// Added by someone without the key.
    Inserted,
    /// Stored out of order.
    Reordered,
    /// Links or head inconsistent.
    Broken,
}

/// One finding, located.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What kind.
    pub kind: FindingKind,
    /// The chain's entry number (first of a range, for removals).
    pub n: Option<i64>,
    /// The last number of a removed range.
    pub through: Option<i64>,
    /// The stored row's id.
    pub id: Option<i64>,
    /// In words.
    pub message: String,
}

/// The verdict on one chain.
#[derive(Debug, Clone, Serialize)]
pub struct ChainReport {
    /// The chain (a tenant id, or `global`).
    pub chain: String,
    /// Stored entries.
    pub entries: usize,
    /// The head's count, when the head is authentic.
    pub head: Option<i64>,
    /// Empty when the chain is intact.
    pub findings: Vec<Finding>,
}

impl ChainReport {
    /// True when nothing was found.
    pub fn intact(&self) -> bool {
        self.findings.is_empty()
    }
}

fn finding(kind: FindingKind, n: Option<i64>, id: Option<i64>, message: String) -> Finding {
    Finding {
        kind,
        n,
        through: None,
        id,
        message,
    }
}

/// Checks `entries` (in storage order) against `head`.
pub fn verify_chain(
    seal: &KeyedSeal,
    chain: &str,
    entries: &[AuditEntry],
    head: Option<&AuditHead>,
) -> ChainReport {
    let mut findings = Vec::new();
    let authentic: Vec<bool> = entries
        .iter()
        .map(|e| e.chain == chain && seal.hash_matches(e) && seal.mac_matches(e))
        .collect();
    // Authentic entries by number (the first stored, when a copy was inserted).
    let mut by_n: HashMap<i64, usize> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        if authentic[i] {
            by_n.entry(e.n).or_insert(i);
        }
    }
    let max_authentic = by_n.keys().copied().max().unwrap_or(0);
    let head_n = match head {
        Some(h) if h.chain == chain && seal.head_matches(h) => {
            if max_authentic > h.n {
                findings.push(finding(
                    FindingKind::Broken,
                    Some(h.n),
                    None,
                    format!(
                        "the chain's head says {} entries but entry {max_authentic} is authentic: the head was rolled back",
                        h.n
                    ),
                ));
            } else if let Some(&i) = by_n.get(&h.n) {
                if entries[i].hash != h.hash {
                    findings.push(finding(
                        FindingKind::Broken,
                        Some(h.n),
                        Some(entries[i].id),
                        format!("the chain's head does not match entry {}", h.n),
                    ));
                }
            }
            Some(h.n)
        }
        Some(_) => {
            findings.push(finding(
                FindingKind::Altered,
                None,
                None,
                "the chain's head was altered (its MAC does not verify)".into(),
            ));
            None
        }
        None if !entries.is_empty() => {
            findings.push(finding(
                FindingKind::Removed,
                None,
                None,
                "the chain's head is missing".into(),
            ));
            None
        }
        None => None,
    };
    let last_n = head_n.unwrap_or(max_authentic);

    // Entries that are not authentic: altered in place, or inserted.
    let mut covered: BTreeSet<i64> = by_n.keys().copied().collect();
    let mut seen_authentic: BTreeSet<i64> = BTreeSet::new();
    for (i, e) in entries.iter().enumerate() {
        if authentic[i] {
            if !seen_authentic.insert(e.n) {
                findings.push(finding(
                    FindingKind::Inserted,
                    Some(e.n),
                    Some(e.id),
                    format!("row {} is a second copy of entry {}", e.id, e.n),
                ));
            }
            continue;
        }
        if (1..=last_n).contains(&e.n) && !covered.contains(&e.n) {
            covered.insert(e.n);
            findings.push(finding(
                FindingKind::Altered,
                Some(e.n),
                Some(e.id),
                format!(
                    "entry {} (row {}, {} at {}) was altered: {}",
                    e.n,
                    e.id,
                    e.action,
                    e.at.to_rfc3339(),
                    if seal.hash_matches(e) {
                        "its MAC does not verify"
                    } else {
                        "its content does not match its hash"
                    }
                ),
            ));
        } else {
            findings.push(finding(
                FindingKind::Inserted,
                Some(e.n),
                Some(e.id),
                format!(
                    "row {} ({} at {}, claiming to be entry {}) was inserted: it is not signed with the chain's key",
                    e.id,
                    e.action,
                    e.at.to_rfc3339(),
                    e.n
                ),
            ));
        }
    }

    // Numbers no entry holds: removed, collapsed into ranges.
    let mut k = 1;
    while k <= last_n {
        if covered.contains(&k) {
            k += 1;
            continue;
        }
        let start = k;
        while k <= last_n && !covered.contains(&k) {
            k += 1;
        }
        let end = k - 1;
        let mut f = finding(
            FindingKind::Removed,
            Some(start),
            None,
            if start == end {
                format!("entry {start} was removed")
            } else {
                format!("entries {start} to {end} were removed")
            },
        );
        f.through = Some(end);
        findings.push(f);
    }

    // Links between authentic neighbours.
    for (&n, &i) in &by_n {
        let expected = if n == 1 {
            Some(GENESIS.to_vec())
        } else {
            by_n.get(&(n - 1)).map(|&p| entries[p].hash.clone())
        };
        if let Some(expected) = expected {
            if entries[i].prev_hash != expected {
                findings.push(finding(
                    FindingKind::Broken,
                    Some(n),
                    Some(entries[i].id),
                    format!("entry {n} does not link to entry {}", n - 1),
                ));
            }
        }
    }

    // Storage order against numbering.
    let mut highest: Option<(i64, i64)> = None;
    for (i, e) in entries.iter().enumerate() {
        let counted = authentic[i]
            || findings
                .iter()
                .any(|f| f.kind == FindingKind::Altered && f.id == Some(e.id));
        if !counted {
            continue;
        }
        match highest {
            Some((hn, hid)) if e.n < hn => findings.push(finding(
                FindingKind::Reordered,
                Some(e.n),
                Some(e.id),
                format!(
                    "entry {} (row {}) is stored after entry {hn} (row {hid}): the log was reordered",
                    e.n, e.id
                ),
            )),
            _ => highest = Some((e.n, e.id)),
        }
    }
    findings.sort_by_key(|f| (f.n.unwrap_or(0), f.id.unwrap_or(0)));
    ChainReport {
        chain: chain.to_string(),
        entries: entries.len(),
        head: head_n,
        findings,
    }
}
