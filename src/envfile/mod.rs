//! The `.env` file: read it the way python-dotenv does, change only the keys
//! this job manages, and write it back atomically.

mod merge;
mod parse;
mod readback;
mod render;
mod write;

pub use merge::{KeyChange, KeyStatus, MARKER, ManagedKey, Merged, merge};
pub use parse::{Binding, Document};
pub use readback::{LineProblem, Misreading, as_python_dotenv_reads, universal_newlines};
pub use render::{RenderError, render_value};
pub use write::{
    OutputError, PreparedFile, backup_path, check_replaceable, owner_of, read_existing,
    remove_leftovers, resolve_target,
};
