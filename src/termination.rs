//! The Kubernetes termination message. The kubelet creates
//! `/dev/termination-log` in every container and shows what was written there
//! in `kubectl describe pod` and in the pod's status, so a failed
//! initContainer explains itself without anyone reading its logs. When that
//! file exists, the run's outcome (see `report`) goes there.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where the kubelet expects the message (`terminationMessagePath`).
pub(crate) const DEFAULT_PATH: &str = "/dev/termination-log";

/// Overrides the path, for tests and for a pod that sets another
/// `terminationMessagePath`.
pub(crate) const PATH_VARIABLE: &str = "MAI_PROVISION_TERMINATION_LOG";

/// The path to write to: the override when set and not empty, else the
/// kubelet's default.
pub fn path() -> PathBuf {
    std::env::var_os(PATH_VARIABLE)
        .filter(|value| !value.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_PATH), PathBuf::from)
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

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
    fn the_override_is_a_documented_variable() {
        assert!(crate::config::vars::is_known(PATH_VARIABLE));
    }
}
