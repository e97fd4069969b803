//! The subcommands that are one file each: key generation, fingerprints, access tokens, shell completions
//! and man pages, and the process around `rdv serve` (runtime, logging, signals). The larger
//! ones, [`crate::peer`] and [`crate::bench`], have modules of their own.

pub mod completions;
pub mod config_file;
pub mod fingerprint;
pub mod keygen;
pub mod serve;
pub mod token;
