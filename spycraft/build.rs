// SPDX-License-Identifier: AGPL-3.0-or-later
//! Builds the kernel programs (spycraft-ebpf) for the BPF target and leaves the object in
//! OUT_DIR, where `capture::kernel` embeds it. Only with the `ebpf` feature (the default).

fn main() {
    #[cfg(feature = "ebpf")]
    if let Err(e) = kernel::build() {
        panic!(
            "cannot build the kernel programs: {e:#}\n\
             They need the rust-src component and bpf-linker (`cargo xtask setup` installs both);\n\
             or build without them: cargo build --no-default-features"
        );
    }
}

#[cfg(feature = "ebpf")]
mod kernel {
    use aya_build::{Package, Toolchain};

    pub fn build() -> aya_build::Result<()> {
        let manifest = std::env::var("CARGO_MANIFEST_DIR")?;
        let root = std::path::Path::new(&manifest)
            .parent()
            .expect("spycraft lives in the workspace")
            .join("spycraft-ebpf");
        let root = root.to_str().expect("workspace path is UTF-8");
        // The toolchain building us builds the programs too: stable, with build-std unlocked
        // (DESIGN.md: nightly or RUSTC_BOOTSTRAP=1). No second toolchain to install.
        let toolchain = std::env::var("RUSTUP_TOOLCHAIN").unwrap_or_else(|_| "stable".into());
        println!("cargo:rerun-if-env-changed=RUSTUP_TOOLCHAIN");
        if std::env::var_os("RUSTC_BOOTSTRAP").is_none() {
            std::env::set_var("RUSTC_BOOTSTRAP", "1");
        }
        // aya-build turns every line the inner cargo prints into a warning; keep it to errors.
        std::env::set_var("CARGO_TERM_QUIET", "true");
        aya_build::build_ebpf(
            [Package {
                name: "spycraft-ebpf",
                root_dir: root,
                ..Default::default()
            }],
            Toolchain::Custom(&toolchain),
        )
    }
}
