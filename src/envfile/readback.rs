//! Before anything is written, the merged `.env` is read back the way the
//! application will read it: python-dotenv on a file opened in text mode,
//! so Python's universal newlines first turn CRLF and CR into LF, and then
//! the parser (raw values, without `${…}` interpolation).
//!
//! Some lines read cleanly only while no quote follows them: a value that
//! opens a quote and never closes it, or one that ends in `\'`. python-dotenv
//! reads on from there to the next quote in the file, and once this job has
//! appended a quoted value, that quote is ours: the lines in between (our
//! keys among them) vanish into one value. The merge cannot see that, so
//! the merged text is checked as a whole: every managed key must read back
//! as wanted, and every other key exactly as it read before.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use super::merge::{ManagedKey, Merged};
use super::parse::{Binding, Document, Entry, is_inline_space, is_space};
use super::write::FileError;

/// Key to value as `dotenv_values` returns them: the last binding wins, and
/// a bare `KEY` line gives `None`.
type Values = BTreeMap<String, Option<String>>;

/// What Python's universal newlines make of a text: CRLF and CR become LF.
pub fn universal_newlines(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// The values python-dotenv loads from a file holding `text`.
pub fn as_python_dotenv_reads(text: &str) -> Values {
    let document = Document::parse(&universal_newlines(text));
    let mut values = Values::new();
    for binding in document.bindings() {
        values.insert(binding.key.clone(), binding.value.clone());
    }
    values
}

impl Merged {
    /// Refuses a merge that python-dotenv would read otherwise than meant:
    /// a managed key with another value (or present when it should be
    /// gone), or any other key reading differently than it did in
    /// `existing`. The error names the line that causes it, never a value.
    pub fn check_read_back(&self, existing: &Document, path: &Path) -> Result<(), FileError> {
        let affected = misread_keys(existing, self);
        if affected.is_empty() {
            return Ok(());
        }
        Err(FileError::Misread {
            path: path.to_owned(),
            misreading: Misreading::explain(existing, self, &affected),
        })
    }
}

/// The keys python-dotenv would read wrongly from the merged text: the
/// managed ones first, in their order, then the others in key order.
fn misread_keys(existing: &Document, merged: &Merged) -> Vec<String> {
    let before = as_python_dotenv_reads(&existing.text());
    let after = as_python_dotenv_reads(&merged.text);
    let mut affected: Vec<String> = merged
        .wanted
        .iter()
        .filter(|want| {
            let found = after.get(want.key);
            match &want.value {
                None => found.is_some(),
                Some(value) => found != Some(&Some(value.clone())),
            }
        })
        .map(|want| want.key.to_owned())
        .collect();
    let is_managed = |key: &str| merged.wanted.iter().any(|w| w.key == key);
    let others: BTreeSet<&String> = before
        .keys()
        .chain(after.keys())
        .filter(|key| !is_managed(key) && before.get(*key) != after.get(*key))
        .collect();
    affected.extend(others.into_iter().cloned());
    affected
}

/// Why a refused merge was refused, in words an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Misreading {
    /// The line of the existing file to fix (1-based, lines as
    /// python-dotenv counts them), when it could be found.
    pub line: Option<usize>,
    /// The key on that line, when it is a plain variable name.
    pub key: Option<String>,
    pub problem: LineProblem,
    /// The keys that would read wrongly, as far as they can be named.
    pub affected: String,
}

/// What is wrong with the offending line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineProblem {
    /// `KEY='value`: the quote is not closed on its line.
    UnclosedQuote(char),
    /// `KEY='value\'`: the only closing quote on the line is escaped.
    EscapedClosingQuote(char),
    /// `'KEY=value`: the key's quote is not closed on its line.
    UnclosedKeyQuote,
    /// Anything else that python-dotenv would read differently.
    ReadsDifferently,
}

impl Misreading {
    fn explain(existing: &Document, merged: &Merged, affected: &[String]) -> Self {
        let secrets: Vec<&str> = merged
            .wanted
            .iter()
            .filter(|w| w.secret)
            .filter_map(|w| w.value.as_deref())
            .collect();
        let before = as_python_dotenv_reads(&existing.text());
        let affected_names = name_keys(affected, &merged.wanted, &before, &secrets);
        let culprit = culprit(existing, merged);
        let Some(index) = culprit.or_else(|| first_binding_of(existing, affected)) else {
            return Self {
                line: None,
                key: None,
                problem: LineProblem::ReadsDifferently,
                affected: affected_names,
            };
        };
        let (line, statement) = statement_of(existing, index);
        // Only a statement that reads on past its end has a cause on its
        // own line; any other misreading is named, not explained.
        let problem = match culprit {
            Some(_) => LineProblem::of_line(statement),
            None => LineProblem::ReadsDifferently,
        };
        Self {
            line: Some(line),
            key: key_on_line(statement)
                .filter(|key| is_nameable(key, &secrets))
                .map(str::to_owned),
            problem,
            affected: affected_names,
        }
    }
}

/// The first entry of the existing file that python-dotenv reads
/// differently inside the merged text. Parsing is left to right, so up to
/// that entry both texts split into the same statements, and the entry
/// starts where it was copied to; it then reads on past its own end (an
/// open quote that now finds a closing one), which is the cause.
fn culprit(existing: &Document, merged: &Merged) -> Option<usize> {
    let reread = Document::parse(&merged.text);
    let mut start = 0;
    for entry in &reread.entries {
        let entry_start = start;
        start += entry.text.len();
        // Placements are in output order: a search, not a scan, so that a
        // large refused file costs no quadratic time.
        let copied_from = merged
            .placements
            .binary_search_by_key(&entry_start, |p| p.output.start)
            .ok()
            .and_then(|i| merged.placements[i].copied_from);
        let Some(index) = copied_from else {
            continue;
        };
        let original = &existing.entries[index];
        if is_statement(original) && !reads_the_same(entry, original) {
            return Some(index);
        }
    }
    None
}

/// A binding or a statement python-dotenv skips; blank lines and comments
/// end where they end, whatever follows.
fn is_statement(entry: &Entry) -> bool {
    let body = entry.text.trim_start_matches(is_space);
    entry.binding.is_some() || !(body.is_empty() || body.starts_with('#'))
}

/// The same statement, allowing for the line feed the merge puts after a
/// lone CR or a last line without one.
fn reads_the_same(now: &Entry, before: &Entry) -> bool {
    let same_binding = match (&now.binding, &before.binding) {
        (Some(a), Some(b)) => same_binding(a, b),
        (None, None) => true,
        _ => false,
    };
    let trim = |text: &str| text.trim_end_matches(['\r', '\n']).to_owned();
    same_binding && trim(&now.text) == trim(&before.text)
}

fn same_binding(a: &Binding, b: &Binding) -> bool {
    a.key == b.key && a.value == b.value && a.comment == b.comment
}

/// When no statement reads on: the last binding of the first affected key
/// that the existing file holds.
fn first_binding_of(existing: &Document, affected: &[String]) -> Option<usize> {
    affected.iter().find_map(|key| {
        existing
            .entries
            .iter()
            .rposition(|e| e.binding.as_ref().is_some_and(|b| &b.key == key))
    })
}

/// The line number of the entry's statement, and the text of that line
/// from the statement's start.
fn statement_of(existing: &Document, index: usize) -> (usize, &str) {
    let entry = &existing.entries[index].text;
    let blank = entry.len() - entry.trim_start_matches(is_space).len();
    let before: String = existing.entries[..index]
        .iter()
        .map(|e| e.text.as_str())
        .chain([&entry[..blank]])
        .collect();
    let line = 1 + universal_newlines(&before).matches('\n').count();
    let rest = &entry[blank..];
    let statement = &rest[..rest.find(['\r', '\n']).unwrap_or(rest.len())];
    (line, statement)
}

/// python-dotenv's optional `export ` before a key.
fn without_export(line: &str) -> &str {
    match line.strip_prefix("export") {
        Some(after) if after.starts_with(is_inline_space) => {
            after.trim_start_matches(is_inline_space)
        }
        _ => line,
    }
}

/// The key as written at the start of the line, without its quotes; for a
/// quote that is not closed, what comes before the `=`.
fn key_on_line(line: &str) -> Option<&str> {
    let rest = without_export(line);
    let unquoted = rest.strip_prefix('\'').unwrap_or(rest);
    match unquoted.find('\'') {
        Some(end) if unquoted.len() < rest.len() => Some(&unquoted[..end]),
        _ => unquoted
            .split(|c| c == '=' || c == '#' || c == '\'' || is_space(c))
            .next(),
    }
}

/// A key is shown only when it is a plain variable name that holds no
/// secret: keys are not values, but a pasted key on a line of its own is a
/// key to python-dotenv.
fn is_nameable(key: &str, secrets: &[&str]) -> bool {
    let mut chars = key.chars();
    let plain = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && key.len() <= 64;
    let holds_secret = secrets
        .iter()
        .any(|s| !s.is_empty() && (key.contains(s) || (key.len() >= 16 && s.contains(key))));
    plain && !holds_secret
}

/// At most this many keys are named in a message; the rest are counted.
const NAMED_KEYS: usize = 4;

/// "OPENROUTER_API_KEY, NOTE and 2 other keys": the managed keys, and the
/// others the existing file holds under a plain name. A key only the merged
/// text has is made of swallowed lines, and may hold a value.
fn name_keys(
    affected: &[String],
    wanted: &[ManagedKey],
    before: &Values,
    secrets: &[&str],
) -> String {
    let (named, unnamed): (Vec<&String>, Vec<&String>) = affected.iter().partition(|key| {
        wanted.iter().any(|w| w.key == key.as_str())
            || (before.contains_key(key.as_str()) && is_nameable(key, secrets))
    });
    let mut names: Vec<String> = named
        .iter()
        .take(NAMED_KEYS)
        .map(|k| k.to_string())
        .collect();
    match unnamed.len() + named.len().saturating_sub(NAMED_KEYS) {
        0 => {}
        1 => names.push("1 other key".to_owned()),
        n => names.push(format!("{n} other keys")),
    }
    match names.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => "no key".to_owned(),
    }
}

impl LineProblem {
    /// What is wrong with a statement, from its first line.
    fn of_line(line: &str) -> Self {
        let rest = without_export(line);
        let after_key = match rest.strip_prefix('\'') {
            Some(quoted) => match quoted.find('\'') {
                Some(end) => &quoted[end + 1..],
                None => return Self::UnclosedKeyQuote,
            },
            None => rest.trim_start_matches(|c| c != '=' && c != '#' && !is_space(c)),
        };
        let Some(value) = after_key
            .trim_start_matches(is_inline_space)
            .strip_prefix('=')
        else {
            return Self::ReadsDifferently;
        };
        let value = value.trim_start_matches(is_inline_space);
        let Some(quote @ ('\'' | '"')) = value.chars().next() else {
            return Self::ReadsDifferently;
        };
        match closing_quote(&value[1..], quote) {
            Closing::Plain => Self::ReadsDifferently,
            Closing::Escaped => Self::EscapedClosingQuote(quote),
            Closing::None => Self::UnclosedQuote(quote),
        }
    }

    fn what(self) -> String {
        match self {
            Self::UnclosedQuote(quote) => format!(
                "its value opens a {} quote that is never closed, so python-dotenv reads on into \
                 the following lines",
                quote_name(quote)
            ),
            Self::EscapedClosingQuote(quote) => format!(
                "its value ends in a backslash right before the closing {} quote, which python-dotenv \
                 reads as an escaped quote, so it reads on into the following lines",
                quote_name(quote)
            ),
            Self::UnclosedKeyQuote => "its key opens a single quote that is never closed, so \
                                       python-dotenv reads on into the following lines"
                .to_owned(),
            Self::ReadsDifferently => "python-dotenv reads it otherwise than this job would keep \
                                       or write it (a carriage return inside quotes, for example, \
                                       reads as a line feed)"
                .to_owned(),
        }
    }

    fn fix(self) -> &'static str {
        match self {
            Self::UnclosedQuote(_) => "Close the quote on that line, or delete the line",
            Self::EscapedClosingQuote(_) => {
                "Write that value in double quotes with every backslash doubled, or end it without a backslash"
            }
            Self::UnclosedKeyQuote => "Write the key without quotes, or delete the line",
            Self::ReadsDifferently => "Check the quotes, backslashes and line ends on that line",
        }
    }
}

fn quote_name(quote: char) -> &'static str {
    if quote == '"' { "double" } else { "single" }
}

enum Closing {
    Plain,
    Escaped,
    None,
}

/// How a quoted value's body closes on its own line, with python-dotenv's
/// rule: a quote after a backslash is escaped.
fn closing_quote(body: &str, quote: char) -> Closing {
    let mut chars = body.chars().peekable();
    let mut escaped = false;
    while let Some(c) = chars.next() {
        if c == '\\' && chars.peek() == Some(&quote) {
            chars.next();
            escaped = true;
        } else if c == quote {
            return Closing::Plain;
        }
    }
    if escaped {
        Closing::Escaped
    } else {
        Closing::None
    }
}

impl fmt::Display for Misreading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, &self.key) {
            (Some(line), Some(key)) => write!(f, "line {line} ({key})")?,
            (Some(line), None) => write!(f, "line {line}")?,
            (None, _) => write!(f, "a line")?,
        }
        write!(
            f,
            ": {}. With the managed keys written, the application would read {} wrongly. \
             {}; nothing was changed.",
            self.problem.what(),
            self.affected,
            self.problem.fix()
        )
    }
}

#[cfg(test)]
mod tests;
