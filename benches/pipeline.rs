//! What the host side of the data path delivers: augmented training batches per second, with no
//! model in the way.
//!
//!     cargo bench --bench pipeline -- [--workers 2] [--prefetch 2] [--bs 256] [--side 64]
//!         [--batches 40] [--repeats 5] [--threads 2]
//!
//! Three ways to feed a model, each timed over `--repeats` runs of `--batches` batches through
//! the `Prefetcher` (median reported):
//! - `device`: what the host does when the GPU augments (`Preparation::Device`): gather the
//!   cached u8 pixels and draw the parameters;
//! - `libtorch-cpu`: that batch augmented by the device path on LibTorch's CPU (`--threads`
//!   threads), what the CPU would pay if it augmented as a GPU does;
//! - `host`: the host sampler (`Preparation::Host`), f32 images normalised in three channels.
//!
//! The last line is the host-augmented figure, the one a device fed from the host would see.

use std::sync::Arc;
use std::time::Instant;

use mednist::data::augment::Augment;
use mednist::data::batches::{BatchPlan, Prefetcher, Preparation};
use mednist::data::cache::ImageCache;
use mednist::data::on_device;
use rand::{Rng, SeedableRng};

struct Options {
    workers: usize,
    prefetch: usize,
    batch_size: usize,
    side: usize,
    batches: usize,
    repeats: usize,
    threads: usize,
}

fn parse() -> Options {
    let mut options =
        Options { workers: 2, prefetch: 2, batch_size: 256, side: 64, batches: 40, repeats: 5, threads: 2 };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || -> usize {
            let text = args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
            text.parse().unwrap_or_else(|_| panic!("{arg} takes a whole number, not {text:?}"))
        };
        match arg.as_str() {
            "--workers" => options.workers = value(),
            "--prefetch" => options.prefetch = value(),
            "--bs" => options.batch_size = value(),
            "--side" => options.side = value(),
            "--batches" => options.batches = value(),
            "--repeats" => options.repeats = value(),
            "--threads" => options.threads = value(),
            "--bench" => {}
            other => panic!("unknown option {other}"),
        }
    }
    options
}

/// Images with a gray background, a bright disc and noise, like a scan: reflection padding and
/// lighting see every kind of pixel.
fn cache(count: usize, side: usize) -> Arc<ImageCache> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut pixels = Vec::with_capacity(count * side * side);
    for _ in 0..count {
        let (cx, cy, r) = (rng.random_range(0.3..0.7), rng.random_range(0.3..0.7), rng.random_range(0.1..0.3));
        for i in 0..side * side {
            let (x, y) = ((i % side) as f64 / side as f64 - cx, (i / side) as f64 / side as f64 - cy);
            let base = if x * x + y * y < r * r { 200.0 } else { 30.0 };
            pixels.push((base + rng.random_range(-25.0..25.0f64)).clamp(0.0, 255.0) as u8);
        }
    }
    Arc::new(ImageCache::from_pixels(side, pixels, (0..count as u32).map(|i| i % 6).collect()))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    mednist::system::reuse_freed_memory();
    let options = parse();
    tch::set_num_threads(options.threads as i32);
    let cache = cache(options.batch_size * options.batches, options.side);
    let items: Vec<usize> = (0..cache.len()).collect();
    let plan = |repeat: usize, preparation| {
        BatchPlan::training(&items, options.batch_size, Augment::default(), 42, repeat).prepared(preparation)
    };
    let images = (options.batch_size * options.batches) as f64;
    let rate = |name: &str, what: &dyn Fn(usize)| -> f64 {
        what(usize::MAX); // warm-up: threads, allocator, LibTorch's kernels
        let mut rates: Vec<f64> = (0..options.repeats)
            .map(|repeat| {
                let started = Instant::now();
                what(repeat);
                images / started.elapsed().as_secs_f64()
            })
            .collect();
        let shown = rates.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", ");
        let median = median(&mut rates);
        println!("[{name}] img/s per repeat: {shown}  MEDIAN={median:.0}");
        median
    };
    let feed = |preparation| {
        let (cache, plan) = (&cache, &plan);
        move |repeat: usize| {
            for batch in Prefetcher::new(cache.clone(), plan(repeat, preparation), options.workers, options.prefetch) {
                std::hint::black_box(&batch);
            }
        }
    };
    println!(
        "pipeline bench: bs {} at {} px, {} batches a repeat, {} workers, prefetch {}, {} cores",
        options.batch_size,
        options.side,
        options.batches,
        options.workers,
        options.prefetch,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    rate("device: host gathers u8", &feed(Preparation::Device));
    let augment_on_libtorch_cpu = |repeat: usize| {
        for batch in Prefetcher::new(cache.clone(), plan(repeat, Preparation::Device), 1, options.prefetch) {
            std::hint::black_box(on_device::upload(&batch, tch::Device::Cpu, tch::Kind::Float));
        }
    };
    rate(&format!("libtorch-cpu: device path on {} threads", options.threads), &augment_on_libtorch_cpu);
    let host = rate("host: sampler, normalised f32", &feed(Preparation::Host));
    println!(
        "pipeline: {host:.0} img/s ({} workers, prefetch {}, bs {}, {} px, augmented on the host)",
        options.workers, options.prefetch, options.batch_size, options.side
    );
}
