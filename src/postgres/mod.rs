//! The application's PostgreSQL database (`DATABASE_URL=postgresql://…`):
//! the same steps as `db` does on SQLite (inspect the schema, repair it,
//! read the row, upsert it, read it back as the application does), on a
//! session that holds a session-level advisory lock, so that replicas on
//! other machines never run at once, and that dies with its holder.
//! Nothing here decides what to change; `plan` does, for both databases.

mod error;
mod row;
mod schema;
mod session;
mod tls;
mod upsert;
mod verify;

pub use error::PgError;
pub use row::read_snapshot;
pub use schema::{add_columns, inspect};
pub use session::Session;
pub use upsert::write_row;
pub use verify::verify;
