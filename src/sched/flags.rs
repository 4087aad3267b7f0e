//! Scheduler flags: ipvsadm `-b`, as the kernel stores them.

/// Scheduler flags (ipvsadm `-b`), as IPVS numbers them: flag 1 is
/// `sh-fallback` / `mh-fallback`, flag 2 `sh-port` / `mh-port`, flag 3 has
/// no meaning yet.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct SchedFlags(pub u8);

impl SchedFlags {
    pub const FLAG1: u8 = 1;
    pub const FLAG2: u8 = 2;
    pub const FLAG3: u8 = 4;

    /// A fallback to another server when the hashed one is unavailable
    /// (`sh-fallback`, `mh-fallback`).
    pub fn fallback(self) -> bool {
        self.0 & Self::FLAG1 != 0
    }

    /// Hash the client's port too (`sh-port`, `mh-port`).
    pub fn port(self) -> bool {
        self.0 & Self::FLAG2 != 0
    }
}
