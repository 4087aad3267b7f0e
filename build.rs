//! Compiles the XDP steering program (`bpf/xdpvs_steer.bpf.c`) with clang
//! into `$OUT_DIR/xdpvs_steer.bpf.o`, which `src/xsk/steer.rs` embeds, and the
//! load generator's sink program (`bench/loadgen/sink.bpf.c`, test equipment
//! for `scripts/bench.sh`) into `$OUT_DIR/xdpvs_sink.bpf.o`.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=CLANG");
    compile("bpf/xdpvs_steer.bpf.c", "xdpvs_steer.bpf.o");
    compile("bench/loadgen/sink.bpf.c", "xdpvs_sink.bpf.o");
}

fn compile(src: &str, obj: &str) {
    println!("cargo:rerun-if-changed={src}");
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR")).join(obj);
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
