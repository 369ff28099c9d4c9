//! The Kubernetes termination message. The kubelet creates
//! `/dev/termination-log` in every container and shows what was written there
//! in `kubectl describe pod` and in the pod's status, so a failed
//! initContainer explains itself without anyone reading its logs. When that
//! file exists, the run's outcome goes there as one short line.
//!
//! The line is built only from text that is already secret-free: the status,
//! the exit code, the summary the last log line carries (id, what changed,
//! duration) or the error message, which never holds a value either.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::Error;
use crate::exit::ExitCode;
use crate::report::{self, Outcome};

/// Where the kubelet expects the message (`terminationMessagePath`).
pub const DEFAULT_PATH: &str = "/dev/termination-log";

/// Overrides the path, for tests and for a pod that sets another
/// `terminationMessagePath`.
pub const PATH_VARIABLE: &str = "MAI_PROVISION_TERMINATION_LOG";

/// The kubelet keeps at most 4096 bytes per container; an outcome needs far
/// less, and a short line stays readable in `kubectl describe`.
pub const MAX_BYTES: usize = 1024;

/// The path to write to: the override when set and not empty, else the
/// kubelet's default.
pub fn path() -> PathBuf {
    std::env::var_os(PATH_VARIABLE)
        .filter(|value| !value.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_PATH), PathBuf::from)
}

/// The line for a finished run.
pub fn message(result: &Result<Outcome, Error>, code: ExitCode, elapsed: Duration) -> String {
    let line = match result {
        Ok(outcome) => format!(
            "{} exit={}: {}",
            outcome.status.as_str(),
            code.code(),
            report::summary(outcome, elapsed)
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

/// Write `message` to the termination log at `path`, if that file exists.
/// Outside Kubernetes it does not, and nothing is created. Every failure is
/// ignored: the message is a courtesy and must never change the exit code.
pub fn write(path: &Path, message: &str) {
    // Only a regular file: opening a FIFO for writing would block until
    // someone reads it, and a device or folder is not a message log.
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return;
    }
    let written = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .and_then(|mut file| file.write_all(message.as_bytes()));
    if let Err(e) = written {
        tracing::debug!(path = %path.display(), "cannot write the termination message: {e}");
    }
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
    use std::os::unix::fs::PermissionsExt;

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
    fn an_existing_file_is_replaced_and_a_missing_one_never_created() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("termination-log");
        write(&log, "first");
        assert!(!log.exists());
        std::fs::write(&log, "an older, longer message").unwrap();
        write(&log, "second");
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "second");
    }

    #[test]
    fn folders_and_unwritable_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "into a folder");
        let log = dir.path().join("termination-log");
        std::fs::write(&log, "kept").unwrap();
        std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o444)).unwrap();
        // As root the write goes through anyway; either way it must not panic.
        write(&log, "new");
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text == "kept" || text == "new", "{text}");
    }

    #[test]
    fn status_words_match_the_json_report() {
        use crate::report::Status;
        for status in [Status::Applied, Status::Unchanged, Status::Planned] {
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
    }

    #[test]
    fn the_override_is_a_documented_variable() {
        assert!(crate::config::vars::is_known(PATH_VARIABLE));
    }

    #[test]
    fn early_messages_name_the_code() {
        assert_eq!(
            early_message(ExitCode::Usage, "usage error"),
            "error exit=64: usage error"
        );
    }
}
