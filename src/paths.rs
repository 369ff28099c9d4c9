//! Path rules shared by every module that works beside a file: the folder a
//! file lives in, and a sibling named after it.

use std::path::{Path, PathBuf};

/// The directory holding `path`; `.` for a bare file name, whose parent
/// `Path::parent` gives as the empty path.
pub fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// The sibling whose name is `path`'s plus `suffix`: `.env` → `.env.lock`.
pub fn with_name_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Whether two paths name the same file: their folders resolved (links,
/// `..`, relative paths), their names compared. Also for files that do not
/// exist yet, as long as their folders do.
pub fn same_location(a: &Path, b: &Path) -> bool {
    let resolved = |path: &Path| {
        let dir = std::fs::canonicalize(dir_of(path)).unwrap_or_else(|_| dir_of(path).to_owned());
        dir.join(path.file_name().unwrap_or_default())
    };
    resolved(a) == resolved(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_name_lives_in_the_working_directory() {
        assert_eq!(dir_of(Path::new(".env")), Path::new("."));
        assert_eq!(dir_of(Path::new("/shared/.env")), Path::new("/shared"));
    }

    #[test]
    fn the_same_file_is_recognised_under_another_name() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        std::os::unix::fs::symlink(&sub, dir.path().join("link")).unwrap();
        assert!(same_location(&sub.join("x"), &dir.path().join("link/x")));
        assert!(same_location(&sub.join("x"), &sub.join("../sub/x")));
        assert!(!same_location(&sub.join("x"), &sub.join("y")));
    }

    #[test]
    fn siblings_keep_the_folder() {
        assert_eq!(
            with_name_suffix(Path::new("/shared/.env"), ".backup"),
            Path::new("/shared/.env.backup")
        );
        assert_eq!(
            with_name_suffix(Path::new(".env"), ".lock"),
            Path::new(".env.lock")
        );
    }
}
