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

/// The type a column is cast to when read or written: one per kind, as the
/// plan compares them (PostgreSQL's assignment casts fit a written value to
/// the table's own type).
fn cast(column: &str) -> &'static str {
    match column {
        "markup_rate" | "monthly_limit" => "float8",
        "is_active" | "created_at" | "updated_at" => "int8",
        _ => "text",
    }
}
