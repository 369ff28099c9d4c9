//! The `.env` file: read it the way python-dotenv does, change only the keys
//! this job manages, and write it back atomically.

mod merge;
mod parse;
mod readback;
mod render;
mod write;

// Public: what the tests and the e2e stand-in use to read and render
// `.env` files as the job does.
pub use merge::{ManagedKey, merge};
pub use parse::Document;
pub use readback::{as_python_dotenv_reads, universal_newlines};
pub use render::render_value;
pub use write::FileError;

pub(crate) use merge::{KeyChange, KeyStatus};
pub(crate) use render::RenderError;
pub(crate) use write::{
    PreparedFile, backup_path, check_replaceable, owner_of, read_existing, remove_leftovers,
    resolve_target,
};
