//! Facts about this process that messages need.

/// The uid the kernel checks file permissions against.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions, cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}
