//! Build script: DPDK 22.11 bindings for the `dpdk` feature.
//!
//! With the `dpdk` feature (the default) it
//! 1. finds libdpdk >= 22.11 with pkg-config (which also emits the link lines for DPDK's shared
//!    libraries; EAL loads the PMDs itself from its plugin directory),
//! 2. runs bindgen over the allowlisted `csrc/wrapper.h` into `$OUT_DIR/dpdk_bindings.rs`, with
//!    `wrap_static_fns` so the `static inline` fast-path functions (rx/tx burst, mbuf alloc/free,
//!    append/trim, `rte_lcore_id`) get C wrappers,
//! 3. compiles those wrappers and the hand shim for macros (`csrc/shim.c`) with the `-march` DPDK
//!    was built for (from pkg-config's cflags).
//!
//! If DPDK, pkg-config or libclang is missing the build fails with one line saying what to
//! install. Without the `dpdk` feature it does nothing.

use std::env;
use std::path::PathBuf;
use std::process::Command;

/// Oldest DPDK whose API the wrappers are written against (Debian 12's libdpdk-dev).
const MIN_DPDK_VERSION: &str = "22.11";
/// What to run when a dependency is missing.
const INSTALL_HINT: &str = "run scripts/install-deps.sh (or: apt-get install libdpdk-dev libclang-dev pkg-config), or build with --no-default-features";

/// DPDK functions psp calls (exported and `static inline` alike).
const ALLOWED_FUNCTIONS: &str = concat!(
    "rte_eal_(init|cleanup|get_runtime_dir)|rte_thread_(register|unregister)|rte_lcore_id|rte_socket_id|",
    "rte_strerror|rte_pktmbuf_pool_create|rte_mempool_(free|avail_count|in_use_count)|",
    "rte_pktmbuf_(alloc|free|append|trim|tailroom|headroom|reset|alloc_bulk)|",
    "rte_eth_(dev_configure|dev_start|dev_stop|dev_close|rx_queue_setup|tx_queue_setup|",
    "dev_count_avail|dev_socket_id|dev_info_get|stats_get|stats_reset|macaddr_get|",
    "link_get_nowait|promiscuous_enable|dev_adjust_nb_rx_tx_desc|dev_default_mac_addr_set|dev_get_port_by_name|dev_is_valid_port|",
    "rx_burst|tx_burst|dev_get_name_by_port)|",
    "shim_.*"
);
/// DPDK types psp names.
const ALLOWED_TYPES: &str =
    "rte_eth_conf|rte_eth_dev_info|rte_eth_stats|rte_mbuf|rte_mempool|rte_ether_addr|rte_eth_link";
/// DPDK constants psp uses.
const ALLOWED_VARS: &str =
    "RTE_MBUF_DEFAULT_BUF_SIZE|RTE_MAX_ETHPORTS|RTE_PKTMBUF_HEADROOM|RTE_ETH_LINK_UP|RTE_MAX_LCORE|RTE_ETHDEV_QUEUE_STAT_CNTRS";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=csrc/wrapper.h");
    println!("cargo:rerun-if-changed=csrc/shim.c");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    if env::var_os("CARGO_FEATURE_DPDK").is_none() {
        return;
    }
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));

    let dpdk = match pkg_config::Config::new()
        .atleast_version(MIN_DPDK_VERSION)
        .probe("libdpdk")
    {
        Ok(lib) => lib,
        Err(err) => fail(&format!(
            "libdpdk >= {MIN_DPDK_VERSION} not found by pkg-config ({}): {INSTALL_HINT}",
            first_line(&err.to_string())
        )),
    };
    let march = dpdk_march_flag();

    let static_wrappers = out_dir.join("dpdk_static_wrappers");
    let mut builder = bindgen::Builder::default()
        .header("csrc/wrapper.h")
        .allowlist_function(ALLOWED_FUNCTIONS)
        .allowlist_type(ALLOWED_TYPES)
        .allowlist_var(ALLOWED_VARS)
        .blocklist_type("__tile1024i.*")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .wrap_static_fns(true)
        .wrap_static_fns_path(&static_wrappers)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    if let Some(flag) = &march {
        builder = builder.clang_arg(flag);
    }
    for path in &dpdk.include_paths {
        builder = builder.clang_arg(format!("-I{}", path.display()));
    }
    // libclang missing makes clang-sys panic: turn that into one line.
    std::panic::set_hook(Box::new(|_| {}));
    let generated =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || builder.generate()));
    let _ = std::panic::take_hook();
    let bindings = match generated {
        Ok(Ok(bindings)) => bindings,
        Ok(Err(err)) => fail(&format!(
            "bindgen failed on csrc/wrapper.h ({}): {INSTALL_HINT}",
            first_line(&err.to_string())
        )),
        Err(_) => fail(&format!(
            "libclang not found (bindgen needs it): {INSTALL_HINT}"
        )),
    };
    if let Err(err) = bindings.write_to_file(out_dir.join("dpdk_bindings.rs")) {
        fail(&format!(
            "cannot write DPDK bindings to {}: {err}",
            out_dir.display()
        ));
    }

    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let mut cc = cc::Build::new();
    // The generated wrappers `#include "csrc/wrapper.h"`, relative to the package root.
    cc.file("csrc/shim.c")
        .file(static_wrappers.with_extension("c"))
        .include(&manifest_dir)
        .opt_level(3)
        .warnings(false);
    if let Some(flag) = &march {
        cc.flag(flag);
    }
    for path in &dpdk.include_paths {
        cc.include(path);
    }
    if let Err(err) = cc.try_compile("psp_dpdk_shim") {
        fail(&format!(
            "cannot compile the DPDK C shim ({}): {INSTALL_HINT}",
            first_line(&err.to_string())
        ));
    }
}

/// The `-march=...` DPDK was built with, from `pkg-config --cflags libdpdk` (Debian: corei7).
/// Inline DPDK functions compiled for another target could use instructions the libraries avoid.
fn dpdk_march_flag() -> Option<String> {
    let pkg_config = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_string());
    let output = Command::new(pkg_config)
        .args(["--cflags", "libdpdk"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .find(|flag| flag.starts_with("-march="))
        .map(str::to_string)
}

fn first_line(text: &str) -> &str {
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("")
}

/// Fails the build with one line (`cargo::error`, which cargo prints as the build's error).
fn fail(message: &str) -> ! {
    println!("cargo::error=psp `dpdk` feature: {message}");
    std::process::exit(0);
}
