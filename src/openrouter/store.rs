//! The key store: the one place that holds the secret of the key the job
//! minted, with OpenRouter's hash of it, the previous key still waiting to
//! be deleted after a rotation, a rotation begun but not finished, and the
//! last ROTATE_KEY token done. JSON, mode 0600, written atomically and
//! fsynced (a temp file renamed over it, then the folder synced), so that a
//! crash leaves the old store or the new one.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::envfile::{self, FileError, PreparedFile};
use crate::secret::Secret;

const VERSION: u32 = 1;
const MODE: u32 = 0o600;

/// What the store holds.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredKeys {
    /// The organization the keys belong to: a store is never used for
    /// another one.
    pub organization_id: String,
    pub current: Option<CurrentKey>,
    pub previous: Option<PreviousKey>,
    /// Recorded before the create of a rotation, so that a run that dies in
    /// the middle of one is finished by the next.
    pub rotation: Option<PendingRotation>,
    /// The last ROTATE_KEY token a rotation was done for.
    pub rotation_token: Option<String>,
}

/// The key in effect.
#[derive(Debug, Clone, PartialEq)]
pub struct CurrentKey {
    pub hash: String,
    pub key: Secret,
    /// When it was minted (epoch seconds).
    pub created_at: i64,
}

/// The key a rotation replaced, live until no application can still use
/// it (see `keyplan::previous_key`). It holds no secret: the file stores it
/// as it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviousKey {
    pub hash: String,
    /// When the current key replaced it (epoch seconds).
    pub replaced_at: i64,
    /// The latest `updated_at` this job itself wrote into the row since:
    /// a later one can only be the application's start.
    pub row_written_at: Option<i64>,
}

impl PreviousKey {
    /// The row's `updated_at` must be later than this to show that the
    /// application started after the key changed.
    pub fn evidence_after(&self) -> i64 {
        self.row_written_at
            .map_or(self.replaced_at, |written| written.max(self.replaced_at))
    }
}

/// A rotation begun but not finished. No secret either: the file stores
/// it as it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingRotation {
    /// The ROTATE_KEY token it is for; `None` for `--rotate-key`.
    pub token: Option<String>,
    pub requested_at: i64,
}

impl StoredKeys {
    pub fn empty(organization_id: &str) -> Self {
        Self {
            organization_id: organization_id.to_owned(),
            current: None,
            previous: None,
            rotation: None,
            rotation_token: None,
        }
    }

    /// Whether a rotation is due: begun and unfinished, asked for with
    /// `--rotate-key`, or asked for with a ROTATE_KEY token not done yet.
    /// One rule for the reading and the planning.
    pub fn rotation_due(&self, flag: bool, token: Option<&str>) -> bool {
        self.rotation.is_some()
            || flag
            || token.is_some_and(|token| self.rotation_token.as_deref() != Some(token))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "{}, the OpenRouter key store (OPENROUTER_KEY_STORE), {problem}. It may hold the secret of the \
         organization's key: move it aside rather than delete it; the next run then replaces the key on \
         OpenRouter. Nothing was changed.",
        path.display()
    )]
    Damaged { path: PathBuf, problem: String },
    #[error(
        "{}, the OpenRouter key store (OPENROUTER_KEY_STORE), belongs to organization {found}, not {id}. \
         Point OPENROUTER_KEY_STORE at this organization's store (each organization has its own key), or \
         check OPENROUTER_EXTERNAL_USER. Nothing was changed.",
        path.display()
    )]
    OtherOrganization {
        path: PathBuf,
        found: String,
        id: String,
    },
    #[error(
        "cannot keep a minted OpenRouter key in {}: its folder does not exist. Mount the data volume at \
         DATA_DIR (or point OPENROUTER_KEY_STORE at a folder that outlives the container): a key whose \
         secret is not kept is lost. Nothing was created.",
        path.display()
    )]
    NoFolder { path: PathBuf },
    #[error(transparent)]
    File(#[from] FileError),
}

/// The file's shape. Kept apart from `StoredKeys` so that the secret is
/// a `Secret` everywhere but in this one conversion (`FileCurrent`); the
/// previous key and the pending rotation hold none and are stored as they
/// are.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: u32,
    organization_id: String,
    current: Option<FileCurrent>,
    previous: Option<PreviousKey>,
    rotation: Option<PendingRotation>,
    rotation_token: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCurrent {
    hash: String,
    key: String,
    created_at: i64,
}

/// The store of organization `id`, or `None` when there is none yet.
pub fn read(path: &Path, id: &str) -> Result<Option<StoredKeys>, StoreError> {
    let damaged = |problem: &str| StoreError::Damaged {
        path: path.to_owned(),
        problem: problem.to_owned(),
    };
    let text = match envfile::read_existing(path) {
        Ok(None) => return Ok(None),
        Ok(Some(text)) => text,
        Err(FileError::NotUtf8 { .. }) => return Err(damaged("is not UTF-8 text")),
        Err(FileError::TooLarge { .. }) => return Err(damaged("is far larger than a key store")),
        Err(FileError::IsDirectory { .. }) => {
            return Err(damaged(
                "is a directory (Docker makes one when it mounts a file that does not exist yet)",
            ));
        }
        Err(FileError::NotRegularFile { .. }) => {
            return Err(damaged("is not a regular file (a pipe, socket or device)"));
        }
        Err(e) => return Err(e.into()),
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    // The parser's message is not shown: it may quote the secret.
    let file: File = serde_json::from_str(&text).map_err(|e| {
        damaged(&format!(
            "is not a key store of this job (JSON line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    if file.version != VERSION {
        return Err(damaged(&format!(
            "has version {}, which this job does not know (it writes version {VERSION})",
            file.version
        )));
    }
    if file.organization_id != id {
        return Err(StoreError::OtherOrganization {
            path: path.to_owned(),
            found: file.organization_id.escape_debug().to_string(),
            id: id.to_owned(),
        });
    }
    Ok(Some(StoredKeys::from(file)))
}

/// The store's folder must exist: without it the store cannot be written
/// and a minted key's secret would be lost.
pub fn check_folder(path: &Path) -> Result<(), StoreError> {
    if crate::paths::dir_of(path).is_dir() {
        Ok(())
    } else {
        Err(StoreError::NoFolder {
            path: path.to_owned(),
        })
    }
}

/// Replace the store atomically: written, synced, renamed, the folder
/// synced. A replaced store keeps its owner. A termination signal does not
/// stop it: it may hold a secret that exists nowhere else, and it is quick.
pub fn write(path: &Path, keys: &StoredKeys) -> Result<(), StoreError> {
    check_folder(path)?;
    let mut json =
        serde_json::to_string_pretty(&File::from(keys)).map_err(|e| StoreError::Damaged {
            path: path.to_owned(),
            problem: format!("cannot be written ({e})"),
        })?;
    json.push('\n');
    let prepared =
        PreparedFile::create_despite_signals(path, json.as_bytes(), MODE, envfile::owner_of(path))?;
    prepared.commit()?;
    Ok(())
}

impl From<File> for StoredKeys {
    fn from(file: File) -> Self {
        Self {
            organization_id: file.organization_id,
            current: file.current.map(|c| CurrentKey {
                hash: c.hash,
                key: Secret::new(c.key),
                created_at: c.created_at,
            }),
            previous: file.previous,
            rotation: file.rotation,
            rotation_token: file.rotation_token,
        }
    }
}

impl From<&StoredKeys> for File {
    fn from(keys: &StoredKeys) -> Self {
        Self {
            version: VERSION,
            organization_id: keys.organization_id.clone(),
            current: keys.current.as_ref().map(|c| FileCurrent {
                hash: c.hash.clone(),
                key: c.key.expose().to_owned(),
                created_at: c.created_at,
            }),
            previous: keys.previous.clone(),
            rotation: keys.rotation.clone(),
            rotation_token: keys.rotation_token.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const ID: &str = "mai_client_79d89452";

    fn sample() -> StoredKeys {
        StoredKeys {
            current: Some(CurrentKey {
                hash: "abc123".into(),
                key: Secret::new("sk-or-v1-STOREFAKE000111222333444555"),
                created_at: 1_800_000_000,
            }),
            previous: Some(PreviousKey {
                hash: "old456".into(),
                replaced_at: 1_800_000_000,
                row_written_at: None,
            }),
            rotation: None,
            rotation_token: Some("2026-11-30".into()),
            ..StoredKeys::empty(ID)
        }
    }

    #[test]
    fn a_store_reads_back_as_written_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".openrouter_key");
        assert_eq!(read(&path, ID).unwrap(), None);
        write(&path, &sample()).unwrap();
        assert_eq!(read(&path, ID).unwrap(), Some(sample()));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn damage_is_refused_without_quoting_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".openrouter_key");
        for text in [
            "{\"version\":1,\"organization_id\":\"x\",\"current\":{\"hash\":1,\"key\":\"sk-or-v1-SECRETSECRET\"}}",
            "sk-or-v1-SECRETSECRET",
            "{\"version\":2,\"organization_id\":\"x\",\"current\":null,\"previous\":null,\"rotation\":null,\"rotation_token\":null}",
        ] {
            std::fs::write(&path, text).unwrap();
            let e = read(&path, ID).unwrap_err();
            assert!(matches!(e, StoreError::Damaged { .. }), "{e:?}");
            assert!(!e.to_string().contains("SECRETSECRET"), "{e}");
        }
    }

    #[test]
    fn another_organization_s_store_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".openrouter_key");
        write(&path, &sample()).unwrap();
        let e = read(&path, "mai_client_other").unwrap_err();
        assert!(matches!(e, StoreError::OtherOrganization { .. }), "{e:?}");
        assert!(e.to_string().contains(ID), "{e}");
    }

    #[test]
    fn a_missing_folder_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing/.openrouter_key");
        assert!(matches!(
            write(&path, &sample()),
            Err(StoreError::NoFolder { .. })
        ));
    }

    #[test]
    fn a_rotation_is_due_once_per_token() {
        let keys = sample();
        assert!(!keys.rotation_due(false, None));
        assert!(!keys.rotation_due(false, Some("2026-11-30")));
        assert!(keys.rotation_due(false, Some("2026-12-01")));
        assert!(keys.rotation_due(true, Some("2026-11-30")));
        let pending = StoredKeys {
            rotation: Some(PendingRotation {
                token: None,
                requested_at: 1,
            }),
            ..sample()
        };
        assert!(pending.rotation_due(false, None));
    }

    #[test]
    fn the_evidence_starts_after_the_job_s_own_writes() {
        let mut previous = sample().previous.unwrap();
        assert_eq!(previous.evidence_after(), 1_800_000_000);
        previous.row_written_at = Some(1_800_000_500);
        assert_eq!(previous.evidence_after(), 1_800_000_500);
    }
}
