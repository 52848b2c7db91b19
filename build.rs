//! Bakes the LibTorch library folder into the binary's rpath, so `mednist` runs
//! without LD_LIBRARY_PATH (torch-sys publishes that folder as link metadata), compiles
//! the LibTorch kernels, settings and distributed runtime tch does not bind
//! (src/model/kernels.cpp, src/learn/cuda.cpp, src/dist/c10d.cpp, src/dist/nccl.cpp) against
//! the same LibTorch,
//! and records the burn version for `mednist doctor`.
use std::path::{Path, PathBuf};

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
    let sources = ["src/model/kernels.cpp", "src/learn/cuda.cpp", "src/dist/c10d.cpp", "src/dist/nccl.cpp"];
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
    let build = |sources: &[&str]| {
        let mut build = cc::Build::new();
        build
            .cpp(true)
            .files(sources)
            .include(&include)
            .include(include.join("torch/csrc/api/include"))
            .include(gloo_declarations)
            .flag("-std=c++17")
            .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
            .flag("-DGLOG_USE_GLOG_EXPORT")
            .warnings(false);
        build
    };
    build(&sources[..3]).compile("mednist_kernels");
    // NCCL's process group needs the CUDA and NCCL headers; without them it is built as a stub
    // that says so, and the collectives stay on Gloo.
    let mut nccl = build(&sources[3..]);
    match cuda_includes(lib) {
        Some(dirs) => {
            nccl.includes(dirs).define("MEDNIST_NCCL", None);
            // torch-sys links libtorch_cuda; the CUDA device calls are in libc10_cuda beside it.
            println!("cargo:rustc-link-lib=dylib=c10_cuda");
        }
        None => println!(
            "cargo:warning=building without NCCL: the CUDA and NCCL headers are not beside {} (scripts/setup-libtorch.sh installs them)",
            lib.display()
        ),
    }
    nccl.compile("mednist_nccl");
}

/// The include folders of the wheel's `nvidia-*` packages (site-packages/nvidia/*/include), when
/// they hold what ProcessGroupNCCL's header needs: NCCL's, the CUDA runtime's, and nvcc's and
/// CCCL's, which setup-libtorch.sh adds for their headers alone.
fn cuda_includes(lib: &Path) -> Option<Vec<PathBuf>> {
    let nvidia = lib.parent()?.parent()?.join("nvidia");
    let needed = [
        "nccl/include/nccl.h",
        "cuda_runtime/include/cuda_runtime_api.h",
        "cuda_nvcc/include/crt/host_config.h",
        "cuda_cccl/include/nv/target",
    ];
    if !needed.iter().all(|path| nvidia.join(path).exists()) {
        return None;
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&nvidia)
        .ok()?
        .filter_map(|entry| Some(entry.ok()?.path().join("include")))
        .filter(|dir| dir.is_dir())
        .collect();
    dirs.sort();
    Some(dirs)
}
