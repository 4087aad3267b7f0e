//! The XDP steering program (`bpf/xdpvs_steer.bpf.c`): which received
//! packets go to the AF_XDP sockets and which stay with the kernel.
//!
//! Only traffic the load balancer handles is redirected — packets to a
//! virtual service, replies of NAT real servers, fragments and ICMP errors
//! that concern either — so the director itself keeps working through the
//! kernel (ARP, ping, SSH, routing protocols, IPv6). A queue without a
//! socket passes its packets to the kernel instead of dropping them.
//! Packets from a NAT real server to one of the director's own addresses
//! ([`Steering::set_local_addrs`]) are the kernel's too: they answer
//! connections the director opened (health checks, an admin's curl).
//!
//! Each [`Steering`] is one loaded program with its own maps, attached to
//! one interface through a BPF link: the kernel detaches it when the link's
//! file descriptor closes, so a crashed daemon leaves no program behind that
//! would steer traffic into sockets that no longer exist. A program that an
//! older daemon attached through netlink (which outlives its process) is
//! recognised by name and replaced; anyone else's program is left alone and
//! the attach refused.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::RawFd;
use std::process::Command;

use aya::maps::{HashMap, MapData, PerCpuArray, XskMap};
use aya::programs::{Xdp, XdpFlags, xdp::XdpLinkId};
use aya::{Ebpf, EbpfLoader};

use super::XskError;
use crate::config::XdpMode;
use crate::service::{SteerLimits, SteerRules};

/// The compiled program, embedded (built by `build.rs`).
static PROGRAM: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdpvs_steer.bpf.o"));

/// The program's name as the kernel reports it: how a leftover of ours is
/// told from someone else's program.
pub const PROGRAM_NAME: &str = "xdpvs_steer";

/// Indices into the program's per-CPU `counters` array.
const CNT_REDIRECTED: u32 = 0;
const CNT_PASSED: u32 = 1;
const CNT_REDIRECT_FAILED: u32 = 2;

/// Where and how the program was attached.
#[derive(Debug, Clone)]
pub struct AttachInfo {
    pub ifname: String,
    pub ifindex: u32,
    /// Driver (native) mode; otherwise generic (SKB) mode.
    pub native: bool,
    /// A netlink-attached `xdpvs_steer` left by an earlier run was removed.
    pub replaced_stale: bool,
}

/// Counters summed over all CPUs.
#[derive(Debug, Clone, Copy, Default)]
pub struct SteerStats {
    pub redirected: u64,
    pub passed: u64,
    /// Packets selected for redirection whose queue had no socket (passed
    /// to the kernel instead; also counted in `passed`).
    pub redirect_failed: u64,
}

/// One loaded and attached steering program.
pub struct Steering {
    ebpf: Ebpf,
    link: Option<XdpLinkId>,
    ifname: String,
    /// Per map, the keys known to be in it after the last successful
    /// update: the next update writes only the difference, so one edit of
    /// a large table costs a few map operations, not a walk of every key.
    /// Forgotten after a failed update (the map is then read again).
    written: std::collections::HashMap<&'static str, HashSet<Vec<u8>>>,
    /// The rules the maps were last made to hold, all four updates having
    /// succeeded: an edit that leaves the keys as they are (a DR real
    /// server, a weight) costs one comparison, no walk of the keys.
    rules: Option<SteerRules>,
}

/// Map keys as the program lays them out: address and port in network
/// byte order, then protocol and a pad byte.
fn svc_key(proto: u8, addr: Ipv4Addr, port: u16) -> [u8; 8] {
    let a = addr.octets();
    let p = port.to_be_bytes();
    [a[0], a[1], a[2], a[3], p[0], p[1], proto, 0]
}

/// The IPv6 key: the same layout with a 16-byte address (20 bytes).
fn svc6_key(proto: u8, addr: Ipv6Addr, port: u16) -> [u8; 20] {
    let mut k = [0u8; 20];
    k[..16].copy_from_slice(&addr.octets());
    k[16..18].copy_from_slice(&port.to_be_bytes());
    k[18] = proto;
    k
}

impl Steering {
    /// The interface it is attached to.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Loads the program and attaches it to `ifname` in `mode` (`Auto`:
    /// native, else generic).
    pub fn attach(ifname: &str, mode: XdpMode) -> Result<(Steering, AttachInfo), XskError> {
        let bpf_err = |op: &'static str| {
            move |e: &dyn std::fmt::Display| XskError::Bpf {
                ifname: ifname.to_string(),
                op,
                reason: e.to_string(),
            }
        };
        let cname = std::ffi::CString::new(ifname).map_err(|_| XskError::NoSuchInterface {
            ifname: ifname.to_string(),
        })?;
        // SAFETY: a valid NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            return Err(XskError::NoSuchInterface {
                ifname: ifname.to_string(),
            });
        }
        let mut ebpf = EbpfLoader::new()
            .load(PROGRAM)
            .map_err(|e| bpf_err("load object")(&e))?;
        let prog: &mut Xdp = ebpf
            .program_mut(PROGRAM_NAME)
            .expect("the object defines xdpvs_steer")
            .try_into()
            .map_err(|e| bpf_err("program type")(&e))?;
        prog.load().map_err(|e| bpf_err("load program")(&e))?;

        let modes: &[(XdpFlags, bool)] = match mode {
            XdpMode::Native => &[(XdpFlags::DRV_MODE, true)],
            XdpMode::Generic => &[(XdpFlags::SKB_MODE, false)],
            XdpMode::Auto => &[(XdpFlags::DRV_MODE, true), (XdpFlags::SKB_MODE, false)],
        };
        let mut replaced_stale = false;
        let mut last_err = None;
        'modes: for &(flags, native) in modes {
            for _ in 0..2 {
                match prog.attach(ifname, flags) {
                    Ok(link) => {
                        let info = AttachInfo {
                            ifname: ifname.to_string(),
                            ifindex,
                            native,
                            replaced_stale,
                        };
                        let s = Steering {
                            ebpf,
                            link: Some(link),
                            ifname: ifname.to_string(),
                            written: std::collections::HashMap::new(),
                            rules: None,
                        };
                        return Ok((s, info));
                    }
                    // A program attached without a link makes the link
                    // attach fail (EBUSY/EEXIST): ours is replaced, a
                    // foreign one refused.
                    Err(e) => match attached_program(ifname)? {
                        Some((_, name)) if name == PROGRAM_NAME && !replaced_stale => {
                            detach_netlink(ifname)?;
                            replaced_stale = true;
                        }
                        Some((id, name)) if name != PROGRAM_NAME => {
                            return Err(XskError::ForeignProgram {
                                ifname: ifname.to_string(),
                                name,
                                id,
                            });
                        }
                        _ => {
                            last_err = Some(e);
                            continue 'modes;
                        }
                    },
                }
            }
        }
        let e = last_err.expect("at least one attach attempt failed");
        Err(bpf_err(if modes.len() == 2 {
            "attach (native and generic)"
        } else {
            "attach"
        })(&e))
    }

    /// Loads the program without attaching it anywhere: its maps can be
    /// filled and [`Steering::selects`] asked, as a test of the program
    /// itself (`ifname` only names it in errors).
    pub fn load_detached(ifname: &str) -> Result<Steering, XskError> {
        let bpf_err = |op: &'static str, e: &dyn std::fmt::Display| XskError::Bpf {
            ifname: ifname.to_string(),
            op,
            reason: e.to_string(),
        };
        let mut ebpf = EbpfLoader::new()
            .load(PROGRAM)
            .map_err(|e| bpf_err("load object", &e))?;
        let prog: &mut Xdp = ebpf
            .program_mut(PROGRAM_NAME)
            .expect("the object defines xdpvs_steer")
            .try_into()
            .map_err(|e| bpf_err("program type", &e))?;
        prog.load().map_err(|e| bpf_err("load program", &e))?;
        Ok(Steering {
            ebpf,
            link: None,
            ifname: ifname.to_string(),
            written: std::collections::HashMap::new(),
            rules: None,
        })
    }

    /// Runs the program once over `frame` (`BPF_PROG_TEST_RUN`, queue 0)
    /// and says whether it selected the frame for a socket: with no
    /// socket registered for queue 0 a selected frame falls back to the
    /// kernel, counted as `redirect_failed`, so the counters tell.
    pub fn selects(&self, frame: &[u8]) -> Result<bool, XskError> {
        use std::os::fd::{AsFd, AsRawFd};
        let err = |op: &'static str, e: &dyn std::fmt::Display| XskError::Bpf {
            ifname: self.ifname.clone(),
            op,
            reason: e.to_string(),
        };
        let prog: &Xdp = self
            .ebpf
            .program(PROGRAM_NAME)
            .expect("the object defines xdpvs_steer")
            .try_into()
            .map_err(|e| err("program type", &e))?;
        let fd = prog.fd().map_err(|e| err("program fd", &e))?;
        let before = self.stats()?;
        // The kernel's `union bpf_attr` for BPF_PROG_TEST_RUN, up to
        // `batch_size` (a shorter attr is accepted; the rest reads as 0).
        #[repr(C)]
        #[derive(Default)]
        struct TestRun {
            prog_fd: u32,
            retval: u32,
            data_size_in: u32,
            data_size_out: u32,
            data_in: u64,
            data_out: u64,
            repeat: u32,
            duration: u32,
            ctx_size_in: u32,
            ctx_size_out: u32,
            ctx_in: u64,
            ctx_out: u64,
            flags: u32,
            cpu: u32,
            batch_size: u32,
            pad: u32,
        }
        let mut attr = TestRun {
            prog_fd: fd.as_fd().as_raw_fd() as u32,
            data_size_in: u32::try_from(frame.len()).map_err(|e| err("test run", &e))?,
            data_in: frame.as_ptr() as u64,
            repeat: 1,
            ..TestRun::default()
        };
        const BPF_PROG_TEST_RUN: libc::c_long = 10;
        // SAFETY: `attr` is a valid, initialised bpf_attr prefix of the
        // size passed; `data_in` points at `frame.len()` readable bytes
        // that outlive the call; no output buffer is given.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_PROG_TEST_RUN,
                &mut attr as *mut TestRun,
                std::mem::size_of::<TestRun>(),
            )
        };
        if rc != 0 {
            return Err(err("test run", &std::io::Error::last_os_error()));
        }
        let after = self.stats()?;
        Ok(after.redirected + after.redirect_failed > before.redirected + before.redirect_failed)
    }

    /// Steers queue `queue`'s packets to socket `fd`.
    pub fn register_socket(&mut self, queue: u32, fd: RawFd) -> Result<(), XskError> {
        let ifname = self.ifname.clone();
        let map = self.ebpf.map_mut("xsks").expect("the object defines xsks");
        let mut xsks = XskMap::try_from(map).map_err(|e| XskError::Bpf {
            ifname: ifname.clone(),
            op: "xsks map",
            reason: e.to_string(),
        })?;
        xsks.set(queue, fd, 0).map_err(|e| XskError::Bpf {
            ifname,
            op: "insert socket into xsks",
            reason: format!("queue {queue}: {e}"),
        })
    }

    fn err(&self, op: &'static str, e: &dyn std::fmt::Display) -> XskError {
        XskError::Bpf {
            ifname: self.ifname.clone(),
            op,
            reason: e.to_string(),
        }
    }

    /// How many entries its steering maps hold (the most rules
    /// [`Steering::set_rules`] can be given), as the loaded program says.
    pub fn limits(&self) -> Result<SteerLimits, XskError> {
        let size = |name: &'static str| -> Result<u32, XskError> {
            let map = self.ebpf.map(name).expect("the object defines the map");
            let info = match map {
                aya::maps::Map::HashMap(m) => m.info(),
                _ => return Err(self.err("map type", &format!("{name} is not a hash map"))),
            };
            info.map(|i| i.max_entries())
                .map_err(|e| self.err("map info", &e))
        };
        Ok(SteerLimits {
            vips: size("vips")?,
            nat_reals: size("nat_reals")?,
            vip_addrs: size("vip_addrs")?,
            nat_real_addrs: size("nat_real_addrs")?,
            vips6: size("vips6")?,
            nat_reals6: size("nat_reals6")?,
            vip_addrs6: size("vip_addrs6")?,
            nat_real_addrs6: size("nat_real_addrs6")?,
        })
    }

    /// Makes the program's maps hold exactly `rules` (and the address sets
    /// derived from them): new entries inserted, stale ones deleted.
    pub fn set_rules(&mut self, rules: &SteerRules) -> Result<(), XskError> {
        if self.rules.as_ref() == Some(rules) {
            return Ok(());
        }
        // Known again only once every map holds its part.
        self.rules = None;
        let vips: HashSet<[u8; 8]> = rules
            .vips
            .iter()
            .map(|&(p, a, port)| svc_key(p, a, port))
            .collect();
        let reals: HashSet<[u8; 8]> = rules
            .nat_reals
            .iter()
            .map(|&(p, a, port)| svc_key(p, a, port))
            .collect();
        let vip_addrs: HashSet<[u8; 4]> = rules.vips.iter().map(|v| v.1.octets()).collect();
        let real_addrs: HashSet<[u8; 4]> = rules.nat_reals.iter().map(|r| r.1.octets()).collect();
        self.sync("vips", &vips)?;
        self.sync("nat_reals", &reals)?;
        self.sync("vip_addrs", &vip_addrs)?;
        self.sync("nat_real_addrs", &real_addrs)?;
        let key6 = |&(p, a, port): &(u8, Ipv6Addr, u16)| svc6_key(p, a, port);
        let vips6: HashSet<[u8; 20]> = rules.vips6.iter().map(key6).collect();
        let reals6: HashSet<[u8; 20]> = rules.nat_reals6.iter().map(key6).collect();
        let vip_addrs6: HashSet<[u8; 16]> = rules.vips6.iter().map(|v| v.1.octets()).collect();
        let real_addrs6: HashSet<[u8; 16]> =
            rules.nat_reals6.iter().map(|r| r.1.octets()).collect();
        self.sync("vips6", &vips6)?;
        self.sync("nat_reals6", &reals6)?;
        self.sync("vip_addrs6", &vip_addrs6)?;
        self.sync("nat_real_addrs6", &real_addrs6)?;
        self.rules = Some(rules.clone());
        Ok(())
    }

    /// Makes the program's `local_addrs` and `local_addrs6` maps hold
    /// exactly `addrs`: the director's own addresses, whose packets from
    /// NAT real servers the kernel keeps (module docs).
    pub fn set_local_addrs(&mut self, addrs: &[IpAddr]) -> Result<(), XskError> {
        let mut v4: HashSet<[u8; 4]> = HashSet::new();
        let mut v6: HashSet<[u8; 16]> = HashSet::new();
        for a in addrs {
            match a {
                IpAddr::V4(a) => v4.insert(a.octets()),
                IpAddr::V6(a) => v6.insert(a.octets()),
            };
        }
        self.sync("local_addrs", &v4)?;
        self.sync("local_addrs6", &v6)
    }

    fn sync<const N: usize>(
        &mut self,
        name: &'static str,
        want: &HashSet<[u8; N]>,
    ) -> Result<(), XskError> {
        let ifname = self.ifname.clone();
        let err = |e: &dyn std::fmt::Display| XskError::Bpf {
            ifname: ifname.clone(),
            op: "update map",
            reason: format!("{name}: {e}"),
        };
        let map = self.ebpf.map_mut(name).expect("the object defines the map");
        let mut m: HashMap<&mut MapData, [u8; N], u8> =
            HashMap::try_from(map).map_err(|e| err(&e))?;
        // Until it succeeds the map's content is not known.
        let known = self.written.remove(name);
        let have: Vec<[u8; N]> = match &known {
            Some(k) => k
                .iter()
                .filter_map(|v| <[u8; N]>::try_from(v.as_slice()).ok())
                .collect(),
            None => m.keys().collect::<Result<_, _>>().map_err(|e| err(&e))?,
        };
        for k in have.iter().filter(|k| !want.contains(*k)) {
            m.remove(k).map_err(|e| err(&e))?;
        }
        let had: HashSet<[u8; N]> = match known {
            Some(_) => have.into_iter().collect(),
            None => HashSet::new(),
        };
        for k in want.iter().filter(|k| !had.contains(*k)) {
            m.insert(*k, 1, 0).map_err(|e| err(&e))?;
        }
        self.written
            .insert(name, want.iter().map(|k| k.to_vec()).collect());
        Ok(())
    }

    pub fn stats(&self) -> Result<SteerStats, XskError> {
        let map = self
            .ebpf
            .map("counters")
            .expect("the object defines counters");
        let a: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(map).map_err(|e| self.err("counters map", &e))?;
        let sum = |i: u32| -> Result<u64, XskError> {
            let v = a.get(&i, 0).map_err(|e| self.err("read counters", &e))?;
            Ok(v.iter().sum())
        };
        Ok(SteerStats {
            redirected: sum(CNT_REDIRECTED)?,
            passed: sum(CNT_PASSED)?,
            redirect_failed: sum(CNT_REDIRECT_FAILED)?,
        })
    }
}

impl Drop for Steering {
    fn drop(&mut self) {
        if let Some(link) = self.link.take()
            && let Some(p) = self.ebpf.program_mut(PROGRAM_NAME)
            && let Ok(prog) = <&mut Xdp>::try_from(p)
        {
            // Closing the link detaches the program; dropping `ebpf` would
            // too, this only makes it explicit and immediate.
            let _ = prog.detach(link);
        }
    }
}

/// The XDP program attached to `ifname` without a link, as `ip -d link`
/// reports it: `(id, name)`.
fn attached_program(ifname: &str) -> Result<Option<(u32, String)>, XskError> {
    let out = Command::new("ip")
        .args(["-d", "link", "show", "dev", ifname])
        .output()
        .map_err(|e| XskError::Bpf {
            ifname: ifname.to_string(),
            op: "run `ip -d link show` (iproute2)",
            reason: e.to_string(),
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(parse_attached(&text))
}

/// Finds `prog/xdp… id N name NAME` in `ip -d link show` output.
fn parse_attached(text: &str) -> Option<(u32, String)> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let at = words.iter().position(|w| w.starts_with("prog/xdp"))?;
    let mut id = None;
    let mut name = None;
    for pair in words[at + 1..].windows(2).take(8) {
        match pair[0] {
            "id" => id = pair[1].parse().ok(),
            "name" => name = Some(pair[1].to_string()),
            _ => {}
        }
    }
    Some((id?, name.unwrap_or_default()))
}

/// Removes a netlink-attached program in either mode.
fn detach_netlink(ifname: &str) -> Result<(), XskError> {
    for mode in ["xdpgeneric", "xdpdrv"] {
        // Either may fail (nothing attached in that mode); the check
        // below says whether the program is gone.
        Command::new("ip")
            .args(["link", "set", "dev", ifname, mode, "off"])
            .status()
            .map_err(|e| XskError::Bpf {
                ifname: ifname.to_string(),
                op: "run `ip link set xdp off` (iproute2)",
                reason: e.to_string(),
            })?;
    }
    match attached_program(ifname)? {
        None => Ok(()),
        Some((id, name)) => Err(XskError::Bpf {
            ifname: ifname.to_string(),
            op: "remove stale program",
            reason: format!("{name} (id {id}) is still attached"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ip_link_output() {
        let text = "4: v0@if3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 xdpgeneric qdisc noqueue\n    link/ether 3a:1b:9c:11:22:33 brd ff:ff:ff:ff:ff:ff link-netns x\n    prog/xdp id 42 name xdpvs_steer tag 0123456789abcdef jited \n    veth numtxqueues 2";
        assert_eq!(parse_attached(text), Some((42, "xdpvs_steer".to_string())));
        assert_eq!(parse_attached("4: v0: <UP> mtu 1500\n veth"), None);
    }

    #[test]
    fn keys_are_network_order() {
        assert_eq!(
            svc_key(6, Ipv4Addr::new(198, 18, 1, 1), 80),
            [198, 18, 1, 1, 0, 80, 6, 0]
        );
        let mut six = [0u8; 20];
        six[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        six[15] = 1;
        six[16..].copy_from_slice(&[0x1f, 0x90, 17, 0]);
        assert_eq!(svc6_key(17, "2001:db8::1".parse().unwrap(), 8080), six);
    }
}
