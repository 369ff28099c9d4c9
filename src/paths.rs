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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_name_lives_in_the_working_directory() {
        assert_eq!(dir_of(Path::new(".env")), Path::new("."));
        assert_eq!(dir_of(Path::new("/shared/.env")), Path::new("/shared"));
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
