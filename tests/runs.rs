//! The run registry through the real binary: detached trainings, their logs, the lock, a
//! killed run, the old single-folder layout, names and removal.

#[path = "common/stripes.rs"]
mod stripes;

use std::path::{Path, PathBuf};
use std::process::{Command as Process, Output};
use std::time::{Duration, Instant};

use assert_cmd::cargo::cargo_bin_cmd;
use mednist::runs::is_alive;
use serde_json::Value;

fn mednist(workdir: &Path) -> assert_cmd::Command {
    let mut command = cargo_bin_cmd!("mednist");
    command.env_remove("MEDNIST_HOME").arg("--workdir").arg(workdir);
    command
}

/// `mednist train` of a tiny resnet18 on 16px stripes (three batches an epoch), with `extra`.
fn train(workdir: &Path, epochs: usize, extra: &[&str]) -> Output {
    let epochs = epochs.to_string();
    let tiny = ["train", "--arch", "resnet18", "--size", "16", "--bs", "8", "--device", "cpu", "--epochs", &epochs];
    mednist(workdir).args(tiny).args(extra).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn succeeded(output: Output) -> Output {
    assert!(output.status.success(), "stdout:\n{}\nstderr:\n{}", text(&output.stdout), text(&output.stderr));
    output
}

fn failed_saying(output: Output, words: &str) -> String {
    let stderr = text(&output.stderr);
    assert!(!output.status.success() && stderr.contains(words), "expected {words:?}, got:\n{stderr}");
    stderr
}

fn runs_json(workdir: &Path) -> Value {
    serde_json::from_slice(&succeeded(mednist(workdir).args(["runs", "--json"]).output().unwrap()).stdout).unwrap()
}

fn run_named<'a>(runs: &'a Value, name: &str) -> &'a Value {
    runs["runs"].as_array().unwrap().iter().find(|run| run["name"] == name).unwrap_or_else(|| panic!("{runs:#}"))
}

fn events(workdir: &Path, run: &str) -> Vec<Value> {
    let path = workdir.join("runs").join(run).join("events.jsonl");
    let log = std::fs::read_to_string(path).unwrap_or_default();
    log.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

fn count(events: &[Value], kind: &str) -> usize {
    events.iter().filter(|event| event["event"] == kind).count()
}

/// The table lines of a `train` or `logs` output: the header and the epoch rows.
fn table(stdout: &[u8]) -> Vec<String> {
    text(stdout)
        .lines()
        .filter(|line| line.trim_start().starts_with(|c: char| c.is_ascii_digit()) || line.contains("train_loss"))
        .map(String::from)
        .collect()
}

fn wait_until(what: &str, timeout: Duration, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "no {what} after {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A process that lives until killed, standing in for another training.
struct Sleeper(std::process::Child);

impl Sleeper {
    fn start() -> Self {
        Self(Process::new("sleep").arg("60").spawn().unwrap())
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_detached_run_returns_at_once_trains_to_the_end_and_is_followed() {
    let (dir, _) = stripes::make_workspace(16);
    let started = Instant::now();
    let output = succeeded(train(dir.path(), 2, &["--detach", "--name", "background"]));
    let returned = started.elapsed();
    let said = text(&output.stdout);
    assert!(said.contains("run background") && said.contains("mednist logs -f background"), "{said}");
    assert_eq!(count(&events(dir.path(), "background"), "batch"), 0, "returned before the first batch ({returned:?})");
    let runs = runs_json(dir.path());
    assert_eq!(run_named(&runs, "background")["status"], "running", "{runs:#}");
    assert_eq!(runs["current"], "background");

    let followed = succeeded(mednist(dir.path()).args(["logs", "-f", "background"]).output().unwrap());
    let rows = table(&followed.stdout);
    assert_eq!(rows.len(), 3, "the header and two epochs:\n{}", text(&followed.stdout));
    assert!(text(&followed.stderr).contains("run background finished"), "{}", text(&followed.stderr));
    let runs = runs_json(dir.path());
    let run = run_named(&runs, "background");
    assert_eq!(
        (&run["status"], &run["best"]["epoch"].is_u64(), &run["arch"]),
        (&"finished".into(), &true, &"resnet18".into())
    );
    assert!(run["pid"].is_null() && run["versions"]["mednist"].is_string(), "{run:#}");
    let log = std::fs::read_to_string(dir.path().join("runs/background/train.log")).unwrap();
    assert!(log.contains("train_loss"), "the child's output goes to its log:\n{log}");
    assert!(!dir.path().join("runs/lock.json").exists(), "the child released the lock");
}

#[test]
fn logs_print_the_training_table_and_name_the_known_runs() {
    let (dir, _) = stripes::make_workspace(16);
    let trained = succeeded(train(dir.path(), 2, &["--name", "first"]));
    let logged = succeeded(mednist(dir.path()).args(["logs", "first"]).output().unwrap());
    assert_eq!(table(&logged.stdout), table(&trained.stdout));
    assert_eq!(table(&logged.stdout).len(), 3);
    let current = succeeded(mednist(dir.path()).arg("logs").output().unwrap());
    assert_eq!(table(&current.stdout), table(&trained.stdout), "the current run by default");
    let json = succeeded(mednist(dir.path()).args(["logs", "first", "--json"]).output().unwrap());
    let kinds: Vec<Value> =
        text(&json.stdout).lines().map(|line| serde_json::from_str::<Value>(line).unwrap()["event"].clone()).collect();
    assert!(kinds.contains(&"train_started".into()) && kinds.contains(&"epoch".into()), "{kinds:?}");
    failed_saying(mednist(dir.path()).args(["logs", "nope"]).output().unwrap(), "no run named nope");
    failed_saying(mednist(dir.path()).args(["logs", "nope"]).output().unwrap(), "the runs are: first");
}

#[test]
fn a_second_training_is_refused_and_a_dead_owners_lock_taken_over() {
    let (dir, _) = stripes::make_workspace(16);
    let other = Sleeper::start();
    std::fs::create_dir_all(dir.path().join("runs")).unwrap();
    let lock = serde_json::json!({ "pid": other.pid(), "run": "busy" });
    std::fs::write(dir.path().join("runs/lock.json"), lock.to_string()).unwrap();
    let busy = format!("run busy is training in this workspace (pid {})", other.pid());
    failed_saying(train(dir.path(), 1, &[]), &busy);
    failed_saying(train(dir.path(), 1, &["--detach"]), &busy);
    assert!(runs_json(dir.path())["runs"].as_array().unwrap().is_empty(), "no run was started");

    let pid = other.pid();
    drop(other);
    let trained = succeeded(train(dir.path(), 1, &[]));
    let said = text(&trained.stderr);
    assert!(said.contains(&format!("took over the training lock of run busy from pid {pid}")), "{said}");
    assert!(!dir.path().join("runs/lock.json").exists());
}

#[test]
fn a_killed_detached_run_shows_as_failed_and_its_checkpoint_resumes() {
    let (dir, _) = stripes::make_workspace(16);
    succeeded(train(dir.path(), 6, &["--detach", "--name", "doomed"]));
    let record = dir.path().join("runs/doomed/run.json");
    let pid = serde_json::from_str::<Value>(&std::fs::read_to_string(&record).unwrap()).unwrap()["pid"]
        .as_u64()
        .unwrap() as u32;
    wait_until("first checkpoint", Duration::from_secs(60), || {
        count(&events(dir.path(), "doomed"), "checkpoint_saved") >= 1
    });
    succeeded(Process::new("kill").args(["-9", &pid.to_string()]).output().unwrap());
    wait_until("the end of the killed process", Duration::from_secs(10), || !is_alive(pid));

    let runs = runs_json(dir.path());
    let run = run_named(&runs, "doomed");
    assert_eq!(run["status"], "failed");
    assert_eq!(run["message"], format!("process {pid} ended without finishing: killed?"));
    let listed = text(&succeeded(mednist(dir.path()).arg("runs").output().unwrap()).stdout);
    assert!(listed.contains("doomed") && listed.contains("failed") && listed.contains("killed?"), "{listed}");

    let resumed = succeeded(train(dir.path(), 1, &[]));
    assert!(text(&resumed.stderr).contains("continuing the resnet18 trained for"), "{}", text(&resumed.stderr));
    let runs = runs_json(dir.path());
    assert_eq!(run_named(&runs, "doomed")["status"], "finished", "the same run, continued");
}

#[test]
fn the_old_single_folder_layout_migrates_with_its_checkpoint() {
    let (dir, _) = stripes::make_workspace(16);
    succeeded(train(dir.path(), 1, &["--name", "old"]));
    // What mednist wrote before the registry: the learner in a real folder runs/current.
    let (runs, current) = (dir.path().join("runs"), dir.path().join("runs/current"));
    std::fs::remove_file(&current).unwrap();
    std::fs::rename(runs.join("old"), &current).unwrap();
    for file in ["run.json", "events.jsonl"] {
        std::fs::remove_file(current.join(file)).unwrap();
    }

    let listed = runs_json(dir.path());
    let migrated = &listed["runs"][0];
    let name = migrated["name"].as_str().unwrap();
    assert_eq!((migrated["status"].as_str(), migrated["rows"].as_array().unwrap().len()), (Some("finished"), 1));
    assert_eq!(std::fs::read_link(&current).unwrap(), PathBuf::from(name));
    assert!(current.join("checkpoint.json").is_file());
    let resumed = succeeded(train(dir.path(), 1, &[]));
    assert!(text(&resumed.stderr).contains("continuing the resnet18 trained for 1 epoch"), "{}", text(&resumed.stderr));
}

#[test]
fn run_names_are_checked() {
    let (dir, _) = stripes::make_workspace(4);
    for bad in ["a b", "../up", "current", "x/y", ""] {
        failed_saying(train(dir.path(), 1, &["--name", bad]), "is not usable");
    }
    std::fs::create_dir_all(dir.path().join("runs/taken")).unwrap();
    failed_saying(train(dir.path(), 1, &["--name", "taken"]), "a run named taken exists already");
    failed_saying(train(dir.path(), 1, &["--detach", "--name", "taken"]), "a run named taken exists already");
}

#[test]
fn runs_are_removed_but_not_while_they_train() {
    let (dir, _) = stripes::make_workspace(16);
    succeeded(train(dir.path(), 1, &["--name", "a"]));
    succeeded(train(dir.path(), 1, &["--name", "b", "--fresh"]));
    assert_eq!(std::fs::read_link(dir.path().join("runs/current")).unwrap(), PathBuf::from("b"));

    let compared = text(&succeeded(mednist(dir.path()).args(["runs", "compare", "a", "b"]).output().unwrap()).stdout);
    assert!(
        compared.contains("a valid_loss") && compared.contains("b error_rate") && compared.contains("• b"),
        "{compared}"
    );

    // A run recorded as training by a live process stays.
    let trainer = Sleeper::start();
    let record_path = dir.path().join("runs/a/run.json");
    let mut record: Value = serde_json::from_str(&std::fs::read_to_string(&record_path).unwrap()).unwrap();
    (record["status"], record["pid"]) = ("running".into(), trainer.pid().into());
    std::fs::write(&record_path, record.to_string()).unwrap();
    let refused = mednist(dir.path()).args(["runs", "rm", "a"]).output().unwrap();
    failed_saying(refused, &format!("run a is training (pid {})", trainer.pid()));
    drop(trainer);

    succeeded(mednist(dir.path()).args(["runs", "rm", "b"]).output().unwrap());
    assert_eq!(std::fs::read_link(dir.path().join("runs/current")).unwrap(), PathBuf::from("a"), "the latest left");
    succeeded(mednist(dir.path()).args(["runs", "rm", "a"]).output().unwrap());
    assert!(runs_json(dir.path())["runs"].as_array().unwrap().is_empty());
    assert!(std::fs::symlink_metadata(dir.path().join("runs/current")).is_err());
    failed_saying(mednist(dir.path()).args(["runs", "rm", "a"]).output().unwrap(), "no run named a");
}
