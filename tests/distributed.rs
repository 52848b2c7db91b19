//! Data-parallel training on LibTorch's c10d with Gloo, on the CPU: two ranks step as one
//! process on their batches together, `torchrun` runs `mednist train`, and a lost rank makes
//! the others fail in bounded time with the last checkpoint intact.

#[path = "common/python.rs"]
mod python;
#[path = "common/stripes.rs"]
mod stripes;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mednist::data::batches::{Batch, BatchPlan};
use mednist::dist::{Launch, ProcessGroup};
use mednist::job::CancelToken;
use mednist::learn::checkpoint;
use mednist::learn::data::TrainData;
use mednist::learn::device::DeviceChoice;
use mednist::learn::distributed::{Distributed, open_rank};
use mednist::learn::learner::Learner;
use mednist::learn::open::OpenOptions;
use mednist::learn::schedule::MaxLr;
use mednist::workspace::Workspace;
use stripes::{SIDE, load, make_workspace, new_learner, one_at_a_time, resume, settings};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn batch(data: &TrainData, range: std::ops::Range<usize>) -> Batch {
    BatchPlan::evaluation(&data.train[range.clone()], range.len()).build(&data.cache, 0)
}

/// Every value of `ours` within `tolerance` of `expected`'s, relative to `expected`'s largest.
fn assert_close(ours: &[f32], expected: &[f32], tolerance: f32, what: &str) {
    assert_eq!(ours.len(), expected.len(), "{what}");
    let scale = expected.iter().fold(0f32, |max, v| max.max(v.abs())).max(1e-6);
    let worst = ours.iter().zip(expected).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst <= tolerance * scale, "{what}: off by {worst:e}, {:e} of the largest value {scale:e}", worst / scale);
}

fn values(tensor: &tch::Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(&tensor.to_kind(tch::Kind::Float).reshape([-1])).unwrap()
}

/// The gradients of a step on `batch`, then the validation log-probabilities after it.
fn step(learner: &mut Learner, data: &TrainData, batch: &Batch) -> (Vec<Vec<f32>>, Vec<f32>) {
    learner.set_head_dropout(0.0);
    let gradients = learner.gradients(batch).unwrap().iter().map(values).collect();
    learner.train_batch(batch);
    let after = learner.predict(data, &data.valid, &|_| {}, &CancelToken::new()).unwrap();
    (gradients, after.log_probs)
}

#[test]
fn two_ranks_of_eight_images_step_as_one_process_of_sixteen_with_sync_bn() {
    let _turn = one_at_a_time();
    let (_dir, workspace) = make_workspace(16);
    let data = load(&workspace);
    assert!(data.train.len() >= 16);
    // A saved learner that every process starts from: weights, BatchNorm statistics, Adam's state.
    new_learner(&workspace, &data).fit_one_cycle(&data, 1, MaxLr::Uniform(1e-3), &|_| {}, &CancelToken::new()).unwrap();

    let (expected_gradients, expected_after) = step(&mut resume(&workspace), &data, &batch(&data, 0..16));

    let port = free_port();
    let ranks: Vec<(Vec<Vec<f32>>, Vec<f32>)> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..2)
            .map(|rank| {
                let (workspace, data) = (&workspace, &data);
                scope.spawn(move || {
                    let launch = Launch {
                        rank,
                        world_size: 2,
                        local_rank: rank,
                        master_addr: "127.0.0.1".into(),
                        master_port: port,
                        agent_store: false,
                        restart_count: 0,
                    };
                    let group = Arc::new(ProcessGroup::connect(&launch, Duration::from_secs(60), None).unwrap());
                    let options = OpenOptions {
                        image_size: SIDE,
                        settings: settings(),
                        device: DeviceChoice::Cpu,
                        ..OpenOptions::default()
                    };
                    let distributed = Distributed::new(group, true, CancelToken::new());
                    let mut opened = open_rank(workspace, &options, distributed, &|_| {}, &CancelToken::new()).unwrap();
                    step(&mut opened.learner, data, &batch(data, rank * 8..rank * 8 + 8))
                })
            })
            .collect();
        threads.into_iter().map(|thread| thread.join().unwrap()).collect()
    });

    // Float sums in another order: 1e-3 of each tensor's largest gradient.
    for (rank, (gradients, after)) in ranks.iter().enumerate() {
        assert_eq!(gradients.len(), expected_gradients.len());
        for (index, (ours, expected)) in gradients.iter().zip(&expected_gradients).enumerate() {
            assert_close(ours, expected, 1e-3, &format!("rank {rank}, gradient {index}"));
        }
        assert_close(after, &expected_after, 1e-3, &format!("rank {rank}, predictions after the step"));
    }
}

fn mednist() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mednist"))
}

fn train_args(workspace: &Workspace, epochs: usize) -> Vec<String> {
    let workdir = workspace.root().display().to_string();
    [
        "--workdir",
        &workdir,
        "train",
        "--arch",
        "resnet18",
        "--size",
        "16",
        "--bs",
        "4",
        "--device",
        "cpu",
        "--epochs",
        &epochs.to_string(),
        "--dist-timeout",
        "20",
    ]
    .map(String::from)
    .to_vec()
}

fn show(output: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn epochs_saved(workspace: &Workspace) -> usize {
    checkpoint::load(&workspace.current_run_dir()).unwrap().expect("a checkpoint").state.epochs_done
}

#[test]
fn torchrun_trains_two_ranks_that_write_one_checkpoint_which_resumes() {
    let (_dir, workspace) = make_workspace(12);
    let torchrun = |epochs| {
        Command::new(python::python())
            .args(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "--no-python"])
            .arg(env!("CARGO_BIN_EXE_mednist"))
            .args(train_args(&workspace, epochs))
            .output()
            .unwrap()
    };
    let first = torchrun(1);
    assert!(first.status.success(), "{}", show(&first));
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(stderr.contains("x 2 processes"), "the start line says the processes: {}", show(&first));
    let stdout = String::from_utf8_lossy(&first.stdout);
    let rows = stdout.lines().filter(|line| line.trim_start().starts_with(|c: char| c.is_ascii_digit())).count();
    assert_eq!(rows, 1, "only rank 0 prints the table: {}", show(&first));
    assert!(stdout.contains("(2 processes, --bs each)"), "the table's header says so: {}", show(&first));
    assert_eq!(epochs_saved(&workspace), 1);
    let run = std::fs::read_to_string(workspace.current_run_dir().join("run.json")).unwrap();
    assert!(run.contains("\"world_size\": 2"), "{run}");

    // Under torchrun again, and alone: the checkpoint goes on either way.
    let second = torchrun(1);
    assert!(second.status.success(), "{}", show(&second));
    assert_eq!(epochs_saved(&workspace), 2);
    let alone = mednist().args(train_args(&workspace, 1)).output().unwrap();
    assert!(alone.status.success(), "{}", show(&alone));
    assert_eq!(epochs_saved(&workspace), 3);
}

/// Rank `rank` of 2 launched by hand (as torchrun would), training `epochs` with JSON events.
fn spawn_rank(workspace: &Workspace, rank: usize, port: u16, epochs: usize) -> Child {
    mednist()
        .args(train_args(workspace, epochs))
        .arg("--json")
        .envs([
            ("RANK", rank.to_string()),
            ("LOCAL_RANK", rank.to_string()),
            ("WORLD_SIZE", "2".into()),
            ("MASTER_ADDR", "127.0.0.1".into()),
            ("MASTER_PORT", port.to_string()),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until `rank0` (or torchrun, which passes its output on) has printed a batch event of
/// epoch `epoch`.
fn wait_for_batch_of_epoch(rank0: &mut Child, epoch: usize) -> BufReader<std::process::ChildStdout> {
    let mut lines = BufReader::new(rank0.stdout.take().unwrap());
    let mut line = String::new();
    let wanted = format!("\"epoch\":{epoch}");
    while lines.read_line(&mut line).unwrap() > 0 {
        if line.contains("\"batch\"") && line.contains(&wanted) {
            return lines;
        }
        line.clear();
    }
    panic!("rank 0 ended before a batch of epoch {epoch}");
}

fn lose_rank_one_mid_epoch(how: &str) {
    // 90 training images: 11 batches of 4 per rank, so the loss lands well inside the epoch.
    let (_dir, workspace) = make_workspace(60);
    let trained = mednist().args(train_args(&workspace, 1)).output().unwrap();
    assert!(trained.status.success(), "{}", show(&trained));

    let port = free_port();
    let mut rank0 = spawn_rank(&workspace, 0, port, 2);
    let mut rank1 = spawn_rank(&workspace, 1, port, 2);
    let _events = wait_for_batch_of_epoch(&mut rank0, 1);
    let lost = Instant::now();
    match how {
        "killed" => {
            rank1.kill().unwrap();
            rank1.wait().unwrap();
        }
        "hung" => {
            let stopped = Command::new("kill").args(["-STOP", &rank1.id().to_string()]).status().unwrap();
            assert!(stopped.success());
        }
        _ => unreachable!(),
    }
    let output = rank0.wait_with_output().unwrap();
    let waited = lost.elapsed();
    let _ = rank1.kill();
    let _ = rank1.wait();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "rank 0 fails: {stderr}");
    // --dist-timeout is 20 s: a dead rank is noticed at once, a hung one at the timeout.
    assert!(waited < Duration::from_secs(50), "rank 0 failed {waited:?} after rank 1 was {how}");
    let named = if how == "killed" { format!("rank 1 (pid {}) has died", rank1.id()) } else { "within 20 s".into() };
    assert!(stderr.contains("rank 0 of 2") && stderr.contains(&named), "{stderr}");
    assert_eq!(epochs_saved(&workspace), 1, "the epoch before the loss is the checkpoint");

    // The lost cycle had no epoch done: alone, a new 2-epoch cycle goes on from the checkpoint.
    let resumed = mednist().args(train_args(&workspace, 2)).output().unwrap();
    assert!(resumed.status.success(), "{}", show(&resumed));
    assert_eq!(epochs_saved(&workspace), 3, "{}", show(&resumed));
}

#[test]
fn a_rank_killed_mid_epoch_fails_the_others_at_once_and_the_checkpoint_resumes() {
    lose_rank_one_mid_epoch("killed");
}

#[test]
fn a_rank_that_hangs_fails_the_others_at_the_timeout() {
    lose_rank_one_mid_epoch("hung");
}

#[test]
fn ctrl_c_to_torchrun_stops_every_rank_after_a_batch_and_keeps_the_checkpoint() {
    let (_dir, workspace) = make_workspace(60);
    let trained = mednist().args(train_args(&workspace, 1)).output().unwrap();
    assert!(trained.status.success(), "{}", show(&trained));
    let mut torchrun = Command::new(python::python())
        .args(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "--no-python"])
        .arg(env!("CARGO_BIN_EXE_mednist"))
        .args(train_args(&workspace, 2))
        .arg("--json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _events = wait_for_batch_of_epoch(&mut torchrun, 1);
    let interrupted = Command::new("kill").args(["-INT", &torchrun.id().to_string()]).status().unwrap();
    assert!(interrupted.success());
    let output = torchrun.wait_with_output().unwrap();
    // torchrun passes the signal on to every rank and kills those still running after 30 s: a
    // run recorded as stopped is one whose rank 0 stopped cleanly, after a batch, in time.
    let run = std::fs::read_to_string(workspace.current_run_dir().join("run.json")).unwrap();
    assert!(run.contains("\"status\": \"stopped\""), "{run}\n{}", show(&output));
    assert_eq!(epochs_saved(&workspace), 1, "the last epoch's checkpoint stands");
}

#[test]
fn other_steps_and_the_app_refuse_to_run_under_torchrun() {
    let (_dir, workspace) = make_workspace(4);
    let workdir = workspace.root().display().to_string();
    let env = [("RANK", "0"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "29500")];
    let interpret = mednist().args(["--workdir", &workdir, "interpret"]).envs(env).output().unwrap();
    assert!(!interpret.status.success());
    assert!(String::from_utf8_lossy(&interpret.stderr).contains("only `train` and `doctor` run under torchrun"));
    let doctor = mednist().args(["--workdir", &workdir, "doctor"]).envs(env).output().unwrap();
    assert!(String::from_utf8_lossy(&doctor.stdout).contains("rank 0 of 2"), "{}", show(&doctor));
    let partial = mednist().args(["--workdir", &workdir, "train"]).env("RANK", "1").output().unwrap();
    assert!(String::from_utf8_lossy(&partial.stderr).contains("WORLD_SIZE"), "{}", show(&partial));
}
