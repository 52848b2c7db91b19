//! Bakes the LibTorch library folder into the binary's rpath, so `mednist` runs
//! without LD_LIBRARY_PATH (torch-sys publishes that folder as link metadata), compiles
//! the LibTorch kernels, settings and distributed runtime tch does not bind
//! (src/model/kernels.cpp, src/learn/cuda.cpp, src/dist/c10d.cpp) against the same LibTorch,
//! and records the burn version for `mednist doctor`.
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB")
        .expect("torch-sys did not publish DEP_TCH_LIBTORCH_LIB (the LibTorch library folder)");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    println!("cargo:rustc-env=MEDNIST_LIBTORCH_LIB={lib}");
    compile_kernels(Path::new(&lib));
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

/// LibTorch keeps its headers beside its libraries (`torch/lib`, `torch/include`), in the PyPI
/// wheel and in the standalone archive alike. The C++ ABI flag follows torch-sys's
/// `LIBTORCH_CXX11_ABI` (default 1, as PyPI's wheels since torch 2.7).
fn compile_kernels(lib: &Path) {
    let sources = ["src/model/kernels.cpp", "src/learn/cuda.cpp", "src/dist/c10d.cpp"];
    // c10d's Gloo header includes Gloo headers the wheel does not ship: declarations stand in.
    let gloo_declarations = "src/dist/gloo_declarations";
    for source in sources.iter().chain([&gloo_declarations]) {
        println!("cargo:rerun-if-changed={source}");
    }
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let include = lib.parent().map(|torch| torch.join("include")).filter(|dir| dir.join("ATen").is_dir());
    let Some(include) = include else {
        panic!("LibTorch headers not found beside {}: expected ../include/ATen", lib.display());
    };
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    cc::Build::new()
        .cpp(true)
        .files(sources)
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .include(gloo_declarations)
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .warnings(false)
        .compile("mednist_kernels");
}
