//! The Kubernetes termination message: one short line with the outcome,
//! built only from text that is already secret-free: the status, the exit
//! code, the summary the last log line carries (id, what changed, duration)
//! or the error message, which never holds a value either. `termination`
//! writes it.

use std::time::Duration;

use super::{Outcome, text::summary};
use crate::error::Error;
use crate::exit::ExitCode;

/// The kubelet keeps at most 4096 bytes per container; an outcome needs far
/// less, and a short line stays readable in `kubectl describe`.
const MAX_BYTES: usize = 1024;

/// The line for a finished run.
pub(super) fn line(result: &Result<Outcome, Error>, code: ExitCode, elapsed: Duration) -> String {
    let line = match result {
        Ok(outcome) => format!(
            "{} exit={}: {}",
            outcome.status.as_str(),
            code.code(),
            summary(outcome, elapsed)
        ),
        Err(error) => format!(
            "error exit={} after {} ms: {error}",
            code.code(),
            elapsed.as_millis()
        ),
    };
    one_short_line(&line)
}

/// The line for a run that ended before the library ran (a usage error) or
/// that panicked.
pub fn early_message(code: ExitCode, what: &str) -> String {
    one_short_line(&format!("error exit={}: {what}", code.code()))
}

/// Control characters (a line break in a path, say) become spaces, and the
/// line is cut at a character boundary to `MAX_BYTES`.
fn one_short_line(line: &str) -> String {
    let flat: String = line
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.len() <= MAX_BYTES {
        return flat;
    }
    const ELLIPSIS: char = '…';
    let mut end = MAX_BYTES - ELLIPSIS.len_utf8();
    while !flat.is_char_boundary(end) {
        end -= 1;
    }
    let mut cut = flat[..end].to_owned();
    cut.push(ELLIPSIS);
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_break_becomes_a_space() {
        assert_eq!(one_short_line("a\nb\r\tc"), "a b  c");
    }

    #[test]
    fn a_long_line_is_cut_at_a_character_boundary() {
        let long = "ż".repeat(MAX_BYTES);
        let cut = one_short_line(&long);
        assert!(cut.len() <= MAX_BYTES, "{}", cut.len());
        assert!(cut.ends_with('…'));
        assert!(cut.len() > MAX_BYTES - 8, "cut too much: {}", cut.len());
        let short = "x".repeat(MAX_BYTES);
        assert_eq!(one_short_line(&short), short);
    }

    #[test]
    fn status_words_match_the_json_report() {
        use crate::report::Status;
        for status in [Status::Applied, Status::Unchanged, Status::Planned] {
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
    }

    #[test]
    fn early_messages_name_the_code() {
        assert_eq!(
            early_message(ExitCode::Usage, "usage error"),
            "error exit=64: usage error"
        );
    }
}
