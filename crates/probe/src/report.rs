//! What the probe found: one row per vector and mode.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

/// How an attack ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Refused, or it saw and changed only the attacker's own data.
    Blocked,
    /// The attacker saw or changed the victim's data, or acted as the victim.
    Leak,
    /// The probe could not tell (its own step failed): treated as a failure.
    Inconclusive,
}

/// One attack.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeRow {
    /// The vector.
    pub vector: String,
    /// The isolation mode of the two tenants.
    pub mode: String,
    /// How it ended.
    pub outcome: Outcome,
    /// What happened.
    pub detail: String,
}

/// Every attack.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ProbeReport {
    /// The attacks, in the order they ran.
    pub rows: Vec<ProbeRow>,
}

impl ProbeReport {
    /// Attacks that leaked.
    pub fn leaks(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| r.outcome == Outcome::Leak)
            .count()
    }

    /// Attacks the probe could not judge.
    pub fn inconclusive(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| r.outcome == Outcome::Inconclusive)
            .count()
    }

    /// True when every attack was blocked.
    pub fn all_blocked(&self) -> bool {
        self.rows.iter().all(|r| r.outcome == Outcome::Blocked)
    }

    /// The table, as markdown.
    pub fn to_table(&self) -> String {
        let mut out = String::from("| vector | mode | outcome | detail |\n|---|---|---|---|\n");
        for r in &self.rows {
            let outcome = match r.outcome {
                Outcome::Blocked => "blocked",
                Outcome::Leak => "LEAK",
                Outcome::Inconclusive => "INCONCLUSIVE",
            };
            let _ = writeln!(
                out,
                "| {} | {} | {outcome} | {} |",
                r.vector,
                r.mode,
                r.detail.replace('|', "/")
            );
        }
        let _ = writeln!(
            out,
            "\n{} attacks: {} blocked, {} leaked, {} inconclusive",
            self.rows.len(),
            self.rows.len() - self.leaks() - self.inconclusive(),
            self.leaks(),
            self.inconclusive()
        );
        out
    }
}
