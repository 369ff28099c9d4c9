//! One session with the server, driven from this synchronous program by a
//! current-thread tokio runtime the session owns. Every step (connecting,
//! each statement, the wait for the advisory lock) is one future, bounded
//! by the run's deadline (LOCK_TIMEOUT) and raced against SIGTERM/SIGINT:
//! when either ends it first, the running statement is cancelled (a cancel
//! request on a connection of its own), and the session is closed, which
//! makes the server roll back what was not committed and free the lock.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{CancelToken, Client, Row, SimpleQueryMessage};

use super::error::PgError;
use super::tls::{self, MakeTls};
use crate::config::{PgHost, PgTarget, SslMode};
use crate::lock::Backoff;
use crate::secret::Secret;
use crate::signals::{self, Interrupted};

/// The session-level advisory lock every run takes on the database: the
/// ASCII bytes of `mai-prov` as a bigint. Documented in docs/postgresql.md; a
/// session that dies (a killed pod included) frees it.
pub const ADVISORY_LOCK_KEY: i64 = 0x6d61_692d_7072_6f76;

/// How often a stop request is looked for while the server works.
const SIGNAL_POLL: Duration = Duration::from_millis(10);
/// How long the cancel request may take before the session is closed anyway.
const CANCEL_BOUND: Duration = Duration::from_millis(300);

pub struct Session {
    driver: Driver,
    client: Client,
    /// The URL without its password, for messages.
    pub(super) url: String,
}

/// What runs the steps: apart from the client, so that a step can borrow
/// the client while the driver runs it.
struct Driver {
    runtime: Runtime,
    cancel: CancelToken,
    tls: MakeTls,
    deadline: Instant,
    /// Set once a step was cut short: the session is being abandoned.
    broken: bool,
}

/// Why a bounded step did not finish.
enum Stop {
    Signal(i32),
    Deadline,
}

impl Session {
    /// Connect, bounded by `deadline`. The server is told the same bound
    /// (`statement_timeout`, `lock_timeout`), so that a statement of a run
    /// killed outright does not outlive it for long.
    pub fn connect(target: &PgTarget, url: &str, deadline: Instant) -> Result<Self, PgError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| PgError::Failed {
                url: url.to_owned(),
                doing: "starting the I/O runtime",
                detail: e.to_string(),
            })?;
        let tls_config = tls::client_config(target.ssl_mode, target.ssl_root_cert.as_deref())
            .map_err(|e| PgError::Roots {
                url: url.to_owned(),
                detail: e.problem,
            })?;
        let tls = MakeTls::new(tls_config);
        let config = client_config(target, deadline);
        let connecting = config.connect(tls.clone());
        let outcome = runtime.block_on(race(deadline, connecting));
        let (client, connection) = match outcome {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => return Err(PgError::connecting(url, &target.dbname, &e)),
            Err(Stop::Signal(signal)) => return Err(Interrupted { signal }.into()),
            Err(Stop::Deadline) => {
                return Err(PgError::Timeout {
                    url: url.to_owned(),
                    doing: "connecting",
                    detail: "the server did not answer".to_owned(),
                });
            }
        };
        // The connection future moves the bytes; it runs whenever the
        // runtime does, that is, during every step.
        runtime.spawn(async move {
            let _ = connection.await;
        });
        let cancel = client.cancel_token();
        tracing::debug!("connected to {url}");
        Ok(Self {
            driver: Driver {
                runtime,
                cancel,
                tls,
                deadline,
                broken: false,
            },
            client,
            url: url.to_owned(),
        })
    }

    /// Wait for the advisory lock, polling `pg_try_advisory_lock` with
    /// jittered backoff (so that replicas starting together do not retry in
    /// lockstep), until the deadline.
    pub fn lock(&mut self) -> Result<(), PgError> {
        let started = Instant::now();
        let left = self.driver.deadline.saturating_duration_since(started);
        let url = self.url.clone();
        let client = &self.client;
        let waiting = async move {
            let mut backoff = Backoff::new();
            loop {
                let row = client
                    .query_typed_one(
                        "SELECT pg_try_advisory_lock($1)",
                        &[(&ADVISORY_LOCK_KEY, Type::INT8)],
                    )
                    .await?;
                if row.try_get::<_, bool>(0)? {
                    return Ok(());
                }
                if backoff.is_first() {
                    tracing::info!(
                        "another run holds the lock (advisory lock {ADVISORY_LOCK_KEY} on {url}); waiting up to {:.1} s",
                        left.as_secs_f64()
                    );
                }
                tokio::time::sleep(backoff.next_pause()).await;
            }
        };
        let result = self.driver.bounded(waiting);
        // The deadline is the lock wait's own timeout; any other end is
        // settled as a statement's.
        if matches!(result, Err(Stop::Deadline)) {
            return Err(PgError::LockTimeout {
                url: self.url.clone(),
                key: ADVISORY_LOCK_KEY,
                waited: started.elapsed().as_secs_f64(),
            });
        }
        self.settle("taking the advisory lock", None, result)?;
        tracing::debug!(
            "took the advisory lock after {} ms",
            started.elapsed().as_millis()
        );
        Ok(())
    }

    /// Rows of a statement with typed parameters (one round trip: no
    /// separate prepare).
    pub(super) fn query(
        &mut self,
        doing: &'static str,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
        key: Option<&Secret>,
    ) -> Result<Vec<Row>, PgError> {
        let result = self.driver.bounded(self.client.query_typed(sql, params));
        self.settle(doing, key, result)
    }

    /// The rows of a statement without parameters, every value as text.
    pub(super) fn simple(
        &mut self,
        doing: &'static str,
        sql: &str,
    ) -> Result<Vec<Vec<Option<String>>>, PgError> {
        let result = self.driver.bounded(self.client.simple_query(sql));
        let messages = self.settle(doing, None, result)?;
        Ok(messages
            .into_iter()
            .filter_map(|message| match message {
                SimpleQueryMessage::Row(row) => Some(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_owned))
                        .collect(),
                ),
                _ => None,
            })
            .collect())
    }

    /// A statement with typed parameters; the number of rows it changed.
    pub(super) fn count(
        &mut self,
        doing: &'static str,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
        key: Option<&Secret>,
    ) -> Result<u64, PgError> {
        let result = self.driver.bounded(self.client.execute_typed(sql, params));
        self.settle(doing, key, result)
    }

    /// Statements without results (`BEGIN`, DDL, `COMMIT`).
    pub(super) fn execute(
        &mut self,
        doing: &'static str,
        sql: &str,
        key: Option<&Secret>,
    ) -> Result<(), PgError> {
        let result = self.driver.bounded(self.client.batch_execute(sql));
        self.settle(doing, key, result)
    }

    pub(crate) fn begin(&mut self) -> Result<(), PgError> {
        self.execute("starting the transaction", "BEGIN", None)
    }

    pub(crate) fn commit(&mut self) -> Result<(), PgError> {
        self.execute("committing", "COMMIT", None)
    }

    /// After a failed step: undo the transaction now, unless the session
    /// is being abandoned (closing it rolls back just the same).
    pub(crate) fn rollback(&mut self) {
        if !self.driver.broken {
            let _ = self.execute("rolling back", "ROLLBACK", None);
        }
    }

    fn settle<T>(
        &mut self,
        doing: &'static str,
        key: Option<&Secret>,
        result: Result<Result<T, tokio_postgres::Error>, Stop>,
    ) -> Result<T, PgError> {
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(PgError::statement(&self.url, doing, key, &e)),
            Err(Stop::Signal(signal)) => Err(Interrupted { signal }.into()),
            Err(Stop::Deadline) => Err(PgError::Timeout {
                url: self.url.clone(),
                doing,
                detail: "the server kept it waiting".to_owned(),
            }),
        }
    }
}

impl Driver {
    /// Run one step to its end, unless the deadline or a stop request comes
    /// first: then cancel what the server is doing and give the session up.
    fn bounded<T>(&mut self, step: impl Future<Output = T>) -> Result<T, Stop> {
        if self.broken {
            return Err(Stop::Deadline);
        }
        let outcome = self.runtime.block_on(race(self.deadline, step));
        if let Err(stop) = &outcome {
            self.broken = true;
            let why = match stop {
                Stop::Signal(signal) => signals::signal_name(*signal),
                Stop::Deadline => "LOCK_TIMEOUT",
            };
            tracing::debug!("{why}: cancelling the running statement");
            // A connection of its own: the session's socket is busy. Built
            // inside the runtime, whose timer the bound needs.
            let cancel = self.cancel.cancel_query(self.tls.clone());
            let _ = self
                .runtime
                .block_on(async { tokio::time::timeout(CANCEL_BOUND, cancel).await });
        }
        outcome
    }
}

/// `step`, unless the deadline passes or a termination signal arrives first.
async fn race<T>(deadline: Instant, step: impl Future<Output = T>) -> Result<T, Stop> {
    tokio::select! {
        biased;
        signal = stop_requested() => Err(Stop::Signal(signal)),
        done = tokio::time::timeout_at(deadline.into(), step) => done.map_err(|_| Stop::Deadline),
    }
}

async fn stop_requested() -> i32 {
    loop {
        if let Some(signal) = signals::received() {
            return signal;
        }
        tokio::time::sleep(SIGNAL_POLL).await;
    }
}

fn client_config(target: &PgTarget, deadline: Instant) -> tokio_postgres::Config {
    let mut config = tokio_postgres::Config::new();
    match &target.host {
        PgHost::Tcp(host) => config.host(host),
        PgHost::Socket(dir) => config.host_path(dir),
    };
    config
        .port(target.port)
        .user(&target.user)
        .dbname(&target.dbname)
        .application_name("mai-provision")
        .ssl_mode(match target.ssl_mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        });
    if let Some(password) = &target.password {
        config.password(password.expose());
    }
    // The server's own bound on each statement and lock wait: what is left
    // of LOCK_TIMEOUT (at least 1 ms; 0 would mean none).
    let left = deadline
        .saturating_duration_since(Instant::now())
        .as_millis()
        .max(1);
    config.options(format!(
        "-c statement_timeout={left} -c lock_timeout={left}"
    ));
    config
}
