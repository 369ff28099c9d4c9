//! The key-management API as the job sees it: five calls behind a small
//! trait, their typed requests and answers, and one error type that says
//! what a failure means for the job (not which HTTP detail caused it). The
//! HTTP client (`http`) implements the trait; unit tests use a fake.

use serde::{Deserialize, Serialize};

use crate::secret::Secret;
use crate::signals::Interrupted;

/// How often a spending limit starts over (OpenRouter resets at midnight
/// UTC; a week runs Monday to Sunday).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitReset {
    Daily,
    Weekly,
    Monthly,
}

impl LimitReset {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Daily => "daily",
            Self::Weekly => "weekly",
            Self::Monthly => "monthly",
        }
    }

    /// The API's word, case-insensitively; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "daily" => Some(Self::Daily),
            "weekly" => Some(Self::Weekly),
            "monthly" => Some(Self::Monthly),
            _ => None,
        }
    }
}

/// One key as OpenRouter describes it: never its secret, which only the
/// answer to a create carries. Unknown fields are ignored, so that fields
/// OpenRouter adds later do not break the job.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct KeyInfo {
    /// OpenRouter's identifier of the key, the path parameter of
    /// `/keys/{hash}`; opaque, never derived from the secret.
    pub hash: String,
    pub name: String,
    #[serde(default)]
    pub disabled: bool,
    /// USD; `None` means no limit.
    #[serde(default)]
    pub limit: Option<f64>,
    /// A reset OpenRouter may name that this job does not know is kept as
    /// text, so that it is reconciled rather than misread.
    #[serde(default)]
    pub limit_reset: Option<String>,
}

/// The body of `POST /keys`. `limit` and `limit_reset` are always sent,
/// null included, so the key never depends on a server-side default.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewKey {
    pub name: String,
    pub limit: Option<f64>,
    pub limit_reset: Option<LimitReset>,
}

/// The body of `PATCH /keys/{hash}`: only the fields that differ. An absent
/// field stays as it is; `Some(None)` sends an explicit null (no limit, no
/// reset).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KeyPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<Option<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_reset: Option<Option<LimitReset>>,
}

impl KeyPatch {
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.limit.is_none() && self.limit_reset.is_none()
    }

    /// The fields it changes, for the report.
    pub fn fields(&self) -> Vec<&'static str> {
        let mut fields = Vec::new();
        if self.name.is_some() {
            fields.push("name");
        }
        if self.limit.is_some() {
            fields.push("limit");
        }
        if self.limit_reset.is_some() {
            fields.push("limit_reset");
        }
        fields
    }
}

/// The answer to a create: the only time OpenRouter shows the secret.
#[derive(Debug, Clone)]
pub struct CreatedKey {
    pub key: Secret,
    pub info: KeyInfo,
}

/// The key-management API. `&self`: the HTTP client needs no mutation, and
/// a fake keeps its state behind a `RefCell`.
pub trait KeyApi {
    /// One page of keys (disabled ones included), from `offset`.
    fn list(&self, offset: usize) -> Result<Vec<KeyInfo>, ApiError>;
    /// One key; `ApiError::NotFound` when it does not exist (or was deleted).
    fn get(&self, hash: &str) -> Result<KeyInfo, ApiError>;
    /// Never retried once sent: a lost answer is `ApiError::OutcomeUnknown`.
    fn create(&self, request: &NewKey) -> Result<CreatedKey, ApiError>;
    fn update(&self, hash: &str, patch: &KeyPatch) -> Result<KeyInfo, ApiError>;
    /// A key that is already gone counts as deleted.
    fn delete(&self, hash: &str) -> Result<(), ApiError>;
}

/// The page size OpenRouter lists keys in; a shorter page is the last.
pub const PAGE_SIZE: usize = 100;

/// Every key of the account, page by page, until an empty or short page.
/// Offsets shift when keys come and go, so everything is read before the
/// caller deletes anything.
pub fn list_all(api: &dyn KeyApi) -> Result<Vec<KeyInfo>, ApiError> {
    // A bound against a server that never ends its pages: far more keys
    // than any account holds.
    const MAX_PAGES: usize = 1000;
    let mut keys: Vec<KeyInfo> = Vec::new();
    for _ in 0..MAX_PAGES {
        let page = api.list(keys.len())?;
        let last = page.len() < PAGE_SIZE;
        keys.extend(page);
        if last {
            return Ok(keys);
        }
    }
    Err(ApiError::Protocol {
        reason: format!("GET /keys did not end after {MAX_PAGES} pages"),
    })
}

/// What a failed call means for the job. Every `reason` has been redacted
/// of secrets (see `redact`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// 401 or 403: the management key is wrong, revoked or not a
    /// management key.
    #[error(
        "OpenRouter refused {key_var} ({status}: {reason}): it is not a valid management key, or it was \
         revoked. Create a management key at https://openrouter.ai/settings/management-keys and set \
         {key_var} to it. Nothing was changed."
    )]
    Unauthorized {
        key_var: &'static str,
        status: u16,
        reason: String,
    },
    /// 400 (or another 4xx): the request itself was refused.
    #[error(
        "OpenRouter refused the request {request} as invalid ({status}: {reason}). Check \
         SPENDING_LIMIT, SPENDING_LIMIT_RESET and ORGANIZATION_NAME."
    )]
    Invalid {
        request: String,
        status: u16,
        reason: String,
    },
    /// 404 on a call that needs the key to exist.
    #[error("OpenRouter has no key {hash} (404)")]
    NotFound { hash: String },
    /// No definite answer, and nothing was changed by the call: connection
    /// refused, DNS, TLS, timeouts, 429 and 5xx until the deadline.
    #[error("OpenRouter is unreachable at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// A create was sent, but its answer never came: a key may exist whose
    /// secret nobody holds. The next run lists the keys and deletes it.
    #[error(
        "the answer to creating the key was lost ({reason}): OpenRouter may have created a key whose \
         secret the job never received. It was not retried; run the job again: the next run finds such \
         a key by its name, deletes it and creates one key"
    )]
    OutcomeUnknown { reason: String },
    /// An answer the job cannot read.
    #[error("OpenRouter gave an answer the job cannot read ({reason})")]
    Protocol { reason: String },
    /// The client cannot be set up: the CA file or the proxy is wrong.
    #[error("{var} {problem}. {fix}")]
    Setup {
        var: &'static str,
        problem: String,
        fix: &'static str,
    },
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
}

impl ApiError {
    /// True when the call left OpenRouter as it was and gave no answer
    /// about the key: the job may carry on with a key it already holds.
    pub fn is_outage(&self) -> bool {
        matches!(
            self,
            Self::Unreachable { .. } | Self::Protocol { .. } | Self::OutcomeUnknown { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    struct Pages(RefCell<Vec<usize>>, usize);

    impl KeyApi for Pages {
        fn list(&self, offset: usize) -> Result<Vec<KeyInfo>, ApiError> {
            self.0.borrow_mut().push(offset);
            let left = self.1.saturating_sub(offset).min(PAGE_SIZE);
            Ok((0..left)
                .map(|i| KeyInfo {
                    hash: format!("h{}", offset + i),
                    name: "n".into(),
                    disabled: false,
                    limit: None,
                    limit_reset: None,
                })
                .collect())
        }
        fn get(&self, hash: &str) -> Result<KeyInfo, ApiError> {
            Err(ApiError::NotFound { hash: hash.into() })
        }
        fn create(&self, _: &NewKey) -> Result<CreatedKey, ApiError> {
            unreachable!()
        }
        fn update(&self, _: &str, _: &KeyPatch) -> Result<KeyInfo, ApiError> {
            unreachable!()
        }
        fn delete(&self, _: &str) -> Result<(), ApiError> {
            unreachable!()
        }
    }

    #[test]
    fn listing_reads_pages_until_a_short_or_empty_one() {
        for (total, offsets) in [
            (0, vec![0]),
            (99, vec![0]),
            (100, vec![0, 100]),
            (250, vec![0, 100, 200]),
        ] {
            let api = Pages(RefCell::new(vec![]), total);
            let keys = list_all(&api).unwrap();
            assert_eq!(keys.len(), total);
            assert_eq!(*api.0.borrow(), offsets, "{total} keys");
        }
    }

    #[test]
    fn a_patch_sends_only_what_differs_and_nulls_explicitly() {
        let patch = KeyPatch {
            limit: Some(None),
            limit_reset: Some(Some(LimitReset::Monthly)),
            ..KeyPatch::default()
        };
        assert_eq!(
            serde_json::to_string(&patch).unwrap(),
            r#"{"limit":null,"limit_reset":"monthly"}"#
        );
        assert_eq!(patch.fields(), ["limit", "limit_reset"]);
        assert!(KeyPatch::default().is_empty());
    }

    #[test]
    fn a_create_always_names_the_limit_and_its_reset() {
        let body = NewKey {
            name: "mAI Client: Acme (mai_client_79d89452)".into(),
            limit: None,
            limit_reset: None,
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"name":"mAI Client: Acme (mai_client_79d89452)","limit":null,"limit_reset":null}"#
        );
    }

    #[test]
    fn key_info_reads_the_documented_shape_and_ignores_the_rest() {
        let json = r#"{"byok_usage":17.38,"created_at":"2025-08-24T10:30:00Z","disabled":false,
            "expires_at":null,"hash":"f01d","include_byok_in_limit":false,"label":"sk-or-v1-0e6...1c96",
            "limit":100,"limit_remaining":74.5,"limit_reset":"monthly","name":"My Key",
            "updated_at":null,"usage":25.5,"workspace_id":"0df9"}"#;
        let info: KeyInfo = serde_json::from_str(json).unwrap();
        assert_eq!(info.hash, "f01d");
        assert_eq!(info.limit, Some(100.0));
        assert_eq!(info.limit_reset.as_deref(), Some("monthly"));
        assert!(!info.disabled);
    }
}
