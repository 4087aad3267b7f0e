//! Virtual services and real servers: the mutable table the control side
//! edits ([`ServiceTable`]) and the immutable [`Snapshot`] the workers read.
//!
//! Workers never see a half-applied change: every edit builds a new
//! snapshot (schedulers included — that is where their tables are
//! computed), which workers pick up between batches. What must outlive a
//! snapshot — a real server's counters — is shared by `Arc`; the real
//! server itself, as workers see it, is [`crate::dest`]'s.

mod reload;
mod snapshot;
mod steer;
mod table;

pub use reload::Override;
pub use snapshot::{Port, Service, Snapshot, ip_proto};
pub use steer::{EXPECT_TIMEOUT, HISTORY_CAP, KEEP_MARGIN, Owner, SteerRule, Superseded};
pub use table::{
    CounterSets, DestInfo, Health, HealthKey, QuorumChange, ServiceError, ServiceInfo,
    ServiceTable, SteerLimits, SteerRules,
};

// The real server's types, for this module's users outside the crate.
pub use crate::dest::{Dest, DestCounters, DestRef, Stats, StatsLine, Totals};
