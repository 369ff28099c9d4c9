//! The OpenRouter key in the outcome, when the job mints it: the JSON
//! report's `openrouter_key` object, its lines in the plan, and its part of
//! the summary line. Hashes are OpenRouter's identifiers, not secrets; no
//! key's secret is ever here.

use serde::Serialize;

use crate::keyapply::{KeyDone, KeyOutcome};
use crate::keyplan::{MintReason, PreviousPlan};

#[derive(Debug, Clone, Serialize)]
pub struct KeyReport {
    pub action: Action,
    /// OpenRouter's hash of the key in effect; `null` for a key a dry run
    /// would mint.
    pub hash: Option<String>,
    /// Why a key was (or would be) minted: `no_key`, `deleted`, `disabled`
    /// or `rotation`.
    pub reason: Option<MintReason>,
    /// The fields a reconciliation changed: `name`, `limit`, `limit_reset`.
    pub changed: Vec<&'static str>,
    /// Keys with this organization's name whose secret was lost, deleted.
    pub orphans_deleted: Vec<String>,
    /// Why OpenRouter could not be used (`offline`).
    pub offline_reason: Option<String>,
    /// The key a rotation replaced, while it waits or once it is deleted.
    pub previous: Option<PreviousReport>,
    /// The requests sent to OpenRouter, retries included.
    pub requests: usize,
    /// Whether the key phase changed (or would change) anything.
    #[serde(skip)]
    pub changes: bool,
}

/// What the key phase did: `reused`, `reconciled`, `minted`, `rotated` or
/// `offline` in the JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Reused,
    Reconciled,
    Minted,
    Rotated,
    Offline,
}

/// The first 8 characters of a hash, as git shows a commit: enough to tell
/// keys apart in a summary line. Characters, not bytes: the hash is the
/// server's text.
fn short_hash(hash: &str) -> String {
    hash.chars().take(8).collect()
}

#[derive(Debug, Clone, Serialize)]
pub struct PreviousReport {
    pub hash: String,
    pub status: PreviousStatus,
    pub waiting_for: Option<String>,
}

/// `waiting`, `to_delete` (a plan) or `deleted` in the JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PreviousStatus {
    Waiting,
    ToDelete,
    Deleted,
}

impl KeyReport {
    pub(crate) fn new(
        outcome: &KeyOutcome,
        previous: &PreviousPlan,
        previous_deleted: Option<&str>,
        requests: usize,
    ) -> Self {
        let (action, reason, changed, offline_reason) = match &outcome.done {
            KeyDone::Reused => (Action::Reused, None, vec![], None),
            KeyDone::Reconciled { fields } => (Action::Reconciled, None, fields.clone(), None),
            KeyDone::Minted {
                reason: MintReason::Rotation,
            } => (Action::Rotated, Some(MintReason::Rotation), vec![], None),
            KeyDone::Minted { reason } => (Action::Minted, Some(*reason), vec![], None),
            KeyDone::Offline { reason } => (Action::Offline, None, vec![], Some(reason.clone())),
        };
        let previous = match (previous, previous_deleted) {
            (_, Some(hash)) => Some(PreviousReport {
                hash: hash.to_owned(),
                status: PreviousStatus::Deleted,
                waiting_for: None,
            }),
            (PreviousPlan::Wait { hash, waiting_for }, None) => Some(PreviousReport {
                hash: hash.clone(),
                status: PreviousStatus::Waiting,
                waiting_for: Some(waiting_for.clone()),
            }),
            (PreviousPlan::Delete { hash }, None) => Some(PreviousReport {
                hash: hash.clone(),
                status: PreviousStatus::ToDelete,
                waiting_for: None,
            }),
            (PreviousPlan::None, None) => None,
        };
        let previous_changes = previous
            .as_ref()
            .is_some_and(|p| p.status != PreviousStatus::Waiting);
        Self {
            action,
            hash: outcome.api_key.hash.clone(),
            reason,
            changed,
            orphans_deleted: outcome.orphans.clone(),
            offline_reason,
            previous,
            requests,
            changes: outcome.changes() || previous_changes,
        }
    }

    /// The key's lines in the plan of `--dry-run` and `--check`.
    pub(super) fn plan_lines(&self) -> String {
        let hash = self.hash.as_deref().unwrap_or("-");
        let mut out = match self.action {
            Action::Reused => format!("  OpenRouter key {hash}: keep (live, as configured)\n"),
            Action::Reconciled => format!(
                "  OpenRouter key {hash}: reconcile {} with one PATCH\n",
                self.changed.join(", ")
            ),
            Action::Offline => format!(
                "  OpenRouter key {hash}: keep the stored key; OpenRouter could not be asked ({})\n",
                self.offline_reason.as_deref().unwrap_or("no answer")
            ),
            Action::Minted | Action::Rotated => {
                format!("  OpenRouter key: mint a new key ({})\n", self.why())
            }
        };
        if !self.orphans_deleted.is_empty() {
            out.push_str(&format!(
                "  OpenRouter keys whose secret is lost: delete {}\n",
                self.orphans_deleted.join(", ")
            ));
        }
        if let Some(previous) = &self.previous {
            out.push_str(&match previous.status {
                PreviousStatus::Waiting => format!(
                    "  previous OpenRouter key {}: still live, waiting for {}\n",
                    previous.hash,
                    previous.waiting_for.as_deref().unwrap_or("")
                ),
                PreviousStatus::ToDelete | PreviousStatus::Deleted => format!(
                    "  previous OpenRouter key {}: delete (the application runs with the new key)\n",
                    previous.hash
                ),
            });
        }
        out
    }

    fn why(&self) -> &'static str {
        match self.reason {
            Some(MintReason::NoKey) | None => "no key stored yet",
            Some(MintReason::Deleted) => "the stored key was deleted on OpenRouter",
            Some(MintReason::Disabled) => "the stored key is disabled on OpenRouter",
            Some(MintReason::Rotation) => "a rotation",
        }
    }

    /// The key's part of the summary line, e.g. `OpenRouter key minted
    /// (f01d5260)`; `done` words a past participle as a run or a plan says it.
    pub(super) fn summary(&self, done: &dyn Fn(&str) -> String) -> String {
        let short = self
            .hash
            .as_deref()
            .map_or_else(String::new, |h| format!(" ({})", short_hash(h)));
        let mut text = match self.action {
            Action::Reused => format!("OpenRouter key kept{short}"),
            Action::Reconciled => format!(
                "OpenRouter key {}{short} ({})",
                done("reconciled"),
                self.changed.join(", ")
            ),
            Action::Offline => format!("OpenRouter key kept{short}, OpenRouter unreachable"),
            Action::Rotated => format!("OpenRouter key {}{short}", done("rotated")),
            Action::Minted => format!("OpenRouter key {}{short}", done("minted")),
        };
        if !self.orphans_deleted.is_empty() {
            text.push_str(&format!(
                ", {} orphaned key(s) {}",
                self.orphans_deleted.len(),
                done("deleted")
            ));
        }
        if let Some(previous) = &self.previous {
            let short = short_hash(&previous.hash);
            text.push_str(&match previous.status {
                PreviousStatus::Deleted => format!(", previous key {short} deleted"),
                PreviousStatus::ToDelete => format!(", previous key {short} {}", done("deleted")),
                PreviousStatus::Waiting => format!(", previous key {short} still live"),
            });
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_hash_is_cut_at_characters_not_bytes() {
        assert_eq!(short_hash("f01d52606dc8f0a8"), "f01d5260");
        assert_eq!(short_hash("ab"), "ab");
        assert_eq!(short_hash("żżżżżżżżżż"), "żżżżżżżż");
    }

    #[test]
    fn actions_and_statuses_keep_their_json_words() {
        let actions = [
            (Action::Reused, "reused"),
            (Action::Reconciled, "reconciled"),
            (Action::Minted, "minted"),
            (Action::Rotated, "rotated"),
            (Action::Offline, "offline"),
        ];
        for (action, word) in actions {
            assert_eq!(serde_json::to_value(action).unwrap(), word);
        }
        let statuses = [
            (PreviousStatus::Waiting, "waiting"),
            (PreviousStatus::ToDelete, "to_delete"),
            (PreviousStatus::Deleted, "deleted"),
        ];
        for (status, word) in statuses {
            assert_eq!(serde_json::to_value(status).unwrap(), word);
        }
    }
}
