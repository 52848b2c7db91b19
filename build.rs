//! Bakes the LibTorch library folder into the binary's rpath, so `mednist` runs
//! without LD_LIBRARY_PATH (torch-sys publishes that folder as link metadata), and
//! records the burn version for `mednist doctor`.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
        println!("cargo:rustc-env=MEDNIST_LIBTORCH_LIB={lib}");
    }
    println!("cargo:rerun-if-changed=Cargo.lock");
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    let burn_version = lock
        .split("[[package]]")
        .find(|package| package.contains("\nname = \"burn\"\n"))
        .and_then(|package| package.lines().find_map(|l| l.strip_prefix("version = \"")))
        .map(|v| v.trim_end_matches('"').to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=MEDNIST_BURN_VERSION={burn_version}");
}
