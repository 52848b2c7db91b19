//! Training throughput of our learner against the PyTorch reference, side by side.
//!
//!     cargo bench --bench train -- [--arch resnet34] [--bs 64] [--steps 8] [--repeats 5] [--reference]
//!         [--rounds 1] [--device cpu|cuda[:N]] [--precision fp32|bf16|fp16] [--glibc-malloc-defaults]
//!
//! Times optimizer steps (forward, backward, AdamW) on a fixed random 64x64 batch, as
//! `../shared/bench/torch_reference.py --synthetic` does, and prints images per second per
//! repeat and their median. Steps are queued as a fit queues them (the batch prepared where the
//! learner prepares it, no loss read between steps); each repeat ends by reading its last loss,
//! which waits for the device. `--reference` then runs that script with the same settings
//! (`--amp` for the precision, `--device`) in the LibTorch venv (scripts/setup-bench.sh installs
//! torchvision there; MEDNIST_BENCH_PYTHON names another Python) and prints the ratio.
//! `--rounds N` alternates the two N times and takes each side's median over all its repeats:
//! on a shared 2-core VM either side's figure drifts by ±20% from one minute to the next.

use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use mednist::data::batches::{BatchPlan, Feed};
use mednist::data::cache::ImageCache;
use mednist::learn::data::TrainData;
use mednist::learn::device::{DeviceChoice, libtorch_device};
use mednist::learn::learner::{Learner, LearnerSettings};
use mednist::learn::precision::Precision;
use mednist::model::Arch;
use rand::{Rng, SeedableRng};

struct Options {
    arch: Arch,
    batch_size: usize,
    steps: usize,
    repeats: usize,
    warmup: usize,
    threads: usize,
    device: DeviceChoice,
    precision: Precision,
    reference: bool,
    rounds: usize,
    /// Leave glibc's allocator as it is (to measure what `reuse_freed_memory` gains).
    glibc_malloc_defaults: bool,
}

fn parse() -> Options {
    let mut options = Options {
        arch: Arch::Resnet34,
        batch_size: 64,
        steps: 8,
        repeats: 5,
        warmup: 2,
        threads: 2,
        device: DeviceChoice::Cpu,
        precision: Precision::Fp32,
        reference: false,
        rounds: 1,
        glibc_malloc_defaults: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--arch" => options.arch = value().parse().expect("an architecture"),
            "--bs" => options.batch_size = value().parse().expect("a batch size"),
            "--steps" => options.steps = value().parse().expect("a step count"),
            "--repeats" => options.repeats = value().parse().expect("a repeat count"),
            "--warmup" => options.warmup = value().parse().expect("a warm-up count"),
            "--threads" => options.threads = value().parse().expect("a thread count"),
            "--device" => options.device = value().parse().expect("a device"),
            "--precision" => options.precision = value().parse().expect("a precision"),
            "--reference" => options.reference = true,
            "--rounds" => options.rounds = value().parse().expect("a round count"),
            "--glibc-malloc-defaults" => options.glibc_malloc_defaults = true,
            "--bench" => {}
            other => panic!("unknown option {other}"),
        }
    }
    options
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let options = parse();
    if !options.glibc_malloc_defaults {
        mednist::system::reuse_freed_memory();
    }
    tch::set_num_threads(options.threads as i32);
    let side = 64;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let count = options.batch_size;
    let pixels = (0..count * side * side).map(|_| rng.random::<u8>()).collect();
    let labels = (0..count as u32).map(|i| i % 6).collect();
    let data = TrainData {
        cache: Arc::new(ImageCache::from_pixels(side, pixels, labels)),
        train: (0..count).collect(),
        valid: Vec::new(),
        classes: (0..6).map(|c| format!("class{c}")).collect(),
        split_fingerprint: String::new(),
        window: mednist::data::window::Window::default(),
        dataset: std::path::PathBuf::new(),
        items: (0..count).map(|i| mednist::data::scan::Item::new(format!("synthetic/{i}.png"), i % 6)).collect(),
    };
    let device = options.device.resolve().expect("the device");
    let feed = Feed::for_device(libtorch_device(&device.0), None, None);
    let batch = feed.batches(data.cache.clone(), BatchPlan::evaluation(&data.train, count)).next().expect("one batch");
    let run_dir = std::env::temp_dir().join("mednist-bench-train");
    let settings = LearnerSettings { precision: Some(options.precision), ..LearnerSettings::default() };
    let mut learner = Learner::new(options.arch, &data, device, run_dir, settings);
    learner.set_learning_rate(1e-3);

    let first = Instant::now();
    learner.train_batch(&batch);
    let first_step = first.elapsed().as_secs_f64();
    for _ in 1..options.warmup {
        learner.train_batch(&batch);
    }
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..options.rounds {
        let rates: Vec<f64> = (0..options.repeats)
            .map(|_| {
                let started = Instant::now();
                let last = (0..options.steps).map(|_| learner.train_step(&batch)).last().expect("at least one step");
                last.read();
                (options.batch_size * options.steps) as f64 / started.elapsed().as_secs_f64()
            })
            .collect();
        println!(
            "[mednist train] arch={} bs={} device={} precision={} threads={} first-step={first_step:.2}s img/s per repeat ({} steps each): {}",
            options.arch,
            options.batch_size,
            options.device,
            options.precision,
            tch::get_num_threads(),
            options.steps,
            rates.iter().map(|r| format!("{r:.1}")).collect::<Vec<_>>().join(", ")
        );
        ours.extend(rates);
        if options.reference {
            theirs.extend(run_reference(&options));
        }
    }
    let ours = median(&mut ours);
    println!("[mednist train] MEDIAN={ours:.1} img/s");
    if options.reference {
        let reference = median(&mut theirs);
        println!("[reference] MEDIAN={reference:.1} img/s");
        println!("ratio ours/PyTorch = {:.2}", ours / reference);
    }
}

/// The reference's `--amp` for a precision.
fn amp(precision: Precision) -> &'static str {
    match precision {
        Precision::Fp32 => "none",
        Precision::Bf16 => "bf16",
        Precision::Fp16 => "fp16",
    }
}

/// Runs the PyTorch reference script and returns its training img/s per repeat.
fn run_reference(options: &Options) -> Vec<f64> {
    let python = std::env::var("MEDNIST_BENCH_PYTHON").unwrap_or_else(|_| {
        let venv = std::env::var("MEDNIST_TORCH_VENV").unwrap_or_else(|_| {
            let cache = std::env::var("XDG_CACHE_HOME")
                .unwrap_or_else(|_| format!("{}/.cache", std::env::var("HOME").expect("HOME is set")));
            format!("{cache}/mednist/torch-venv")
        });
        format!("{venv}/bin/python")
    });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/bench/torch_reference.py");
    let output = Command::new(&python)
        .args([script, "--synthetic", "--arch", options.arch.name(), "--head", "fastai"])
        .args(["--bs", &options.batch_size.to_string(), "--threads", &options.threads.to_string()])
        .args(["--steps", &options.steps.to_string(), "--repeats", &options.repeats.to_string()])
        .args(["--warmup", &options.warmup.to_string()])
        .args(["--device", &options.device.to_string(), "--amp", amp(options.precision)])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e} (run scripts/setup-bench.sh)"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    print!("{stdout}");
    if !output.status.success() {
        panic!("the reference failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    // "[synthetic train] img/s per repeat (8 steps each): 129.4, 134.2  MEDIAN=133.6"
    let train_line = stdout.lines().find(|l| l.starts_with("[synthetic train] img/s")).expect("a train line");
    let repeats = train_line.split(": ").nth(1).and_then(|rest| rest.split("MEDIAN").next()).expect("the repeats");
    repeats.split(',').map(|rate| rate.trim().parse().expect("an img/s figure")).collect()
}
