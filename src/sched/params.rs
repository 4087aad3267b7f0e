//! A service's scheduler settings beyond its real servers, and which of
//! them are valid: the configuration file and the control socket check
//! against these before a scheduler is built.

use super::flags::SchedFlags;

/// A service's scheduler settings, beyond its real servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// ipvsadm `-b`.
    pub flags: SchedFlags,
    /// Maglev lookup table size (a prime).
    pub mh_table_size: u32,
    /// Maglev seed: `Some` builds the table in canonical order (real
    /// servers sorted by address, then port) under hash keys derived from
    /// the seed, so directors with the same seed and the same servers
    /// agree whatever order the servers were added in. `None`: list order
    /// and the kernel's fixed keys (IPVS-exact tables).
    pub mh_seed: Option<u64>,
}

impl Params {
    /// The Maglev paper's table size. (IPVS fixes its size when the kernel
    /// is built: 4093 with the default `CONFIG_IP_VS_MH_TAB_INDEX` of 12.)
    pub const DEFAULT_MH_TABLE_SIZE: u32 = 65537;
    /// Smallest `mh_table_size`.
    pub const MIN_MH_TABLE_SIZE: u32 = 3;
    /// Largest `mh_table_size`: the largest prime below 2^20 (4 MiB of
    /// table per service).
    pub const MAX_MH_TABLE_SIZE: u32 = 1_048_573;

    /// Whether `n` is a valid Maglev table size: a prime in
    /// [`Self::MIN_MH_TABLE_SIZE`]`..=`[`Self::MAX_MH_TABLE_SIZE`].
    pub const fn mh_table_size_ok(n: u32) -> bool {
        Self::MIN_MH_TABLE_SIZE <= n && n <= Self::MAX_MH_TABLE_SIZE && is_prime(n)
    }
}

impl Default for Params {
    fn default() -> Self {
        Params {
            flags: SchedFlags::default(),
            mh_table_size: Self::DEFAULT_MH_TABLE_SIZE,
            mh_seed: None,
        }
    }
}

/// Whether `n` is prime (trial division: table sizes are at most ~2^20).
pub const fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}
