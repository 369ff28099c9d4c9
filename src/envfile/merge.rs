//! Merge the managed keys into an existing `.env`: a managed key is updated
//! where it stands, a missing one is appended to one marked block, and every
//! other line is kept exactly as it was.

use super::parse::{Document, Entry};
use super::render::{RenderError, render_value};

/// The comment that opens the block of keys this job appended.
pub const MARKER: &str = "# Managed by mai-provision: the keys below are rewritten on every run.";

/// What the job wants for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedKey {
    pub key: &'static str,
    /// `None` removes the key (an allow-list that is no longer configured).
    pub value: Option<String>,
    /// Secret values are never shown, not even in a plan.
    pub secret: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    Added,
    Changed,
    Unchanged,
    Removed,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyChange {
    pub key: &'static str,
    pub status: KeyStatus,
    #[serde(skip)]
    pub secret: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    pub text: String,
    pub changes: Vec<KeyChange>,
}

pub fn merge(existing: &Document, wanted: &[ManagedKey]) -> Result<Merged, RenderError> {
    let line_end = existing.line_end().to_owned();
    let mut text = String::new();
    for entry in &existing.entries {
        text.push_str(&rewrite_entry(entry, wanted)?);
    }
    let missing: Vec<&ManagedKey> = wanted
        .iter()
        .filter(|w| w.value.is_some() && !existing.bindings().any(|b| b.key == w.key))
        .collect();
    if !missing.is_empty() {
        append_block(&mut text, existing, &missing, &line_end)?;
    }
    let changes = wanted.iter().filter_map(|w| change(existing, w)).collect();
    Ok(Merged { text, changes })
}

/// The entry's new text: unchanged unless it binds a managed key to
/// another value.
fn rewrite_entry(entry: &Entry, wanted: &[ManagedKey]) -> Result<String, RenderError> {
    let Some(binding) = &entry.binding else {
        return Ok(entry.text.clone());
    };
    let Some(want) = wanted.iter().find(|w| w.key == binding.key) else {
        return Ok(entry.text.clone());
    };
    match &want.value {
        None => Ok(String::new()),
        Some(value) if binding.value.as_deref() == Some(value.as_str()) => Ok(entry.text.clone()),
        Some(value) => Ok(format!(
            "{}{}={}{}{}",
            &entry.text[..binding.key_start],
            binding.key,
            render_value(value)?,
            binding.comment,
            binding.line_end
        )),
    }
}

fn append_block(
    text: &mut String,
    existing: &Document,
    missing: &[&ManagedKey],
    line_end: &str,
) -> Result<(), RenderError> {
    if !text.is_empty() && !text.ends_with(['\n', '\r']) {
        text.push_str(line_end);
    }
    let has_marker = existing.entries.iter().any(|e| e.text.trim() == MARKER);
    if !has_marker {
        if !text.trim().is_empty() {
            text.push_str(line_end);
        }
        text.push_str(MARKER);
        text.push_str(line_end);
    }
    for want in missing {
        if let Some(value) = &want.value {
            text.push_str(&format!("{}={}{line_end}", want.key, render_value(value)?));
        }
    }
    Ok(())
}

fn change(existing: &Document, want: &ManagedKey) -> Option<KeyChange> {
    let present = existing.bindings().any(|b| b.key == want.key);
    let current = existing.value(want.key);
    let status = match (&want.value, present) {
        (None, false) => return None,
        (None, true) => KeyStatus::Removed,
        (Some(_), false) => KeyStatus::Added,
        (Some(value), true) => {
            let all_equal = existing
                .bindings()
                .filter(|b| b.key == want.key)
                .all(|b| b.value.as_deref() == Some(value.as_str()));
            if all_equal && current == Some(value.as_str()) {
                KeyStatus::Unchanged
            } else {
                KeyStatus::Changed
            }
        }
    };
    Some(KeyChange {
        key: want.key,
        status,
        secret: want.secret,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(key: &'static str, value: &str) -> ManagedKey {
        ManagedKey {
            key,
            value: Some(value.to_owned()),
            secret: false,
        }
    }

    fn merged(existing: &str, wanted: &[ManagedKey]) -> Merged {
        merge(&Document::parse(existing), wanted).unwrap()
    }

    #[test]
    fn a_new_file_is_one_marked_block_in_order() {
        let m = merged("", &[key("B", "2"), key("A", "one two")]);
        assert_eq!(m.text, format!("{MARKER}\nB=2\nA='one two'\n"));
        assert!(m.changes.iter().all(|c| c.status == KeyStatus::Added));
    }

    #[test]
    fn other_lines_are_kept_verbatim_and_managed_ones_updated_in_place() {
        let existing = "# mine\nexport A=old # note\nOTHER = 'x'  \n\nB=2";
        let m = merged(existing, &[key("A", "new"), key("B", "2"), key("C", "3")]);
        assert_eq!(
            m.text,
            format!("# mine\nexport A=new # note\nOTHER = 'x'  \n\nB=2\n\n{MARKER}\nC=3\n")
        );
        let statuses: Vec<_> = m.changes.iter().map(|c| (c.key, c.status)).collect();
        assert_eq!(
            statuses,
            [
                ("A", KeyStatus::Changed),
                ("B", KeyStatus::Unchanged),
                ("C", KeyStatus::Added)
            ]
        );
    }

    #[test]
    fn an_equal_value_in_other_quotes_is_left_alone() {
        let existing = "A=\"same value\"\n";
        let m = merged(existing, &[key("A", "same value")]);
        assert_eq!(m.text, existing);
        assert_eq!(m.changes[0].status, KeyStatus::Unchanged);
    }

    #[test]
    fn removal_drops_every_binding_of_the_key() {
        let wanted = [ManagedKey {
            key: "A",
            value: None,
            secret: false,
        }];
        let m = merged("A=1\nB=2\nA=3\n", &wanted);
        assert_eq!(m.text, "B=2\n");
        assert_eq!(m.changes[0].status, KeyStatus::Removed);
    }

    #[test]
    fn duplicates_are_all_updated() {
        let m = merged("A=1\nA=2\n", &[key("A", "2")]);
        assert_eq!(m.text, "A=2\nA=2\n");
        assert_eq!(m.changes[0].status, KeyStatus::Changed);
    }

    #[test]
    fn crlf_files_get_crlf_lines_and_the_marker_is_not_repeated() {
        let m = merged(
            &format!("X=1\r\n{MARKER}\r\nA=1\r\n"),
            &[key("A", "1"), key("B", "2")],
        );
        assert_eq!(m.text, format!("X=1\r\n{MARKER}\r\nA=1\r\nB=2\r\n"));
    }

    #[test]
    fn merging_twice_changes_nothing() {
        let wanted = [key("A", "x y"), key("B", "O'Brien")];
        let once = merged("Z=1", &wanted);
        let twice = merged(&once.text, &wanted);
        assert_eq!(once.text, twice.text);
        assert!(
            twice
                .changes
                .iter()
                .all(|c| c.status == KeyStatus::Unchanged)
        );
    }
}
