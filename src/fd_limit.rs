//! The process's open-file limit: servers and benchmarks hold one descriptor per socket, and
//! a login shell's default soft limit (often 1024) is far below what they need.

/// Raises the soft open-file limit to the hard limit; returns the limit now in force
/// (`None` where it cannot be read).
pub fn raise_open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
            if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                return Some(hard);
            }
            return Some(soft);
        }
    }
    None
}
