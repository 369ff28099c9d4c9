//! The black-box tests: the built binary against real SQLite files and
//! real `.env` files, one module per suite, all in one test binary (as
//! ripgrep, fd and cargo do), so that the shared helpers in `common` are
//! compiled once and every helper is used by some suite.
//!
//! Run one suite with `cargo test --test integration hostile::`, one test
//! with its full name, e.g. `cargo test --test integration
//! concurrency::thirty_two_replicas_on_both_shapes_converge_on_one_row`.

mod common;

mod application;
mod concurrency;
mod config_rules;
mod crash;
mod database_states;
mod docs;
mod existing_env;
mod existing_env_fuzz;
mod file_modes;
mod fuzz;
mod hostile;
mod hostile_database;
mod leftovers;
mod lock_timeout;
mod minting;
mod minting_crash;
mod modes;
mod operator;
mod parser_vs_python;
mod postgres_server;
mod roundtrip;
mod secrets;
mod signals;
mod split;
mod streams;
mod termination;
mod wait;
