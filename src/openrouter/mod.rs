//! OpenRouter's key-management API: the client behind the `KeyApi` trait,
//! its retry and deadline rules, the TLS and proxy set-up, and the key
//! store that keeps the secret of the key the job minted. The decisions
//! are `keyplan`'s; carrying them out is `keyapply`'s.

mod api;
mod http;
mod redact;
mod retry;
mod store;

#[cfg(test)]
pub(crate) use api::CreatedKey;
pub(crate) use api::{ApiError, KeyApi, KeyInfo, KeyPatch, LimitReset, NewKey, list_all};
pub(crate) use http::{ClientSettings, HttpKeyApi, is_loopback_host, url_host};
pub(crate) use store::{
    CurrentKey, PendingRotation, PreviousKey, StoreError, StoredKeys,
    check_folder as check_store_folder, read as read_store, write as write_store,
};
