//! What averaging a training step's gradients over the ranks costs: resnet34's gradients (one
//! f32 tensor per learnable parameter, about 85 MB) all-reduced by Gloo between two processes on
//! this machine, in buckets of several sizes (DistributedDataParallel's 25 MB is ours).
//!
//!     cargo bench --bench allreduce -- [--ranks 2] [--steps 10] [--arch resnet34]
//!
//! Starts the ranks itself (this program again, with torchrun's variables set) and prints, per
//! bucket size, the median time of a step's all-reduce and the bandwidth it reached.

// burn 0.22 deprecates its LibTorch backend; it is this project's backend.
#![allow(deprecated)]

use std::process::Command;
use std::time::{Duration, Instant};

use mednist::dist::{Launch, ProcessGroup, Reduce};
use mednist::model::{Arch, Classifier, named_tensors};

const BUCKETS_MB: [usize; 4] = [1, 4, 25, 100];

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut ranks, mut steps, mut arch) = (2usize, 10usize, Arch::Resnet34);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--ranks" => ranks = args.next().and_then(|n| n.parse().ok()).expect("--ranks takes a count"),
            "--steps" => steps = args.next().and_then(|n| n.parse().ok()).expect("--steps takes a count"),
            "--arch" => arch = args.next().and_then(|a| a.parse().ok()).expect("--arch takes an architecture"),
            "--bench" => {}
            other => panic!("unknown argument {other} (takes --ranks N, --steps N, --arch NAME)"),
        }
    }
    match Launch::from_env().expect("torchrun's variables, when set, are well formed") {
        Some(launch) => rank(&launch, steps, arch),
        None => launch_ranks(ranks, steps, arch),
    }
}

/// Runs this program as `ranks` processes, as torchrun would, and waits for them.
fn launch_ranks(ranks: usize, steps: usize, arch: Arch) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let children: Vec<_> = (0..ranks)
        .map(|rank| {
            Command::new(std::env::current_exe().unwrap())
                .args(["--steps", &steps.to_string(), "--arch", arch.name()])
                .envs([
                    ("RANK", rank.to_string()),
                    ("LOCAL_RANK", rank.to_string()),
                    ("WORLD_SIZE", ranks.to_string()),
                    ("MASTER_ADDR", "127.0.0.1".into()),
                    ("MASTER_PORT", port.to_string()),
                    ("OMP_NUM_THREADS", "1".into()),
                ])
                .spawn()
                .expect("a rank starts")
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success(), "a rank failed");
    }
}

fn rank(launch: &Launch, steps: usize, arch: Arch) {
    let group = ProcessGroup::connect(launch, Duration::from_secs(120), None).expect("the ranks meet");
    let model = Classifier::new(arch, 6, &burn::tensor::Device::libtorch());
    let gradients: Vec<tch::Tensor> = named_tensors(&model)
        .iter()
        .filter(|tensor| tensor.kind.is_learnable())
        .map(|tensor| {
            tch::Tensor::ones(tensor.shape.iter().map(|&n| n as i64).collect::<Vec<_>>(), tch::kind::FLOAT_CPU)
        })
        .collect();
    let bytes: usize = gradients.iter().map(|g| g.numel() * 4).sum();
    if launch.is_root() {
        println!(
            "{} ranks on {} ({} threads each), {arch}: {} gradient tensors, {:.1} MB a step",
            launch.world_size,
            std::fs::read_to_string("/proc/cpuinfo")
                .ok()
                .and_then(|info| info.lines().find(|l| l.starts_with("model name")).map(|l| l
                    .split(':')
                    .nth(1)
                    .unwrap_or("")
                    .trim()
                    .to_string()))
                .unwrap_or_else(|| "this CPU".into()),
            tch::get_num_threads(),
            gradients.len(),
            bytes as f64 / 1e6
        );
    }
    for bucket_mb in BUCKETS_MB {
        let mut timings = Vec::new();
        for step in 0..steps + 2 {
            let started = Instant::now();
            group
                .all_reduce(&gradients, Reduce::Mean, bucket_mb << 20, "the benchmark's all-reduce")
                .expect("all-reduce");
            if step >= 2 {
                timings.push(started.elapsed().as_secs_f64());
            }
        }
        timings.sort_by(f64::total_cmp);
        let median = timings[timings.len() / 2];
        if launch.is_root() {
            println!(
                "allreduce: {:.1} MB in buckets of {bucket_mb} MB: {:.1} ms a step (median of {steps}), {:.2} GB/s of gradients",
                bytes as f64 / 1e6,
                median * 1e3,
                bytes as f64 / median / 1e9
            );
        }
    }
}
