//! The IPVS sync message, protocol version 1, byte for byte as Linux lays
//! it out (`struct ip_vs_sync_mesg`, `struct ip_vs_sync_v4`/`_v6`,
//! `struct ip_vs_sync_conn_options` in `ip_vs_sync.c`; flag values from
//! `include/uapi/linux/ip_vs.h`). All fields are big-endian.
//!
//! A message is an 8-byte header — reserved 0, syncid, size (of the whole
//! datagram), connection count, version 1, spare 0 — followed by that many
//! entries. An entry is a fixed part (36 bytes for IPv4, 72 for IPv6) whose
//! `ver_size` field carries a version nibble (0) and the entry's length,
//! then options (type byte, length byte, data) up to that length. The next
//! entry starts at the next multiple of 4 from the message start; the last
//! one is not padded.
//!
//! Invariants: [`Message::new_checked`] and [`Entries`] never read past the
//! datagram and never panic; every way an input can be wrong is one
//! [`SyncError`]. As the kernel's receiver does, a structural error stops
//! the rest of the message ([`SyncError::fatal`]: the entries after it
//! cannot be located with confidence), and an entry we cannot use (an
//! unknown mandatory option, a protocol or state out of range, a
//! persistence-engine entry) is skipped while the rest is read. Neither the
//! view nor the [`Builder`] allocates.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::conn::seq::SeqAdjust;

/// The kernel's default multicast group (`IP_VS_SYNC_GROUP`).
pub const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
/// The kernel's default port (`IP_VS_SYNC_PORT`); thread `n` sends to
/// `PORT + n`.
pub const PORT: u16 = 8848;
/// `SYNC_PROTO_VER`.
pub const VERSION: u8 = 1;
/// `sizeof(struct ip_vs_sync_mesg)`.
pub const HEADER_LEN: usize = 8;
/// `sizeof(struct ip_vs_sync_v4)`.
pub const V4_LEN: usize = 36;
/// `sizeof(struct ip_vs_sync_v6)`.
pub const V6_LEN: usize = 72;
/// `sizeof(struct ip_vs_sync_conn_options)`: two `struct ip_vs_seq`.
pub const SEQ_DATA_LEN: usize = 24;
/// The option header (type, length).
const OPT_HDR: usize = 2;
/// The length field of an entry is 12 bits (`SVER_MASK`).
const SIZE_MASK: u16 = 0x0fff;
const VER_SHIFT: u16 = 12;
/// `IP_VS_PEDATA_MAXLEN`, `IP_VS_PENAME_MAXLEN`.
const PE_DATA_MAX: usize = 255;
const PE_NAME_MAX: usize = 16;

/// `type` bit: the entry is IPv6 (`STYPE_F_INET6`).
pub const TYPE_F_INET6: u8 = 1;

/// Connection flags (`IP_VS_CONN_F_*`), as carried in an entry.
pub mod flags {
    pub const FWD_MASK: u32 = 0x0007;
    pub const MASQ: u32 = 0x0000;
    pub const LOCALNODE: u32 = 0x0001;
    pub const TUNNEL: u32 = 0x0002;
    pub const DROUTE: u32 = 0x0003;
    pub const BYPASS: u32 = 0x0004;
    pub const SYNC: u32 = 0x0020;
    pub const HASHED: u32 = 0x0040;
    pub const NOOUTPUT: u32 = 0x0080;
    pub const INACTIVE: u32 = 0x0100;
    pub const OUT_SEQ: u32 = 0x0200;
    pub const IN_SEQ: u32 = 0x0400;
    pub const SEQ_MASK: u32 = 0x0600;
    pub const NO_CPORT: u32 = 0x0800;
    pub const TEMPLATE: u32 = 0x1000;
    pub const ONE_PACKET: u32 = 0x2000;
    /// The flags a backup takes from a received entry
    /// (`IP_VS_CONN_F_BACKUP_MASK`); the others are the sender's business.
    pub const BACKUP_MASK: u32 = FWD_MASK | NOOUTPUT | INACTIVE | SEQ_MASK | NO_CPORT | TEMPLATE;
    /// The flags an update may change on an existing connection
    /// (`IP_VS_CONN_F_BACKUP_UPD_MASK`).
    pub const BACKUP_UPD_MASK: u32 = INACTIVE | SEQ_MASK;
}

/// Option types (`IPVS_OPT_*`).
pub mod opt {
    pub const SEQ_DATA: u8 = 1;
    pub const PE_DATA: u8 = 2;
    pub const PE_NAME: u8 = 3;
    /// Set on an option a receiver may ignore if it does not know it
    /// (`IPVS_OPT_F_PARAM`); without it an unknown option is mandatory.
    pub const F_PARAM: u8 = 1 << 6;
}

/// IP protocol numbers an entry may carry, and how many states IPVS
/// defines for each (`IP_VS_TCP_S_LAST`, `IP_VS_UDP_S_LAST`,
/// `IP_VS_SCTP_S_LAST`).
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_SCTP: u8 = 132;
const TCP_STATES: u16 = 11;
const UDP_STATES: u16 = 1;
const SCTP_STATES: u16 = 13;

/// Header field offsets.
mod hdr {
    use std::ops::Range;
    pub const RESERVED: usize = 0;
    pub const SYNCID: usize = 1;
    pub const SIZE: Range<usize> = 2..4;
    pub const NR_CONNS: usize = 4;
    pub const VERSION: usize = 5;
    pub const SPARE: Range<usize> = 6..8;
}

/// Entry field offsets (common to IPv4 and IPv6 up to the addresses).
mod field {
    use std::ops::Range;
    pub const TYPE: usize = 0;
    pub const PROTOCOL: usize = 1;
    pub const VER_SIZE: Range<usize> = 2..4;
    pub const FLAGS: Range<usize> = 4..8;
    pub const STATE: Range<usize> = 8..10;
    pub const CPORT: Range<usize> = 10..12;
    pub const VPORT: Range<usize> = 12..14;
    pub const DPORT: Range<usize> = 14..16;
    pub const FWMARK: Range<usize> = 16..20;
    pub const TIMEOUT: Range<usize> = 20..24;
    /// caddr, vaddr, daddr follow, 4 or 16 bytes each.
    pub const ADDRS: usize = 24;
}

/// Why a sync message, or one entry of it, was ignored. Each is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncError {
    /// Shorter than the header.
    TooShort,
    /// The header's size is not the datagram's length.
    SizeMismatch,
    /// Not a version 1 header (a version 0 message, or reserved/spare
    /// not zero): we speak version 1 only.
    Version,
    /// The datagram ends before the count of entries does.
    Truncated,
    /// An entry's version nibble is not 0.
    EntryVersion,
    /// An entry's type is neither IPv4 (0) nor IPv6.
    EntryType,
    /// An entry's length is shorter than its fixed part.
    EntrySize,
    /// An option's header or data runs past its entry.
    OptionTruncated,
    /// A zero-length option, a SEQ_DATA option not 24 bytes long, or a
    /// persistence-engine string over its limit.
    OptionLength,
    /// The same option twice in one entry.
    OptionTwice,
    /// A mandatory option we do not know: the entry is skipped.
    UnknownOption,
    /// Persistence-engine data (`ipvsadm --pe sip`): we have no
    /// persistence engines, so the entry is skipped.
    PersistenceEngine,
    /// A protocol other than TCP, UDP, SCTP: the entry is skipped.
    Protocol,
    /// A state out of its protocol's range: the entry is skipped.
    State,
}

impl SyncError {
    pub const COUNT: usize = 14;
    pub const ALL: [SyncError; Self::COUNT] = [
        SyncError::TooShort,
        SyncError::SizeMismatch,
        SyncError::Version,
        SyncError::Truncated,
        SyncError::EntryVersion,
        SyncError::EntryType,
        SyncError::EntrySize,
        SyncError::OptionTruncated,
        SyncError::OptionLength,
        SyncError::OptionTwice,
        SyncError::UnknownOption,
        SyncError::PersistenceEngine,
        SyncError::Protocol,
        SyncError::State,
    ];

    /// Whether the rest of the message is ignored too (the kernel's
    /// "Dropping buffer"), rather than only this entry.
    pub fn fatal(self) -> bool {
        !matches!(
            self,
            SyncError::UnknownOption
                | SyncError::PersistenceEngine
                | SyncError::Protocol
                | SyncError::State
        )
    }

    /// The counter's name.
    pub fn name(self) -> &'static str {
        match self {
            SyncError::TooShort => "too_short",
            SyncError::SizeMismatch => "size_mismatch",
            SyncError::Version => "version",
            SyncError::Truncated => "truncated",
            SyncError::EntryVersion => "entry_version",
            SyncError::EntryType => "entry_type",
            SyncError::EntrySize => "entry_size",
            SyncError::OptionTruncated => "option_truncated",
            SyncError::OptionLength => "option_length",
            SyncError::OptionTwice => "option_twice",
            SyncError::UnknownOption => "unknown_option",
            SyncError::PersistenceEngine => "persistence_engine",
            SyncError::Protocol => "protocol",
            SyncError::State => "state",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A counter per [`SyncError`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncErrors([u64; SyncError::COUNT]);

impl SyncErrors {
    pub fn count(&mut self, e: SyncError) {
        self.0[e.index()] += 1;
    }

    pub fn get(&self, e: SyncError) -> u64 {
        self.0[e.index()]
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

/// Both directions' sequence shifts of a connection an application helper
/// resized (the SEQ_DATA option): `in_seq` for client → server segments,
/// `out_seq` for server → client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqData {
    pub in_seq: SeqAdjust,
    pub out_seq: SeqAdjust,
}

/// One connection (or persistence template, [`flags::TEMPLATE`]) as a sync
/// entry carries it. The three addresses are of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub protocol: u8,
    /// `IP_VS_CONN_F_*`; the forwarding method in [`flags::FWD_MASK`].
    pub flags: u32,
    /// The IPVS state number for `protocol` (template: 0 or 1).
    pub state: u16,
    pub caddr: IpAddr,
    pub cport: u16,
    pub vaddr: IpAddr,
    pub vport: u16,
    pub daddr: IpAddr,
    pub dport: u16,
    pub fwmark: u32,
    /// Seconds the connection has left in its state on the sender (the
    /// kernel sends the state's full timeout).
    pub timeout: u32,
    /// The SEQ_DATA option; the encoder writes it exactly when present.
    pub seq: Option<SeqData>,
}

impl Entry {
    pub fn is_ipv6(&self) -> bool {
        self.caddr.is_ipv6()
    }

    pub fn is_template(&self) -> bool {
        self.flags & flags::TEMPLATE != 0
    }

    /// The entry's encoded length, without padding.
    pub fn wire_len(&self) -> usize {
        let fixed = if self.is_ipv6() { V6_LEN } else { V4_LEN };
        fixed + self.seq.map_or(0, |_| OPT_HDR + SEQ_DATA_LEN)
    }
}

fn be16(b: &[u8], r: std::ops::Range<usize>) -> u16 {
    u16::from_be_bytes([b[r.start], b[r.start + 1]])
}

fn be32(b: &[u8], r: std::ops::Range<usize>) -> u32 {
    u32::from_be_bytes([b[r.start], b[r.start + 1], b[r.start + 2], b[r.start + 3]])
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// A received datagram whose header has been checked.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    buf: &'a [u8],
}

impl<'a> Message<'a> {
    /// Checks the header as the kernel does: at least a header, the size
    /// field equal to the datagram's length, and a version 1 header.
    pub fn new_checked(buf: &'a [u8]) -> Result<Self, SyncError> {
        if buf.len() < HEADER_LEN {
            return Err(SyncError::TooShort);
        }
        if usize::from(be16(buf, hdr::SIZE)) != buf.len() {
            return Err(SyncError::SizeMismatch);
        }
        if buf[hdr::VERSION] != VERSION || buf[hdr::RESERVED] != 0 || be16(buf, hdr::SPARE) != 0 {
            return Err(SyncError::Version);
        }
        Ok(Message { buf })
    }

    pub fn syncid(&self) -> u8 {
        self.buf[hdr::SYNCID]
    }

    pub fn nr_conns(&self) -> u8 {
        self.buf[hdr::NR_CONNS]
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nr_conns() == 0
    }

    /// The entries, in order. After an item that is a fatal error the
    /// iterator ends.
    pub fn entries(&self) -> Entries<'a> {
        Entries {
            buf: self.buf,
            off: HEADER_LEN,
            left: self.nr_conns(),
        }
    }
}

/// The entries of a [`Message`].
#[derive(Debug, Clone)]
pub struct Entries<'a> {
    buf: &'a [u8],
    off: usize,
    left: u8,
}

impl Iterator for Entries<'_> {
    type Item = Result<Entry, SyncError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let r = self.step();
        if matches!(r, Err(e) if e.fatal()) {
            self.left = 0;
        }
        Some(r)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(usize::from(self.left)))
    }
}

impl Entries<'_> {
    fn step(&mut self) -> Result<Entry, SyncError> {
        let rest = self.buf.get(self.off..).unwrap_or(&[]);
        // The kernel wants a whole IPv4 entry's worth before it reads the
        // size, whatever the entry's family.
        if rest.len() < V4_LEN {
            return Err(SyncError::Truncated);
        }
        let ver_size = be16(rest, field::VER_SIZE);
        let size = usize::from(ver_size & SIZE_MASK);
        if size > rest.len() {
            return Err(SyncError::Truncated);
        }
        if ver_size >> VER_SHIFT != 0 {
            return Err(SyncError::EntryVersion);
        }
        let ty = rest[field::TYPE];
        let v6 = if ty & TYPE_F_INET6 != 0 {
            true
        } else if ty == 0 {
            false
        } else {
            return Err(SyncError::EntryType);
        };
        self.off += align4(size);
        parse_entry(&rest[..size], v6)
    }
}

/// One entry, `e` exactly its `size` bytes.
fn parse_entry(e: &[u8], v6: bool) -> Result<Entry, SyncError> {
    let fixed = if v6 { V6_LEN } else { V4_LEN };
    if e.len() < fixed {
        return Err(SyncError::EntrySize);
    }
    let mut seq = None;
    let mut pe_data = false;
    let mut pe_name = false;
    let mut p = fixed;
    while p < e.len() {
        if p + OPT_HDR > e.len() {
            return Err(SyncError::OptionTruncated);
        }
        let ty = e[p];
        let len = usize::from(e[p + 1]);
        p += OPT_HDR;
        if len == 0 {
            return Err(SyncError::OptionLength);
        }
        if p + len > e.len() {
            return Err(SyncError::OptionTruncated);
        }
        let data = &e[p..p + len];
        match ty & !opt::F_PARAM {
            opt::SEQ_DATA => {
                if len != SEQ_DATA_LEN {
                    return Err(SyncError::OptionLength);
                }
                if seq.is_some() {
                    return Err(SyncError::OptionTwice);
                }
                seq = Some(SeqData {
                    in_seq: seq_at(data, 0),
                    out_seq: seq_at(data, 12),
                });
            }
            opt::PE_DATA | opt::PE_NAME => {
                let (seen, max) = if ty & !opt::F_PARAM == opt::PE_DATA {
                    (&mut pe_data, PE_DATA_MAX)
                } else {
                    (&mut pe_name, PE_NAME_MAX)
                };
                if len > max {
                    return Err(SyncError::OptionLength);
                }
                if *seen {
                    return Err(SyncError::OptionTwice);
                }
                *seen = true;
            }
            // As the kernel: the entry is dropped at once, the options
            // after it are not looked at.
            _ if ty & opt::F_PARAM == 0 => return Err(SyncError::UnknownOption),
            _ => {}
        }
        p += len;
    }
    let protocol = e[field::PROTOCOL];
    let fl = be32(e, field::FLAGS);
    let state = be16(e, field::STATE);
    if fl & flags::TEMPLATE == 0 {
        let states = match protocol {
            IPPROTO_TCP => TCP_STATES,
            IPPROTO_UDP => UDP_STATES,
            IPPROTO_SCTP => SCTP_STATES,
            _ => return Err(SyncError::Protocol),
        };
        if state >= states {
            return Err(SyncError::State);
        }
    }
    if pe_data || pe_name {
        return Err(SyncError::PersistenceEngine);
    }
    let a = field::ADDRS;
    let (caddr, vaddr, daddr) = if v6 {
        let at = |i: usize| {
            let mut o = [0u8; 16];
            o.copy_from_slice(&e[a + 16 * i..a + 16 * (i + 1)]);
            IpAddr::V6(Ipv6Addr::from(o))
        };
        (at(0), at(1), at(2))
    } else {
        let at = |i: usize| IpAddr::V4(Ipv4Addr::from(be32(e, a + 4 * i..a + 4 * (i + 1))));
        (at(0), at(1), at(2))
    };
    Ok(Entry {
        protocol,
        flags: fl,
        state,
        caddr,
        cport: be16(e, field::CPORT),
        vaddr,
        vport: be16(e, field::VPORT),
        daddr,
        dport: be16(e, field::DPORT),
        fwmark: be32(e, field::FWMARK),
        timeout: be32(e, field::TIMEOUT),
        seq,
    })
}

/// `struct ip_vs_seq` in network order at `off` of `data`.
fn seq_at(data: &[u8], off: usize) -> SeqAdjust {
    SeqAdjust {
        init_seq: be32(data, off..off + 4),
        delta: be32(data, off + 4..off + 8) as i32,
        prev_delta: be32(data, off + 8..off + 12) as i32,
    }
}

fn put_seq(out: &mut [u8], s: &SeqAdjust) {
    out[0..4].copy_from_slice(&s.init_seq.to_be_bytes());
    out[4..8].copy_from_slice(&s.delta.to_be_bytes());
    out[8..12].copy_from_slice(&s.prev_delta.to_be_bytes());
}

/// Why [`Builder::push`] did not add an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    /// The message has no room left for it (its limit, or 255 entries):
    /// send this one and start the next.
    Full,
    /// The entry's three addresses are not of one family.
    MixedFamily,
}

/// Fills a message into a caller's buffer, as the kernel's master fills a
/// sync buffer (`ip_vs_sync_conn`): entries 4-byte aligned, the header's
/// size and count kept current so that [`Builder::bytes`] is always a
/// valid message.
pub struct Builder<'a> {
    buf: &'a mut [u8],
    limit: usize,
    len: usize,
    count: u8,
}

impl<'a> Builder<'a> {
    /// A new empty message for `syncid`, at most `maxlen` bytes (and at
    /// most the buffer; the size field caps it at 65535). `None` when not
    /// even the header fits.
    pub fn new(buf: &'a mut [u8], syncid: u8, maxlen: usize) -> Option<Self> {
        let limit = maxlen.min(buf.len()).min(usize::from(u16::MAX));
        if limit < HEADER_LEN {
            return None;
        }
        let mut b = Builder {
            buf,
            limit,
            len: 0,
            count: 0,
        };
        b.buf[hdr::RESERVED] = 0;
        b.buf[hdr::SYNCID] = syncid;
        b.buf[hdr::VERSION] = VERSION;
        b.buf[hdr::SPARE].fill(0);
        b.clear();
        Some(b)
    }

    /// Empties the message (same syncid), to fill the next one.
    pub fn clear(&mut self) {
        self.len = HEADER_LEN;
        self.count = 0;
        self.sync_header();
    }

    fn sync_header(&mut self) {
        self.buf[hdr::SIZE].copy_from_slice(&(self.len as u16).to_be_bytes());
        self.buf[hdr::NR_CONNS] = self.count;
    }

    pub fn count(&self) -> u8 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The message so far.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Appends `e`. [`flags::HASHED`] is not sent (the kernel masks it:
    /// it is the sender's table's business).
    pub fn push(&mut self, e: &Entry) -> Result<(), EncodeError> {
        let v6 = e.is_ipv6();
        if e.vaddr.is_ipv6() != v6 || e.daddr.is_ipv6() != v6 {
            return Err(EncodeError::MixedFamily);
        }
        let start = align4(self.len);
        let n = e.wire_len();
        if self.count == u8::MAX || start + n > self.limit {
            return Err(EncodeError::Full);
        }
        self.buf[self.len..start].fill(0);
        let out = &mut self.buf[start..start + n];
        out[field::TYPE] = if v6 { TYPE_F_INET6 } else { 0 };
        out[field::PROTOCOL] = e.protocol;
        // Version nibble 0; n < 4096 always (at most 72 + 26).
        out[field::VER_SIZE].copy_from_slice(&(n as u16 & SIZE_MASK).to_be_bytes());
        out[field::FLAGS].copy_from_slice(&(e.flags & !flags::HASHED).to_be_bytes());
        out[field::STATE].copy_from_slice(&e.state.to_be_bytes());
        out[field::CPORT].copy_from_slice(&e.cport.to_be_bytes());
        out[field::VPORT].copy_from_slice(&e.vport.to_be_bytes());
        out[field::DPORT].copy_from_slice(&e.dport.to_be_bytes());
        out[field::FWMARK].copy_from_slice(&e.fwmark.to_be_bytes());
        out[field::TIMEOUT].copy_from_slice(&e.timeout.to_be_bytes());
        let mut p = field::ADDRS;
        for a in [e.caddr, e.vaddr, e.daddr] {
            match a {
                IpAddr::V4(a) => {
                    out[p..p + 4].copy_from_slice(&a.octets());
                    p += 4;
                }
                IpAddr::V6(a) => {
                    out[p..p + 16].copy_from_slice(&a.octets());
                    p += 16;
                }
            }
        }
        if let Some(s) = &e.seq {
            out[p] = opt::SEQ_DATA;
            out[p + 1] = SEQ_DATA_LEN as u8;
            put_seq(&mut out[p + 2..p + 14], &s.in_seq);
            put_seq(&mut out[p + 14..p + 26], &s.out_seq);
        }
        self.len = start + n;
        self.count += 1;
        self.sync_header();
        Ok(())
    }
}

#[cfg(test)]
mod tests;
