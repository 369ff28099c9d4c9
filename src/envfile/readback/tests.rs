use std::path::PathBuf;

use super::*;
use crate::envfile::merge::merge;

const API_KEY: &str = "sk-or-v1-UNITFAKE0000aaaa1111bbbb2222";
const PRIVATE: &str = "hunter2-private";

fn key(key: &'static str, value: &str, secret: bool) -> ManagedKey {
    ManagedKey {
        key,
        value: Some(value.to_owned()),
        secret,
    }
}

/// The keys a run manages, with `name` as the organization.
fn wanted(name: &str) -> Vec<ManagedKey> {
    vec![
        key("OPENROUTER_API_KEY", API_KEY, true),
        key("OPENROUTER_EXTERNAL_USER", "mai_client_79d89452", false),
        key("ORGANIZATION_NAME", name, false),
    ]
}

fn checked(existing: &str, wanted: &[ManagedKey]) -> Result<Merged, Misreading> {
    let document = Document::parse(existing);
    let merged = merge(&document, wanted).unwrap();
    match merged.check_read_back(&document, &PathBuf::from("/shared/.env")) {
        Ok(()) => Ok(merged),
        Err(FileError::Misread { misreading, .. }) => Err(misreading),
        Err(other) => panic!("{other}"),
    }
}

fn refused(existing: &str, wanted: &[ManagedKey]) -> Misreading {
    match checked(existing, wanted) {
        Err(misreading) => misreading,
        Ok(merged) => panic!("accepted {existing:?} as {:?}", merged.text),
    }
}

#[track_caller]
fn assert_says(misreading: &Misreading, needles: &[&str]) {
    let message = misreading.to_string();
    for needle in needles {
        assert!(message.contains(needle), "{needle:?} not in {message:?}");
    }
    for secret in [API_KEY, PRIVATE, "C:\\backups"] {
        assert!(!message.contains(secret), "a value in {message:?}");
    }
}

#[test]
fn a_single_quoted_value_ending_in_a_backslash_is_refused() {
    // Alone, python-dotenv takes the escaped quote as the closing one; with
    // a quote after it, it reads on to that quote and swallows our block.
    let existing = "# backups\nBACKUP_DIR='C:\\backups\\'\nCUSTOM=1\n";
    assert_eq!(
        as_python_dotenv_reads(existing)["BACKUP_DIR"].as_deref(),
        Some("C:\\backups\\")
    );
    let misreading = refused(existing, &wanted("Acme Ltd"));
    assert_eq!(misreading.line, Some(2));
    assert_eq!(misreading.key.as_deref(), Some("BACKUP_DIR"));
    assert_eq!(misreading.problem, LineProblem::EscapedClosingQuote('\''));
    assert_says(
        &misreading,
        &[
            "line 2 (BACKUP_DIR): its value ends in a backslash right before the closing single quote",
            "reads on into the following lines",
            "read OPENROUTER_API_KEY, OPENROUTER_EXTERNAL_USER, ORGANIZATION_NAME, BACKUP_DIR and 1 other key wrongly",
            "double quotes with every backslash doubled",
            "nothing was changed",
        ],
    );
}

#[test]
fn an_unterminated_single_quote_is_refused() {
    let existing = format!("A=1\nNOTE='{PRIVATE}\nCUSTOM=1\n");
    let misreading = refused(&existing, &wanted("Acme Ltd"));
    assert_eq!(
        (misreading.line, misreading.key.as_deref()),
        (Some(2), Some("NOTE"))
    );
    assert_eq!(misreading.problem, LineProblem::UnclosedQuote('\''));
    assert_says(
        &misreading,
        &[
            "line 2 (NOTE): its value opens a single quote that is never closed, \
             so python-dotenv reads on into the following lines",
            "Close the quote on that line, or delete the line",
        ],
    );
}

#[test]
fn an_unterminated_double_quote_is_refused_when_the_name_has_an_apostrophe() {
    // The name is written in double quotes, and its first one closes NOTE.
    let existing = format!("NOTE=\"{PRIVATE}\n");
    let misreading = refused(&existing, &wanted("O'Brien & Sons"));
    assert_eq!(
        (misreading.line, misreading.key.as_deref()),
        (Some(1), Some("NOTE"))
    );
    assert_eq!(misreading.problem, LineProblem::UnclosedQuote('"'));
    assert_says(&misreading, &["opens a double quote that is never closed"]);
    // Without a double quote after it, the same line is harmless.
    assert!(checked(&existing, &wanted("Acme Ltd")).is_ok());
}

#[test]
fn lines_that_read_the_same_with_the_merge_are_accepted() {
    // Nothing this job writes holds a quote, so the open quote stays open.
    let bare = [key(
        "OPENROUTER_EXTERNAL_USER",
        "mai_client_79d89452",
        false,
    )];
    let merged = checked("BACKUP_DIR='C:\\b\\'\n", &bare).unwrap();
    let read = as_python_dotenv_reads(&merged.text);
    assert_eq!(read["BACKUP_DIR"].as_deref(), Some("C:\\b\\"));
    let merged = checked("NOTE='x\n", &bare).unwrap();
    assert!(!as_python_dotenv_reads(&merged.text).contains_key("NOTE"));
    // Closed quotes and escaped ones that close on the line are fine.
    let existing = "A='it''s'\nB=\"say \\\"hi\\\"\"\nC='a\\'b'\nD='x\ny'\n";
    assert!(checked(existing, &wanted("O'Brien")).is_ok());
}

#[test]
fn an_unmanaged_key_that_would_change_is_refused_even_with_the_managed_keys_right() {
    // The managed keys are updated in place above the open quote; the
    // appended key's quote closes it, and CUSTOM and FLAG vanish.
    let existing = "OPENROUTER_API_KEY=old\nOPENROUTER_EXTERNAL_USER=mai_client_79d89452\n\
                    NOTE='x\nCUSTOM=1\nFLAG\n";
    let misreading = refused(existing, &wanted("Acme Ltd"));
    assert_eq!(misreading.line, Some(3));
    assert_eq!(misreading.affected, "ORGANIZATION_NAME, CUSTOM and FLAG");
}

#[test]
fn a_quoted_key_that_is_never_closed_is_refused_without_naming_what_it_swallows() {
    let misreading = refused("'KEY=1\n", &wanted("O'Brien"));
    assert_eq!(misreading.problem, LineProblem::UnclosedKeyQuote);
    assert_eq!(misreading.line, Some(1));
    assert_says(
        &misreading,
        &["line 1 (KEY): its key opens a single quote that is never closed"],
    );
    // The key python-dotenv makes of the swallowed lines would hold the
    // API key: it is counted, never shown.
    let misreading = refused("'KEY=1\n", &wanted("O'=Brien"));
    assert_says(&misreading, &["ORGANIZATION_NAME and 1 other key"]);
}

#[test]
fn the_line_number_counts_lines_as_python_dotenv_does() {
    // CRLF, a lone CR and blank lines before the statement all count.
    let existing = "A=1\r\nB=2\r\n\r\n  \n  NOTE='x\r\n";
    assert_eq!(refused(existing, &wanted("Acme Ltd")).line, Some(5));
    let existing = "A=1\rB=2\r\rexport NOTE='x\n";
    let misreading = refused(existing, &wanted("Acme Ltd"));
    assert_eq!(
        (misreading.line, misreading.key.as_deref()),
        (Some(4), Some("NOTE"))
    );
}

#[test]
fn a_key_that_is_no_plain_name_is_not_shown() {
    let misreading = refused(&format!("{API_KEY}='x\n"), &wanted("Acme Ltd"));
    assert_eq!(misreading.key, None);
    assert_says(&misreading, &["line 1: its value opens a single quote"]);
}

#[test]
fn a_removed_key_must_be_gone() {
    let mut wanted = wanted("Acme");
    wanted.push(ManagedKey {
        key: "OPENAI_API_CONFIGS",
        value: None,
        secret: false,
    });
    let merged = checked("OPENAI_API_CONFIGS='{}'\nOPENAI_API_CONFIGS=x\n", &wanted).unwrap();
    assert!(!merged.text.contains("OPENAI_API_CONFIGS"));
}

#[test]
fn a_raw_cr_inside_quotes_reads_as_lf_and_is_refused() {
    // python-dotenv reads a CR inside quotes as LF (universal newlines), so
    // a secret kept from such a line is not what the application gets.
    let misreading = refused(
        "WEBUI_SECRET_KEY='a\rb'\n",
        &[key("WEBUI_SECRET_KEY", "a\rb", true)],
    );
    assert_eq!(misreading.line, Some(1));
    assert_eq!(misreading.problem, LineProblem::ReadsDifferently);
    assert_says(
        &misreading,
        &[
            "line 1 (WEBUI_SECRET_KEY): python-dotenv reads it otherwise",
            "a carriage return inside quotes",
        ],
    );
}

#[test]
fn universal_newlines_are_those_of_python() {
    assert_eq!(universal_newlines("a\r\nb\rc\n\r\r\n"), "a\nb\nc\n\n\n");
    let read = as_python_dotenv_reads("A='x\r\ny'\nB\n");
    assert_eq!(read["A"].as_deref(), Some("x\ny"));
    assert_eq!(read["B"], None);
    assert!(read.contains_key("B"));
}
