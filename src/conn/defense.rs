//! Flood defence: the table's guard against entries nobody answers.
//!
//! A spoofed SYN costs its sender one packet and the director one entry;
//! without a defence about 2 k packets a second keep a million-entry table
//! full (a spoofed SYN then a spoofed ACK reaches ESTABLISHED, 900 s; a
//! spoofed UDP datagram holds its entry 300 s). Three defences, after
//! Linux IPVS (`ip_vs_ctl.c` `update_defense_level`, `Documentation/
//! networking/ipvs-sysctl.rst`) and one it lacks:
//!
//! - **The unreplied share** (not in IPVS): a connection is *unreplied*
//!   until it is confirmed — TCP: it reached ESTABLISHED; UDP: a reply came
//!   back through the director (NAT) or the client sent a second datagram
//!   (DR, TUN, whose replies bypass us). Unreplied connections may hold at
//!   most `unreplied_share` of a worker's table. At the cap, a new one
//!   evicts the oldest unreplied one (`unreplied_evicted`; the table keeps
//!   them in a ring in the order they were opened), so that a real
//!   client's handshake in progress lasts as long as a flood takes to
//!   cycle through the whole share. When the ring's next [`EVICT_PROBES`]
//!   items are all stale, of [`EVICT_CHOICES`] unreplied ones found by
//!   random probes the one that expires first goes; if none is found the
//!   new connection is refused (`unreplied_full`). Confirmed connections are never evicted, so a flood
//!   cannot take their slots.
//! - **`drop_entry`** (IPVS `drop_entry`): random early drop. While on,
//!   each new connection probes [`DROP_PROBES`] random entries and drops
//!   the unreplied ones among them (`defense_dropped`), so a flood's
//!   entries are thinned in proportion to its rate. IPVS walks 1/32 of its
//!   hash table a second and also drops ESTABLISHED entries with few
//!   packets; this one never touches a confirmed entry.
//! - **`secure_tcp`** (IPVS `secure_tcp`, its `tcp_states_dos` idea): a
//!   stricter state table. Seen from both sides (NAT), the client's ACK
//!   establishes only after the real server's SYN+ACK went through
//!   (SYN_RECV → SYNACK → ESTABLISHED); seen from the client side only
//!   (DR, TUN), the handshake's bare ACK leaves the connection in SYNACK
//!   and only a segment carrying data establishes it. SYN_RECV and SYNACK
//!   then expire after `secure_tcp_timeout` seconds. A spoofer that sends
//!   SYN, ACK and data still reaches ESTABLISHED: that is the limit of a
//!   director that sees one side, in IPVS as here; the share above bounds
//!   what the remaining half-open entries can take.
//!
//! `drop_entry` and `secure_tcp` take IPVS's modes: 0 off, 1 on while a
//! worker's table, or its unreplied share, is filled to
//! `defense_threshold` or more (IPVS's `amemthresh`, expressed as a fill
//! fraction rather than free memory; the share counts too, as a flood
//! held to it never fills the table), 2 always on. IPVS's mode 3 (on, and turned off again
//! below the threshold) is not provided.

use crate::conn::state::{Direction, TcpState};

/// Probes per new connection while `drop_entry` is on: two, so that at
/// equilibrium unreplied entries hold at most half the table.
pub const DROP_PROBES: u32 = 2;

/// Unreplied entries compared when the share is full: the one that
/// expires first of these is evicted ([`crate::conn::ConnTable::pick_unreplied`]).
pub const EVICT_CHOICES: u32 = 8;

/// Probes for unreplied entries to evict when the share is full. With
/// the share full, at least `unreplied_share` of the entries qualify, so
/// 64 probes fail with probability (1 - share)^64 (5e-20 at 0.5; 0.03 at
/// a share of 0.05, where a refusal is counted as `unreplied_full`).
pub const EVICT_PROBES: u32 = 64;

/// When a defence is on (IPVS's 0, 1, 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Never.
    #[default]
    Off = 0,
    /// While the table is filled to the threshold or more.
    Auto = 1,
    /// Always.
    On = 2,
}

impl Mode {
    #[inline]
    pub fn active(self, above_threshold: bool) -> bool {
        match self {
            Mode::Off => false,
            Mode::Auto => above_threshold,
            Mode::On => true,
        }
    }
}

/// Fractions are kept in parts per million (so the configuration stays
/// `Eq`).
pub const PPM: u32 = 1_000_000;

/// A worker table's flood defences (`[connections]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defense {
    /// The share of the table unreplied connections may hold, ppm; [`PPM`]
    /// = no share of their own.
    pub unreplied_share: u32,
    /// The fill, ppm of the table, from which mode-1 defences are on.
    pub threshold: u32,
    pub drop_entry: Mode,
    pub secure_tcp: Mode,
    /// Seconds SYN_RECV and SYNACK last while `secure_tcp` is on.
    pub secure_tcp_timeout: u32,
}

impl Defense {
    pub const DEFAULT_UNREPLIED_SHARE: u32 = PPM / 2;
    pub const DEFAULT_THRESHOLD: u32 = PPM * 3 / 4;
    pub const DEFAULT_SECURE_TCP_TIMEOUT: u32 = 5;

    /// `ppm` of `capacity` entries, at least one.
    #[inline]
    pub fn entries(ppm: u32, capacity: u32) -> u32 {
        ((u64::from(capacity) * u64::from(ppm) / u64::from(PPM)) as u32).max(1)
    }

    /// Whether mode-1 defences are on for a table of `capacity` holding
    /// `len` entries, `unreplied` of them unreplied.
    #[inline]
    pub fn above_threshold(&self, len: u32, unreplied: u32, capacity: u32) -> bool {
        len >= Self::entries(self.threshold, capacity)
            || (self.unreplied_share < PPM
                && unreplied
                    >= Self::entries(
                        self.threshold,
                        Self::entries(self.unreplied_share, capacity),
                    ))
    }
}

impl Default for Defense {
    fn default() -> Self {
        Defense {
            unreplied_share: Self::DEFAULT_UNREPLIED_SHARE,
            threshold: Self::DEFAULT_THRESHOLD,
            drop_entry: Mode::Off,
            secure_tcp: Mode::Off,
            secure_tcp_timeout: Self::DEFAULT_SECURE_TCP_TIMEOUT,
        }
    }
}

/// The state `secure_tcp` moves a connection to, given the state the
/// normal table chose (`normal`) from `old` for a segment with `flags`
/// from `dir`; `data`: the segment carries payload.
#[inline]
pub fn secure_transition(
    old: TcpState,
    normal: TcpState,
    dir: Direction,
    flags: u8,
    data: bool,
) -> TcpState {
    use crate::wire::tcp::{ACK, FIN, RST, SYN};
    let bare_ack = flags & (RST | SYN | FIN) == 0 && flags & ACK != 0;
    match dir {
        // The server's SYN+ACK to a half-open connection: remembered.
        Direction::Output if old == TcpState::SynRecv && flags & (SYN | RST) == SYN => {
            TcpState::SynAck
        }
        // The client's ACK before the server answered: still half open.
        Direction::Input if old == TcpState::SynRecv && bare_ack => TcpState::SynRecv,
        // One side only: the handshake's ACK is not enough, data is.
        Direction::InputOnly
            if normal == TcpState::Established && old != TcpState::Established && !data =>
        {
            TcpState::SynAck
        }
        _ => normal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::state::tcp_transition;
    use crate::wire::tcp::{ACK, PSH, SYN};
    use Direction::{Input as I, InputOnly as IO, Output as O};
    use TcpState::{Established as ES, None as NO, SynAck as SA, SynRecv as SR};

    fn step(s: TcpState, dir: Direction, flags: u8, data: bool) -> TcpState {
        secure_transition(s, tcp_transition(s, dir, flags), dir, flags, data)
    }

    #[test]
    fn nat_needs_the_servers_syn_ack() {
        let s = step(NO, I, SYN, false);
        assert_eq!(s, SR);
        assert_eq!(step(s, I, ACK, false), SR, "spoofed ACK: still half open");
        let s = step(s, O, SYN | ACK, false);
        assert_eq!(s, SA);
        assert_eq!(step(s, I, ACK, false), ES);
    }

    #[test]
    fn one_side_needs_data() {
        let s = step(NO, IO, SYN, false);
        assert_eq!(s, SR);
        let s = step(s, IO, ACK, false);
        assert_eq!(s, SA, "bare handshake ACK: not established");
        assert_eq!(step(s, IO, ACK, false), SA);
        assert_eq!(step(s, IO, PSH | ACK, true), ES);
        assert_eq!(step(ES, IO, ACK, false), ES, "established stays");
    }

    #[test]
    fn modes() {
        assert!(!Mode::Off.active(true));
        assert!(Mode::Auto.active(true) && !Mode::Auto.active(false));
        assert!(Mode::On.active(false));
        assert_eq!(Defense::entries(PPM / 2, 64), 32);
        assert_eq!(Defense::entries(1, 8), 1);
    }
}
