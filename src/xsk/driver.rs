//! The driver behind an interface, as `ethtool -i` names it
//! (`ETHTOOL_GDRVINFO`): what `dataplane.complete_checksums = "auto"`
//! decides by. The ioctl answers for the calling thread's network
//! namespace, unlike sysfs (`/sys/class/net/IF/device/driver`), which shows
//! the namespace it was mounted in and has no `device` link for veth.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `ETHTOOL_GDRVINFO` (linux/ethtool.h).
const ETHTOOL_GDRVINFO: u32 = 0x0000_0003;

/// `struct ethtool_drvinfo` (linux/ethtool.h), 196 bytes.
#[repr(C)]
struct DrvInfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

/// The driver name of interface `name` (e.g. "veth", "virtio_net",
/// "ixgbe"). Errors when there is no such interface or its driver does not
/// answer ethtool (some virtual devices do not).
pub fn driver(name: &str) -> io::Result<String> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::from_raw_os_error(libc::ENODEV));
    }
    // SAFETY: socket(2) takes no pointers; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut info = DrvInfo {
        cmd: ETHTOOL_GDRVINFO,
        driver: [0; 32],
        version: [0; 32],
        fw_version: [0; 32],
        bus_info: [0; 32],
        erom_version: [0; 32],
        reserved2: [0; 12],
        n_priv_flags: 0,
        n_stats: 0,
        testinfo_len: 0,
        eedump_len: 0,
        regdump_len: 0,
    };
    // SAFETY: ifreq is plain data; all zeros is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    req.ifr_ifru.ifru_data = (&raw mut info).cast();
    // SAFETY: SIOCETHTOOL reads `req` (a NUL-terminated name, the name is
    // shorter than IFNAMSIZ and the rest zero) and writes at most
    // size_of::<DrvInfo>() bytes through `ifru_data`, which points at
    // `info`, alive and exclusively borrowed for the call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL as _, &raw mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let end = info.driver.iter().position(|&b| b == 0).unwrap_or(32);
    Ok(String::from_utf8_lossy(&info.driver[..end]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_the_kernel_s() {
        assert_eq!(std::mem::size_of::<DrvInfo>(), 196);
    }

    #[test]
    fn loopback_and_missing_interfaces() {
        // Loopback may or may not answer ethtool; either way it must not be
        // mistaken for a missing device.
        if let Err(e) = driver("lo") {
            assert_ne!(e.raw_os_error(), Some(libc::ENODEV), "{e}");
        }
        let e = driver("xdpvs-nonesuch").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENODEV), "{e}");
        assert!(driver("").is_err());
        assert!(driver("a-name-too-long-for-ifnamsiz").is_err());
    }
}
