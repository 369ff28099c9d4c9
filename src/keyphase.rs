//! The key phase of a run with a management key, as the run drives it:
//! build the client, read (keyworld), decide (keyplan), act (keyapply),
//! and, once the row is known, decide on and delete the key a rotation
//! replaced. `lib` calls it around today's pipeline.

use crate::cli::Options;
use crate::config::{Config, Minting, Mode};
use crate::error::Error;
use crate::identity::OrgId;
use crate::keyapply::{self, KeyOutcome};
use crate::keyplan::{self, PreviousPlan, RotationRequest, RowSeen};
use crate::keyworld;
use crate::openrouter::{self, HttpKeyApi};
use crate::secret::Secret;
use crate::world::{DatabaseState, World};

/// The key phase of a run with a management key: the client, what it did,
/// and what becomes of the key a rotation replaced.
pub(crate) struct KeyPhase {
    pub api: HttpKeyApi,
    minting: Minting,
    pub outcome: KeyOutcome,
    pub previous: PreviousPlan,
    pub previous_deleted: Option<String>,
}

impl KeyPhase {
    /// Read the store and OpenRouter, decide, and (unless a dry run) mint,
    /// reconcile and store: the key the `.env` and the row get.
    pub(crate) fn run(
        config: &Config,
        minting: &Minting,
        id: &OrgId,
        options: &Options,
        mode: Mode,
        now: i64,
    ) -> Result<Self, Error> {
        let api = HttpKeyApi::new(&openrouter::ClientSettings {
            base_url: &config.host,
            management_key: &minting.management_key,
            key_var: minting.key_var,
            timeout: minting.timeout,
            ssl_cert_file: minting.ssl_cert_file.as_deref(),
            https_proxy: minting.https_proxy.as_ref().map(Secret::expose),
            no_proxy: minting.no_proxy.as_deref(),
        })?;
        let rotation = RotationRequest {
            flag: options.rotate_key,
            token: minting.rotate_token.as_deref(),
        };
        if !options.dry_run {
            keyapply::remove_leftovers(minting);
        }
        let state = keyworld::read(&api, minting, id, rotation, mode == Mode::Env)?;
        let plan = keyplan::decide(config, minting, id, &state, rotation, now)?;
        let outcome = keyapply::provision(
            &api,
            &plan,
            state.store.as_ref(),
            minting,
            id,
            now,
            options.dry_run,
        )?;
        Ok(Self {
            api,
            minting: minting.clone(),
            outcome,
            previous: PreviousPlan::None,
            previous_deleted: None,
        })
    }

    /// Decide on the key a rotation replaced, from the row as found.
    pub(crate) fn plan_previous(&mut self, mode: Mode, world: &World, now: i64) {
        let Some(store) = &self.outcome.store else {
            return;
        };
        let row = match &world.database {
            DatabaseState::Ready(snapshot) => snapshot.row.as_ref().map(|row| RowSeen {
                api_key: &row.api_key,
                updated_at: match row.updated_at {
                    rusqlite::types::Value::Integer(at) => Some(at),
                    _ => None,
                },
            }),
            _ => None,
        };
        self.previous = keyplan::previous_key(store, mode, row, self.minting.rotation_grace, now);
    }

    /// Every run says that the previous key is still live, and why; in env
    /// mode, where nothing will ever delete it, as a warning.
    pub(crate) fn say_previous(&self, mode: Mode) {
        if let PreviousPlan::Wait { hash, waiting_for } = &self.previous {
            let text = format!(
                "the previous OpenRouter key {hash} is still live; waiting for {waiting_for}"
            );
            if mode == Mode::Env {
                tracing::warn!("{text}");
            } else {
                tracing::info!("{text}");
            }
        }
    }

    /// Remember the row write while a previous key waits (when none does,
    /// `keyapply::note_row_write` returns at once).
    pub(crate) fn note_row_write(&mut self, now: i64) -> Result<(), Error> {
        if let Some(store) = &mut self.outcome.store {
            keyapply::note_row_write(&self.minting, store, now)?;
        }
        Ok(())
    }

    pub(crate) fn delete_previous(&mut self) -> Result<(), Error> {
        if !matches!(self.previous, PreviousPlan::Delete { .. }) {
            return Ok(());
        }
        if let Some(store) = &mut self.outcome.store {
            self.previous_deleted = keyapply::delete_previous(&self.api, &self.minting, store)?;
        }
        Ok(())
    }
}
