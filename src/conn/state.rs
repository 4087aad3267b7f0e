//! Connection states and timeouts, as Linux IPVS keeps them
//! (`net/netfilter/ipvs/ip_vs_proto_tcp.c`, `ip_vs_proto_udp.c`).
//!
//! The director sees both directions of a NAT connection but only the client's
//! half of a DR or TUN one, so IPVS drives TCP through one of three tables:
//! INPUT (client → server), OUTPUT (server → client, NAT only) and INPUT-ONLY
//! (DR/TUN). The event is the first of RST, SYN, FIN, ACK set in the segment;
//! a segment with none of them moves the connection to CLOSE, as in IPVS.

/// TCP connection states, numbered as IPVS numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TcpState {
    None = 0,
    Established = 1,
    SynSent = 2,
    SynRecv = 3,
    FinWait = 4,
    TimeWait = 5,
    Close = 6,
    CloseWait = 7,
    LastAck = 8,
    Listen = 9,
    SynAck = 10,
}

/// Number of TCP states.
pub const TCP_STATES: usize = 11;

impl TcpState {
    const ALL: [TcpState; TCP_STATES] = [
        TcpState::None,
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::SynAck,
    ];

    /// The state stored in a connection entry's state byte.
    #[inline]
    pub fn from_u8(v: u8) -> TcpState {
        Self::ALL
            .get(usize::from(v))
            .copied()
            .unwrap_or(TcpState::Close)
    }

    /// The name `ipvsadm -L -c` prints.
    pub fn name(self) -> &'static str {
        match self {
            TcpState::None => "NONE",
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::FinWait => "FIN_WAIT",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::Listen => "LISTEN",
            TcpState::SynAck => "SYNACK",
        }
    }
}

/// Which half of the connection a packet belongs to, and whether the
/// director sees the other half at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client → real server, on a connection whose replies come back (NAT).
    Input = 0,
    /// Real server → client (NAT replies).
    Output = 1,
    /// Client → real server on a connection whose replies bypass us (DR, TUN).
    InputOnly = 2,
}

use TcpState::{
    Close as CL, CloseWait as CW, Established as ES, FinWait as FW, LastAck as LA, Listen as LI,
    None as NO, SynAck as SA, SynRecv as SR, SynSent as SS, TimeWait as TW,
};

/// `TRANSITIONS[direction][event][state]`, events in the order syn, fin,
/// ack, rst. The same table as IPVS's `tcp_states` (not the `secure_tcp`
/// variant).
const TRANSITIONS: [[[TcpState; TCP_STATES]; 4]; 3] = [
    // INPUT        NO  ES  SS  SR  FW  TW  CL  CW  LA  LI  SA
    [
        /* syn */ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        /* fin */ [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
        /* ack */ [CL, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        /* rst */ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
    ],
    // OUTPUT
    [
        /* syn */ [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
        /* fin */ [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
        /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
        /* rst */ [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
    ],
    // INPUT-ONLY
    [
        /* syn */ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        /* fin */ [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
        /* ack */ [CL, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        /* rst */ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ],
];

/// The state a TCP segment with `flags` (the TCP flags byte) moves a
/// connection in `state` to (IPVS `set_tcp_state`).
#[inline]
pub fn tcp_transition(state: TcpState, dir: Direction, flags: u8) -> TcpState {
    use crate::wire::tcp::{ACK, FIN, RST, SYN};
    let event = if flags & RST != 0 {
        3
    } else if flags & SYN != 0 {
        0
    } else if flags & FIN != 0 {
        1
    } else if flags & ACK != 0 {
        2
    } else {
        return TcpState::Close;
    };
    TRANSITIONS[dir as usize][event][state as usize]
}

/// Connection timeouts in seconds, per state (IPVS `tcp_timeouts`,
/// `udp_timeouts`). `ipvsadm --set tcp tcpfin udp` changes the ESTABLISHED,
/// FIN_WAIT and UDP entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp: [u32; TCP_STATES],
    pub udp: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        let mut tcp = [0; TCP_STATES];
        tcp[NO as usize] = 2;
        tcp[ES as usize] = 15 * 60;
        tcp[SS as usize] = 2 * 60;
        tcp[SR as usize] = 60;
        tcp[FW as usize] = 2 * 60;
        tcp[TW as usize] = 2 * 60;
        tcp[CL as usize] = 10;
        tcp[CW as usize] = 60;
        tcp[LA as usize] = 30;
        tcp[LI as usize] = 2 * 60;
        tcp[SA as usize] = 120;
        Timeouts { tcp, udp: 5 * 60 }
    }
}

impl Timeouts {
    /// The three timeouts `ipvsadm --set` controls; 0 leaves one unchanged,
    /// as ipvsadm does.
    pub fn set(&mut self, tcp: u32, tcpfin: u32, udp: u32) {
        if tcp != 0 {
            self.tcp[ES as usize] = tcp;
        }
        if tcpfin != 0 {
            self.tcp[FW as usize] = tcpfin;
        }
        if udp != 0 {
            self.udp = udp;
        }
    }

    #[inline]
    pub fn tcp(&self, state: TcpState) -> u32 {
        self.tcp[state as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tcp::{ACK, FIN, PSH, RST, SYN};

    fn walk(dirs_flags: &[(Direction, u8)]) -> Vec<TcpState> {
        let mut s = TcpState::None;
        dirs_flags
            .iter()
            .map(|&(d, f)| {
                s = tcp_transition(s, d, f);
                s
            })
            .collect()
    }

    #[test]
    fn nat_handshake_data_and_close() {
        use Direction::{Input as I, Output as O};
        let states = walk(&[
            (I, SYN),
            (O, SYN | ACK),
            (I, ACK),
            (I, PSH | ACK),
            (O, FIN | ACK),
            (I, ACK),
            (I, FIN | ACK),
            (O, ACK),
        ]);
        assert_eq!(
            states,
            vec![SR, SR, ES, ES, FW, FW, TW, TW],
            "server closes first: FIN_WAIT then TIME_WAIT, as IPVS"
        );
    }

    #[test]
    fn dr_sees_only_the_client() {
        use Direction::InputOnly as IO;
        let states = walk(&[
            (IO, SYN),
            (IO, ACK),
            (IO, PSH | ACK),
            (IO, FIN | ACK),
            (IO, ACK),
        ]);
        assert_eq!(states, vec![SR, ES, ES, FW, FW]);
        assert_eq!(tcp_transition(ES, IO, RST | ACK), CL);
        assert_eq!(tcp_transition(ES, IO, 0), CL, "no flags at all: CLOSE");
    }

    #[test]
    fn rst_wins_over_syn() {
        assert_eq!(tcp_transition(NO, Direction::Input, SYN | RST), CL);
        assert_eq!(tcp_transition(SR, Direction::Input, SYN | RST), SR);
    }

    #[test]
    fn timeouts_default_and_set() {
        let mut t = Timeouts::default();
        assert_eq!(
            (t.tcp(ES), t.tcp(SR), t.tcp(FW), t.tcp(TW), t.tcp(CL)),
            (900, 60, 120, 120, 10)
        );
        assert_eq!((t.tcp(CW), t.tcp(LA), t.udp), (60, 30, 300));
        t.set(3600, 0, 10);
        assert_eq!((t.tcp(ES), t.tcp(FW), t.udp), (3600, 120, 10));
    }

    #[test]
    fn state_byte_round_trip() {
        for s in TcpState::ALL {
            assert_eq!(TcpState::from_u8(s as u8), s);
        }
        assert_eq!(TcpState::from_u8(200), TcpState::Close);
        assert_eq!(TcpState::FinWait.name(), "FIN_WAIT");
    }
}
