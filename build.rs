//! Compiles the XDP steering program (`bpf/xdpvs_steer.bpf.c`) with clang
//! into `$OUT_DIR/xdpvs_steer.bpf.o`, which `src/xsk/steer.rs` embeds.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "bpf/xdpvs_steer.bpf.c";
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-env-changed=CLANG");
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR")).join("xdpvs_steer.bpf.o");
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_string());
    // Debian keeps asm/types.h under the multiarch directory, which clang
    // does not search for -target bpf.
    let arch = env::var("CARGO_CFG_TARGET_ARCH").expect("CARGO_CFG_TARGET_ARCH");
    let multiarch = format!("-I/usr/include/{arch}-linux-gnu");
    let status = Command::new(&clang)
        .args([
            "-O2", "-g", "-target", "bpf", "-Wall", &multiarch, "-c", src, "-o",
        ])
        .arg(&out)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!(
            "compiling {src} with {clang} failed ({s}); it needs libbpf-dev \
             (bpf/bpf_helpers.h) and linux-libc-dev headers: run scripts/setup.sh"
        ),
        Err(e) => panic!(
            "cannot run {clang} to compile the XDP program {src}: {e}; \
             install clang (scripts/setup.sh) or set CLANG to its path"
        ),
    }
}
