//! The organization id and the rules for keeping it. The id is also the
//! OpenRouter "external user" that all usage history hangs on, so it is never
//! changed silently: a different id in the `.env` or a different name under
//! this id in the database stops the job until the operator confirms.

use std::path::PathBuf;

use md5::{Digest, Md5};

use crate::secret::to_hex;

pub(crate) const DERIVED_PREFIX: &str = "mai_client_";
const DERIVED_HEX_DIGITS: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IdSource {
    /// `OPENROUTER_EXTERNAL_USER` was set.
    Explicit,
    /// Derived from the organization name by the application's rule.
    Derived,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgId {
    pub value: String,
    pub source: IdSource,
}

impl OrgId {
    pub fn resolve(explicit: Option<&str>, name: &str) -> Self {
        match explicit {
            Some(id) => Self {
                value: id.to_owned(),
                source: IdSource::Explicit,
            },
            None => Self {
                value: derive(name),
                source: IdSource::Derived,
            },
        }
    }

    pub fn is_explicit(&self) -> bool {
        self.source == IdSource::Explicit
    }
}

/// The application's generator: `mai_client_` + the first 8 hex digits of
/// MD5 over the trimmed name's UTF-8 bytes. MD5 is not used for security
/// here; it is kept because existing deployments' ids were made with it.
pub fn derive(name: &str) -> String {
    let digest = Md5::digest(name.trim().as_bytes());
    let hex = to_hex(&digest);
    format!("{DERIVED_PREFIX}{}", &hex[..DERIVED_HEX_DIGITS])
}

/// What the application's user-mapping check expects of the id (a mismatch
/// is only logged there, so a deployment with such an id still runs).
pub(crate) const APPLICATION_ID_PATTERN: &str = "^mai_client_[a-zA-Z0-9_]+$";

/// Ids and names the application treats specially, for the operator to
/// confirm: none of them stops the run.
pub(crate) fn warnings(id: &OrgId, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    if !matches_application_pattern(&id.value) {
        out.push(format!(
            "OPENROUTER_EXTERNAL_USER={} does not match {APPLICATION_ID_PATTERN}, the form the application's \
             user-mapping check expects: it logs a mismatch for this organization. Keep the id if existing \
             usage hangs on it; a new deployment should use the derived id ({}).",
            id.value,
            derive(name)
        ));
    }
    if id.value.to_ascii_lowercase().contains("dev") {
        out.push(format!(
            "the organization id {} contains `dev`, which switches the application's start-up initializer \
             into development mode: it adds every user of the instance to this organization.",
            id.value
        ));
    }
    if name.contains("DEV") {
        out.push(format!(
            "ORGANIZATION_NAME={name:?} contains `DEV`, which switches the application's start-up \
             initializer into development mode: it adds every user of the instance to this organization."
        ));
    }
    out
}

fn matches_application_pattern(id: &str) -> bool {
    id.strip_prefix(DERIVED_PREFIX).is_some_and(|rest| {
        !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    // The ids found in files are shown escaped: a hostile `.env` or row
    // must not forge a log line or send escape sequences to a terminal.
    #[error(
        "{} links this deployment to organization id {found}, but ORGANIZATION_NAME={name:?} gives {resolved}. \
         If the organization was renamed, keep its usage history by setting OPENROUTER_EXTERNAL_USER={found}{}",
        env_file.display(),
        new_id_advice(resolved, existing.escape_debug(), *key_held_by_existing),
        found = existing.escape_debug()
    )]
    EnvHoldsOtherId {
        env_file: PathBuf,
        existing: String,
        resolved: String,
        name: String,
        /// The database gives this key to the row of `existing`: a new id
        /// with the same key would be refused as a key conflict.
        key_held_by_existing: bool,
    },
    #[error(
        "the database holds organization id {id} under the name {stored:?}, not {name:?}. \
         To confirm the rename, set OPENROUTER_EXTERNAL_USER={id} explicitly; \
         if this is a different organization, set its own OPENROUTER_EXTERNAL_USER."
    )]
    NameDiffersInDatabase {
        id: String,
        stored: String,
        name: String,
    },
    #[error(
        "the OpenRouter key is already used by organization {other_name:?} (id {other}); \
         each organization needs its own key. Nothing was changed. \
         Give this organization its own key, or set OPENROUTER_EXTERNAL_USER={other} if this is that organization.",
        other = other_id.escape_debug()
    )]
    KeyBelongsToOther {
        other_id: String,
        other_name: String,
    },
}

/// Only advice that works in the state at hand: a new id is no way out
/// while the old id's row holds the key.
fn new_id_advice(resolved: &str, found: impl std::fmt::Display, key_held: bool) -> String {
    if key_held {
        format!(
            ". Starting a new organization id instead needs its own OpenRouter key too, since organization \
             {found} holds this one."
        )
    } else {
        format!("; to really start a new organization id, set OPENROUTER_EXTERNAL_USER={resolved}.")
    }
}

/// The `.env` already names an id: it must be ours unless the operator chose
/// the id explicitly (which is how a rename is confirmed). `key_holder` is
/// the id of the row that holds this key in the database, where known.
pub(crate) fn check_env_id(
    id: &OrgId,
    env_id: Option<&str>,
    env_file: &std::path::Path,
    name: &str,
    key_holder: Option<&str>,
) -> Result<(), IdentityError> {
    match env_id {
        Some(existing) if existing != id.value && !id.is_explicit() => {
            Err(IdentityError::EnvHoldsOtherId {
                env_file: env_file.to_owned(),
                existing: existing.to_owned(),
                resolved: id.value.clone(),
                name: name.to_owned(),
                key_held_by_existing: key_holder == Some(existing),
            })
        }
        _ => Ok(()),
    }
}

/// The row with our id carries another name: a rename, or a collision of the
/// derived id. Only an explicit id may rename it.
pub(crate) fn check_stored_name(id: &OrgId, stored: &str, name: &str) -> Result<(), IdentityError> {
    if stored.trim() == name || id.is_explicit() {
        return Ok(());
    }
    Err(IdentityError::NameDiffersInDatabase {
        id: id.value.clone(),
        stored: stored.to_owned(),
        name: name.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn derivation_matches_the_contract_vectors() {
        assert_eq!(derive("Company_A"), "mai_client_63a4eb6d");
        assert_eq!(derive("ABC Company Sp. z o.o."), "mai_client_362862c8");
        assert_eq!(derive("Acme"), "mai_client_79d89452");
    }

    #[test]
    fn derivation_trims_but_keeps_case() {
        assert_eq!(derive("  Acme \n"), derive("Acme"));
        assert_ne!(derive("acme"), derive("Acme"));
    }

    #[test]
    fn explicit_id_wins() {
        let id = OrgId::resolve(Some("custom-id"), "Acme");
        assert_eq!(id.value, "custom-id");
        assert!(id.is_explicit());
        assert_eq!(OrgId::resolve(None, "Acme").value, "mai_client_79d89452");
    }

    #[test]
    fn another_id_in_the_env_is_refused_with_both_ways_out() {
        let id = OrgId::resolve(None, "Acme");
        let err = check_env_id(
            &id,
            Some("mai_client_00000000"),
            Path::new(".env"),
            "Acme",
            None,
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("OPENROUTER_EXTERNAL_USER=mai_client_00000000"),
            "{text}"
        );
        assert!(
            text.contains("OPENROUTER_EXTERNAL_USER=mai_client_79d89452"),
            "{text}"
        );
    }

    #[test]
    fn a_new_id_is_not_offered_while_the_old_row_holds_the_key() {
        let id = OrgId::resolve(None, "Acme");
        let err = check_env_id(
            &id,
            Some("mai_client_00000000"),
            Path::new(".env"),
            "Acme",
            Some("mai_client_00000000"),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("OPENROUTER_EXTERNAL_USER=mai_client_00000000"),
            "{text}"
        );
        assert!(
            !text.contains("OPENROUTER_EXTERNAL_USER=mai_client_79d89452"),
            "{text}"
        );
        assert!(text.contains("needs its own OpenRouter key"), "{text}");
    }

    #[test]
    fn same_or_explicit_id_passes_the_env_check() {
        let derived = OrgId::resolve(None, "Acme");
        assert!(
            check_env_id(
                &derived,
                Some("mai_client_79d89452"),
                Path::new(".env"),
                "Acme",
                None
            )
            .is_ok()
        );
        assert!(check_env_id(&derived, None, Path::new(".env"), "Acme", None).is_ok());
        let explicit = OrgId::resolve(Some("new-id"), "Acme");
        assert!(check_env_id(&explicit, Some("old-id"), Path::new(".env"), "Acme", None).is_ok());
    }

    #[test]
    fn ids_the_application_treats_specially_are_warned_about() {
        let derived = OrgId::resolve(None, "Acme");
        assert!(warnings(&derived, "Acme").is_empty());
        let dashed = OrgId::resolve(Some("mai_client_a-b"), "Acme");
        let text = warnings(&dashed, "Acme").join("\n");
        assert!(text.contains(APPLICATION_ID_PATTERN), "{text}");
        assert!(text.contains("mai_client_79d89452"), "{text}");
        let other = OrgId::resolve(Some("client_1"), "Acme");
        assert_eq!(warnings(&other, "Acme").len(), 1);
        let dev = OrgId::resolve(Some("mai_client_DevTeam"), "Acme");
        let text = warnings(&dev, "Acme").join("\n");
        assert!(text.contains("development mode"), "{text}");
        assert!(!text.contains(APPLICATION_ID_PATTERN), "{text}");
        assert!(
            warnings(&derived, "Acme DEV")
                .join("\n")
                .contains("development mode")
        );
        assert!(
            warnings(&derived, "Acme Dev").is_empty(),
            "names count only in capitals"
        );
    }

    #[test]
    fn a_stored_name_change_needs_an_explicit_id() {
        let derived = OrgId::resolve(None, "Acme");
        assert!(check_stored_name(&derived, "Acme Ltd", "Acme").is_err());
        assert!(check_stored_name(&derived, "Acme", "Acme").is_ok());
        let explicit = OrgId::resolve(Some("mai_client_79d89452"), "Acme");
        assert!(check_stored_name(&explicit, "Acme Ltd", "Acme").is_ok());
    }
}
