//! Merge the managed keys into an existing `.env`: a managed key is updated
//! where it stands, a missing one is appended to one marked block, and every
//! other line is kept exactly as it was.
//!
//! A managed line is kept as it is only when python-dotenv reads the wanted
//! value from it and it is written in a form that Docker Compose and `sh`
//! read the same way; otherwise it is written again in the renderer's form.
//! Every line this job writes starts after a line feed and ends with one,
//! whatever the rest of the file uses: `sh` and Compose end a line only at
//! LF, so a CR before or after a value would become part of it.

use std::ops::Range;

use super::parse::{Binding, Document, Entry, is_space};
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
    /// Where the entries of the existing file landed in `text`, so that a
    /// line python-dotenv would misread can be named in the existing file.
    pub(super) placements: Vec<Placement>,
    /// What the merge was asked for, to read it back against.
    pub(super) wanted: Vec<ManagedKey>,
}

/// A stretch of the merged text: an entry of the existing file copied byte
/// for byte, or text this job wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Placement {
    pub output: Range<usize>,
    /// The index of the existing entry copied here.
    pub copied_from: Option<usize>,
}

pub fn merge(existing: &Document, wanted: &[ManagedKey]) -> Result<Merged, RenderError> {
    let mut out = Output::default();
    let mut rewritten: Vec<&str> = Vec::new();
    for (index, entry) in existing.entries.iter().enumerate() {
        let Some((binding, want)) = managed_binding(entry, wanted) else {
            out.copy(index, &entry.text);
            continue;
        };
        let Some(value) = &want.value else {
            continue; // removed, with the blank lines before it
        };
        if is_kept(entry, binding, value, out.at_line_start()) {
            out.copy(index, &entry.text);
        } else {
            out.write(&rewrite(entry, binding, value, out.at_line_start())?);
            rewritten.push(want.key);
        }
    }
    let missing: Vec<&ManagedKey> = wanted
        .iter()
        .filter(|w| w.value.is_some() && !existing.bindings().any(|b| b.key == w.key))
        .collect();
    if !missing.is_empty() {
        append_block(&mut out, existing, &missing)?;
    }
    let changes = wanted
        .iter()
        .filter_map(|w| change(existing, w, &rewritten))
        .collect();
    Ok(Merged {
        text: out.text,
        changes,
        placements: out.placements,
        wanted: wanted.to_vec(),
    })
}

/// The merged text as it grows, and where each piece came from.
#[derive(Default)]
struct Output {
    text: String,
    placements: Vec<Placement>,
}

impl Output {
    fn copy(&mut self, index: usize, text: &str) {
        self.push(text, Some(index));
    }

    fn write(&mut self, text: &str) {
        self.push(text, None);
    }

    fn push(&mut self, text: &str, copied_from: Option<usize>) {
        let start = self.text.len();
        self.text.push_str(text);
        self.placements.push(Placement {
            output: start..self.text.len(),
            copied_from,
        });
    }

    /// True where a line can begin for every reader: at the start of the
    /// file or after a line feed (not after a lone CR, which only
    /// python-dotenv takes for a line end).
    fn at_line_start(&self) -> bool {
        self.text.is_empty() || self.text.ends_with('\n')
    }
}

fn managed_binding<'a, 'w>(
    entry: &'a Entry,
    wanted: &'w [ManagedKey],
) -> Option<(&'a Binding, &'w ManagedKey)> {
    let binding = entry.binding.as_ref()?;
    let want = wanted.iter().find(|w| w.key == binding.key)?;
    Some((binding, want))
}

/// A managed line stays byte for byte when it already holds the value in a
/// form every reader agrees on, on a line of its own for every reader. A
/// value that no form can carry (only a secret key read from a file can be
/// one) is left where python-dotenv already reads it: there is nothing
/// better to write.
fn is_kept(entry: &Entry, binding: &Binding, value: &str, out_at_line_start: bool) -> bool {
    if binding.value.as_deref() != Some(value) {
        return false;
    }
    let forms = forms_every_reader_agrees_on(value);
    if forms.is_empty() {
        return true;
    }
    let head = &entry.text[..binding.key_start];
    let (lead, indent) = split_head(head);
    let statement = &entry.text[binding.key_start..];
    starts_a_line(lead, out_at_line_start)
        && matches!(indent, "" | "export ")
        && is_safe_comment(&binding.comment)
        && matches!(binding.line_end.as_str(), "\n" | "")
        && forms.iter().any(|form| {
            statement
                == format!(
                    "{}={form}{}{}",
                    binding.key, binding.comment, binding.line_end
                )
        })
}

/// The value texts that python-dotenv, Compose and `sh` all read as
/// `value`: the renderer's, and the plain quotes around a value in which
/// none of the three sees a special character. Empty when the renderer
/// refuses the value.
fn forms_every_reader_agrees_on(value: &str) -> Vec<String> {
    let Ok(rendered) = render_value(value) else {
        return Vec::new();
    };
    let mut forms = vec![rendered];
    if !value.contains(['\\', '"', '$', '`']) {
        forms.push(format!("\"{value}\""));
    }
    if !value.contains(['\\', '\'']) {
        forms.push(format!("'{value}'"));
    }
    forms
}

/// `head` is the entry's text before the key: blank lines, then blanks and
/// `export `. Split it after the last line break: the blank lines, which
/// are other lines and stay as they are, and the key's own indent.
fn split_head(head: &str) -> (&str, &str) {
    let line_start = head.rfind(['\r', '\n']).map_or(0, |i| i + 1);
    head.split_at(line_start)
}

fn starts_a_line(lead: &str, out_at_line_start: bool) -> bool {
    if lead.is_empty() {
        out_at_line_start
    } else {
        lead.ends_with('\n')
    }
}

/// An inline comment every reader skips: blanks, a space right before the
/// `#`. Compose reads `a\t#b` as a value, `sh` reads `'a'#b` as one word.
fn is_safe_comment(comment: &str) -> bool {
    let Some(hash) = comment.find('#') else {
        return comment.is_empty();
    };
    let blanks = &comment[..hash];
    blanks.ends_with(' ') && blanks.chars().all(|c| c == ' ' || c == '\t')
}

/// The managed line in the renderer's form, keeping its place, the blank
/// lines before it, an `export ` and its comment.
fn rewrite(
    entry: &Entry,
    binding: &Binding,
    value: &str,
    out_at_line_start: bool,
) -> Result<String, RenderError> {
    let (lead, indent) = split_head(&entry.text[..binding.key_start]);
    // After a lone CR, a LF makes it a CRLF: still one line end for
    // python-dotenv, and now one for sh and Compose as well.
    let line_feed = if starts_a_line(lead, out_at_line_start) {
        ""
    } else {
        "\n"
    };
    let export = if indent.trim_start_matches(is_space).starts_with("export") {
        "export "
    } else {
        ""
    };
    let comment = if binding.comment.is_empty() || is_safe_comment(&binding.comment) {
        binding.comment.clone()
    } else {
        format!(" {}", binding.comment.trim_start_matches(is_space))
    };
    Ok(format!(
        "{lead}{line_feed}{export}{}={}{comment}\n",
        binding.key,
        render_value(value)?
    ))
}

fn append_block(
    out: &mut Output,
    existing: &Document,
    missing: &[&ManagedKey],
) -> Result<(), RenderError> {
    let mut block = String::new();
    if !out.at_line_start() {
        block.push('\n');
    }
    let has_marker = existing.entries.iter().any(|e| e.text.trim() == MARKER);
    if !has_marker {
        if !out.text.trim().is_empty() {
            block.push('\n');
        }
        block.push_str(MARKER);
        block.push('\n');
    }
    for want in missing {
        if let Some(value) = &want.value {
            block.push_str(&format!("{}={}\n", want.key, render_value(value)?));
        }
    }
    out.write(&block);
    Ok(())
}

fn change(existing: &Document, want: &ManagedKey, rewritten: &[&str]) -> Option<KeyChange> {
    let present = existing.bindings().any(|b| b.key == want.key);
    let status = match (&want.value, present) {
        (None, false) => return None,
        (None, true) => KeyStatus::Removed,
        (Some(_), false) => KeyStatus::Added,
        (Some(_), true) if rewritten.contains(&want.key) => KeyStatus::Changed,
        (Some(_), true) => KeyStatus::Unchanged,
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

    fn statuses(m: &Merged) -> Vec<(&'static str, KeyStatus)> {
        m.changes.iter().map(|c| (c.key, c.status)).collect()
    }

    #[test]
    fn in_a_crlf_file_managed_lines_end_with_lf_and_the_marker_is_not_repeated() {
        // sh and Compose would read `A=1\r` as "1\r"; the other lines keep
        // their CRLF.
        let m = merged(
            &format!("X=1\r\n{MARKER}\r\nA=1\r\n"),
            &[key("A", "1"), key("B", "2")],
        );
        assert_eq!(m.text, format!("X=1\r\n{MARKER}\r\nA=1\nB=2\n"));
        assert_eq!(
            statuses(&m),
            [("A", KeyStatus::Changed), ("B", KeyStatus::Added)]
        );
    }

    #[test]
    fn a_crlf_file_gets_its_new_block_in_lf() {
        let m = merged("X=1\r\nY='a b'\r\n", &[key("A", "x y")]);
        assert_eq!(m.text, format!("X=1\r\nY='a b'\r\n\n{MARKER}\nA='x y'\n"));
    }

    #[test]
    fn a_managed_line_after_a_lone_cr_starts_on_a_line_of_its_own() {
        // A lone CR ends a line for python-dotenv only; the added LF makes it
        // a CRLF, which python-dotenv still reads as one line end.
        let m = merged("X=1\rA=old\rY=2\r", &[key("A", "new")]);
        assert_eq!(m.text, "X=1\r\nA=new\nY=2\r");
        let m = merged("X=1\r", &[key("B", "2")]);
        assert_eq!(m.text, format!("X=1\r\n\n{MARKER}\nB=2\n"));
        let m = merged(&format!("{MARKER}\rX=1\r"), &[key("B", "2")]);
        assert_eq!(m.text, format!("{MARKER}\rX=1\r\nB=2\n"));
        let m = merged("X=1\r\r  A=old\n", &[key("A", "new")]);
        assert_eq!(m.text, "X=1\r\r\nA=new\n");
    }

    #[test]
    fn an_equal_value_that_sh_reads_otherwise_is_rewritten() {
        // python-dotenv reads the name; sh runs `Adversary` as a command.
        let m = merged(
            "ORGANIZATION_NAME=Acme Adversary Ltd\n",
            &[key("ORGANIZATION_NAME", "Acme Adversary Ltd")],
        );
        assert_eq!(m.text, "ORGANIZATION_NAME='Acme Adversary Ltd'\n");
        assert_eq!(m.changes[0].status, KeyStatus::Changed);
    }

    #[test]
    fn equal_values_in_forms_some_reader_gets_wrong_are_rewritten_in_place() {
        // (existing file, the value python-dotenv reads and the job wants,
        // the file after the merge)
        let cases = [
            // sh runs `A` with the arguments `=` and `x y`.
            ("A = 'x y'\n", "x y", "A='x y'\n"),
            ("A\t=x\n", "x", "A=x\n"),
            // sh and Compose do not know quoted keys.
            ("'A'='x y'\n", "x y", "A='x y'\n"),
            // sh reads `'x y'#c` as one word, "x y#c".
            ("A='x y'#c\n", "x y", "A='x y' #c\n"),
            // Compose reads a tab or a no-break space before `#` as part of
            // the value.
            ("A=x\t# c\n", "x", "A=x # c\n"),
            ("A=x\u{a0}# c\n", "x", "A=x # c\n"),
            // Blanks python-dotenv skips and sh does not.
            ("  A=x\n", "x", "A=x\n"),
            ("\u{a0}A=x\n", "x", "A=x\n"),
            ("export\tA=x\n", "x", "export A=x\n"),
            ("  export  A=x # c\n", "x", "export A=x # c\n"),
            // A CR that sh and Compose would read into the value.
            ("A=x\r\nB=1\r\n", "x", "A=x\nB=1\r\n"),
            ("A='x y'  \n", "x y", "A='x y'\n"),
            // python-dotenv decodes `\\` in single quotes; sh keeps both.
            ("A='x\\\\y'\n", "x\\y", "A='x\\y'\n"),
            // python-dotenv decodes `\"` and `\'`; sh keeps the backslash
            // before a `'` in double quotes.
            ("A=\"O\\'Brien\"\n", "O'Brien", "A=\"O'Brien\"\n"),
            // A bare key line holds no value at all.
            ("A\n", "x", "A=x\n"),
        ];
        for (existing, value, expected) in cases {
            let m = merged(existing, &[key("A", value)]);
            assert_eq!(m.text, expected, "{existing:?}");
            assert_eq!(m.changes[0].status, KeyStatus::Changed, "{existing:?}");
            let again = merged(&m.text, &[key("A", value)]);
            assert_eq!(again.text, m.text, "{existing:?} twice");
            assert_eq!(again.changes[0].status, KeyStatus::Unchanged);
        }
    }

    #[test]
    fn equal_values_in_a_form_every_reader_agrees_on_are_kept_byte_for_byte() {
        let cases = [
            ("A=x\n", "x"),
            ("A='x'\n", "x"),
            ("A=\"x\"\n", "x"),
            ("A='x y' # note\n", "x y"),
            ("A=\"x y\"\t # note\n", "x y"),
            ("export A='x y'\n", "x y"),
            ("# c\r\n\r\n\nA='x y'\n", "x y"),
            ("A=\"O'Brien\"\n", "O'Brien"),
            (
                "A='{\"0\":{\"enable\":true}}'\n",
                "{\"0\":{\"enable\":true}}",
            ),
            ("A=x", "x"),
        ];
        for (existing, value) in cases {
            let m = merged(existing, &[key("A", value)]);
            assert_eq!(m.text, existing);
            assert_eq!(m.changes[0].status, KeyStatus::Unchanged, "{existing:?}");
        }
    }

    #[test]
    fn a_value_no_form_can_carry_is_left_where_python_dotenv_reads_it() {
        // Only a secret key read from the .env can be such a value: there is
        // nothing better to write, and rewriting it would fail.
        let existing = "A=\"a\\nb\"\r\n";
        let m = merged(existing, &[key("A", "a\nb")]);
        assert_eq!(m.text, existing);
        assert!(merge(&Document::parse("A=x\n"), &[key("A", "a\nb")]).is_err());
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
