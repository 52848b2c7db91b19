//! The real binary in a real terminal (tmux): fetch the lesson data and list its classes, then
//! fetch a tiny made-up dataset, split it, train a small model for one epoch, stop a second
//! fit by quitting, and check the terminal is given back as it was; resizes, Ctrl-C and
//! SIGTERM too; a key typed while the terminal is still being asked about graphics, the
//! terminal killed under a running training (a dropped SSH connection), a closed stdin, a
//! detached training outliving the terminal that started it, and the app showing such a
//! training live and stopping it.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use mednist::learn::checkpoint;
use tempfile::TempDir;

/// A tmux server of our own (one per test), with one 100x30 window running a plain shell.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(test: &str) -> Self {
        let tmux = Self { socket: format!("mednist-{test}-{}", std::process::id()) };
        tmux.run(&["-f", "/dev/null", "new-session", "-d", "-x", "100", "-y", "30", "bash --norc --noprofile"]);
        tmux.type_line("PS1='PROMPT$ '; clear");
        tmux.wait_for("the shell prompt", Duration::from_secs(10), |screen| screen.trim_start().starts_with("PROMPT$"));
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        let output = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("this test needs tmux (apt install tmux)");
        assert!(output.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        output
    }

    /// Sends tmux key names (`Enter`, `Left`, `q`, ...), one at a time as a user types them.
    fn keys(&self, keys: &[&str]) {
        for key in keys {
            self.run(&["send-keys", "-t", "0", key]);
            std::thread::sleep(Duration::from_millis(60));
        }
    }

    fn type_line(&self, text: &str) {
        self.run(&["send-keys", "-t", "0", "-l", text]);
        self.keys(&["Enter"]);
    }

    fn screen(&self) -> String {
        String::from_utf8(self.run(&["capture-pane", "-p", "-t", "0"]).stdout).unwrap()
    }

    fn query(&self, format: &str) -> String {
        String::from_utf8(self.run(&["display", "-p", "-t", "0", format]).stdout).unwrap().trim().to_string()
    }

    /// Polls the screen until `ready` holds; panics with the last screen after `timeout`.
    fn wait_for(&self, what: &str, timeout: Duration, ready: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if ready(&screen) {
                return screen;
            }
            assert!(start.elapsed() < timeout, "no {what} after {timeout:?}; the screen:\n{screen}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_for_text(&self, text: &str, timeout: Duration) -> String {
        self.wait_for(&format!("{text:?}"), timeout, |screen| screen.contains(text))
    }

    /// The process the shell in the window runs (the app), once there is one.
    fn app_pid(&self) -> u32 {
        let shell = self.query("#{pane_pid}");
        let children = std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children")).unwrap();
        children.split_whitespace().next().expect("the shell runs the app").parse().unwrap()
    }
}

/// Whether process `pid` has ended (gone, or a zombie nobody reaped yet).
fn has_ended(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state follows the parenthesised command name.
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// CPU seconds process `pid` has used (user and system).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); the state (field 3) is fields[0] here.
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let tmux = |args: &[&str]| Command::new("tmux").args(["-L", &self.socket]).args(args).output();
        let socket =
            tmux(&["display", "-p", "#{socket_path}"]).map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        let _ = tmux(&["kill-server"]);
        // tmux leaves its socket file behind.
        if let Ok(socket) = socket.as_deref()
            && !socket.is_empty()
        {
            let _ = std::fs::remove_file(socket);
        }
    }
}

/// Two classes of 40 small PNGs each (stripes across or down).
fn tiny_dataset(dir: &Path) {
    for (class, across) in [("across", true), ("down", false)] {
        let folder = dir.join(class);
        std::fs::create_dir_all(&folder).unwrap();
        for i in 0..40u32 {
            let image = image::GrayImage::from_fn(16, 16, |x, y| {
                let along = if across { y } else { x };
                let noise = ((x * 31 + y * 17 + i * 13) % 40) as u8;
                image::Luma([if (along / 2) % 2 == 0 { 200 + noise / 2 } else { 20 + noise }])
            });
            image.save(folder.join(format!("{i:03}.png"))).unwrap();
        }
    }
}

/// A workspace with `tiny_dataset` fetched into it (by the headless command).
fn workspace_with_tiny_dataset(work: &Path) -> std::path::PathBuf {
    let (workspace, source) = (work.join("workspace"), work.join("tiny"));
    tiny_dataset(&source);
    let fetched = Command::new(env!("CARGO_BIN_EXE_mednist"))
        .args(["--workdir", workspace.to_str().unwrap(), "fetch", "--source", source.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(fetched.status.success(), "{}", String::from_utf8_lossy(&fetched.stderr));
    workspace
}

/// `mednist --workdir WORKSPACE ARGS...`, headless.
fn mednist_in(workspace: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mednist")).arg("--workdir").arg(workspace).args(args).output().unwrap()
}

/// `workspace_with_tiny_dataset`, split (by the headless command).
fn split_workspace_with_tiny_dataset(work: &Path) -> std::path::PathBuf {
    let workspace = workspace_with_tiny_dataset(work);
    let split = mednist_in(&workspace, &["split"]);
    assert!(split.status.success(), "{}", String::from_utf8_lossy(&split.stderr));
    workspace
}

/// The terminal is back to normal: main screen, shell prompt, cooked mode, cursor shown.
fn assert_terminal_restored(tmux: &Tmux) {
    let screen = tmux.wait_for("the shell prompt after quitting", Duration::from_secs(30), |screen| {
        screen.lines().rfind(|line| !line.trim().is_empty()).is_some_and(|line| line.trim() == "PROMPT$")
    });
    assert_eq!(tmux.query("#{alternate_on}"), "0", "still on the alternate screen:\n{screen}");
    assert_eq!(tmux.query("#{cursor_flag}"), "1", "cursor left hidden");
    tmux.type_line("clear; echo \"mode:$(stty -a | grep -o -- '-\\?icanon') $(stty -a | grep -o -- '-\\?echo ')\"");
    tmux.wait_for_text("mode:icanon echo", Duration::from_secs(10));
}

#[test]
fn the_lesson_end_to_end_in_tmux() {
    let work = TempDir::new().unwrap();
    let workspace = work.path().join("workspace");
    let source = work.path().join("tiny");
    tiny_dataset(&source);
    let long = Duration::from_secs(300);
    let short = Duration::from_secs(30);

    let tmux = Tmux::start("lesson");
    // No --no-graphics: the terminal is queried for graphics, and a detached tmux never
    // answers, which must cost neither keys nor images (half-blocks stay).
    tmux.type_line(&format!("{} --workdir {}", env!("CARGO_BIN_EXE_mednist"), workspace.display()));
    tmux.wait_for("Setup done", short, |screen| {
        screen.contains("mednist · the MedNIST lesson") && screen.contains("1 Setup      [1]✓")
    });

    tmux.keys(&["2", "Enter"]);
    tmux.wait_for_text("Fetched the embedded lesson sample", short);
    tmux.keys(&["3", "Enter"]);
    let classes = tmux.wait_for_text("6 classes, 1,800 images", long);
    for class in ["AbdomenCT", "BreastMRI", "CXR", "ChestCT", "Hand", "HeadCT"] {
        assert!(classes.contains(class), "{class} missing:\n{classes}");
    }

    // The tiny dataset, typed in as a path.
    tmux.keys(&["2", "Right", "Right", "Down", "e"]);
    tmux.run(&["send-keys", "-t", "0", "-l", &source.display().to_string()]);
    tmux.keys(&["Enter", "Enter"]);
    tmux.wait_for_text("80 images in 2 classes", short);
    tmux.keys(&["3", "Enter"]);
    tmux.wait_for_text("2 classes, 80 images", short);
    tmux.keys(&["4", "Enter"]);
    let split = tmux.wait_for_text("total", short);
    assert!(split.contains("across") && split.contains("down"), "{split}");
    let words = |line: &str| line.replace('│', " ").split_whitespace().map(str::to_string).collect::<Vec<_>>();
    assert!(split.lines().any(|line| words(line) == ["total", "64", "16", "20.0%"]), "{split}");

    // resnet18, batches of 16, 16-pixel images; one epoch.
    tmux.keys(&["6", "Left", "Down", "Down", "Left", "Left", "Down", "Left", "Left"]);
    tmux.wait_for("the small learner's settings", short, |screen| {
        screen.contains("resnet18") && screen.contains("‹ 16 ›")
    });
    tmux.keys(&["7", "Left", "Left", "Enter"]);
    let trained = tmux.wait_for("a finished epoch", long, |screen| {
        screen.contains("learn.fit_one_cycle(1, 1e-3)") && screen.contains(" done│") && screen.contains("    0    ")
    });
    assert!(
        trained.contains("resnet18 on cpu") && trained.contains("epoch  train_loss  valid_loss  error_rate   time"),
        "{trained}"
    );

    // The lesson's reading of the errors, and a short learning-rate sweep on the same learner.
    tmux.keys(&["8", "Enter"]);
    let interpreted = tmux.wait_for_text("most confused", long);
    assert!(interpreted.contains("on 16 validation images"), "{interpreted}");
    tmux.keys(&["9", "Left", "Left", "Left", "Left", "Left", "Left", "Left", "Left", "Left", "Enter"]);
    let swept = tmux.wait_for("the sweep's result", long, |screen| {
        screen.contains("num_it=10") && screen.contains(" done│") && screen.contains("learning rate (log)")
    });
    assert!(swept.contains("suggested max_lr") || swept.contains("too short"), "{swept}");
    tmux.keys(&["7"]);

    // A long second fit, stopped by quitting: it ends after its batch, the checkpoint stays.
    tmux.keys(&["e", "BSpace", "2", "0", "Enter", "Enter"]);
    tmux.wait_for_text("epoch 1 · batch", long);
    tmux.keys(&["q"]);
    tmux.wait_for_text("Train is training. Quit how?", short);
    tmux.keys(&["s"]);
    assert_terminal_restored(&tmux);

    let state = checkpoint::load(&workspace.join("runs/current")).unwrap().expect("a checkpoint").state;
    assert!(state.epochs_done >= 1, "{state:?}");
    let log = std::fs::read_to_string(workspace.join("logs/tui.log")).unwrap();
    assert!(log.contains("first frame after") && log.contains("Train: Cancelled"), "{log}");
}

#[test]
fn follows_resizes_and_restores_the_terminal_on_ctrl_c_and_sigterm() {
    let work = TempDir::new().unwrap();
    let tmux = Tmux::start("signals");
    let launch = || {
        tmux.type_line(&format!("{} --workdir {} --no-graphics", env!("CARGO_BIN_EXE_mednist"), work.path().display()));
        tmux.wait_for("Setup done", Duration::from_secs(30), |screen| screen.contains("1 Setup      [1]✓"));
    };
    launch();
    // The layout follows the terminal's size, down to 80x24 and back up.
    for (width, height) in [(80, 24), (130, 40)] {
        tmux.run(&["resize-window", "-t", "0", "-x", &width.to_string(), "-y", &height.to_string()]);
        let screen =
            tmux.wait_for(&format!("the app redrawn at {width}x{height}"), Duration::from_secs(10), |screen| {
                let lines: Vec<&str> = screen.lines().collect();
                lines.len() == height && lines[1].chars().count() == width && lines[1].ends_with('┐')
            });
        assert!(screen.contains("9 LR find") && screen.contains("q quit"), "{screen}");
    }
    tmux.keys(&["C-c"]);
    assert_terminal_restored(&tmux);

    launch();
    let shell = tmux.query("#{pane_pid}");
    let app = std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children")).unwrap();
    let status = Command::new("sh").args(["-c", &format!("kill -TERM {}", app.trim())]).status().unwrap();
    assert!(status.success(), "cannot signal the app (pid {app:?})");
    assert_terminal_restored(&tmux);
}

#[test]
fn a_key_typed_while_the_terminal_is_asked_about_graphics_reaches_the_app() {
    let work = TempDir::new().unwrap();
    let tmux = Tmux::start("early-key");
    // With graphics on, the app asks the terminal (tmux passes the query to an outer terminal
    // that is not there, so no answer comes) for a second after its first frame.
    tmux.type_line(&format!("{} --workdir {}", env!("CARGO_BIN_EXE_mednist"), work.path().display()));
    tmux.wait_for("the first frame", Duration::from_secs(30), |screen| screen.contains("mednist · the MedNIST lesson"));
    tmux.keys(&["4"]);
    tmux.wait_for_text("4 Split", Duration::from_secs(5));
    let log = || std::fs::read_to_string(work.path().join("logs/tui.log")).unwrap();
    // The key was handled while the query still waited for its answer...
    assert!(!log().contains("images: "), "the query had ended before the key:\n{}", log());
    // ...which then timed out, as a detached tmux never answers.
    let asked = Instant::now();
    while !log().contains("did not answer the graphics query in time") {
        assert!(asked.elapsed() < Duration::from_secs(10), "{}", log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(log().contains("images: Halfblocks"), "{}", log());
    tmux.wait_for_text("1 Setup      [1]✓", Duration::from_secs(30));
    tmux.keys(&["q"]);
    assert_terminal_restored(&tmux);
}

/// Opens the app on `workspace` and starts a fit of 20 epochs of a small resnet18 (batches of
/// 16, 16-pixel images); returns once its second epoch has started.
fn start_a_long_fit_in_the_app(tmux: &Tmux, workspace: &Path) {
    tmux.type_line(&format!("{} --workdir {} --no-graphics", env!("CARGO_BIN_EXE_mednist"), workspace.display()));
    tmux.wait_for_text("1 Setup      [1]✓", Duration::from_secs(30));
    tmux.keys(&["6", "Left", "Down", "Down", "Left", "Left", "Down", "Left", "Left"]);
    tmux.wait_for("the small learner's settings", Duration::from_secs(10), |screen| {
        screen.contains("resnet18") && screen.contains("‹ 16 ›")
    });
    tmux.keys(&["7", "e", "BSpace", "2", "0", "Enter", "Enter"]);
    tmux.wait_for_text("epoch 1 · batch", Duration::from_secs(300));
}

#[test]
fn a_killed_terminal_stops_the_training_after_its_batch_and_keeps_the_checkpoint() {
    let work = TempDir::new().unwrap();
    let workspace = workspace_with_tiny_dataset(work.path());
    let tmux = Tmux::start("hangup");
    start_a_long_fit_in_the_app(&tmux, &workspace);
    let app = tmux.app_pid();

    // What a dropped SSH connection does: the terminal and everything in it go away.
    let killed = Instant::now();
    tmux.run(&["kill-server"]);
    while !has_ended(app) {
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "the app (pid {app}) still runs 30 s after its terminal went"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let state = checkpoint::load(&workspace.join("runs/current")).unwrap().expect("a checkpoint").state;
    assert!(state.epochs_done >= 1, "{state:?}");
    let log = std::fs::read_to_string(workspace.join("logs/tui.log")).unwrap();
    assert!(!log.contains("panic"), "{log}");
    assert!(log.contains("Train: Cancelled") && log.lines().last().is_some_and(|l| l.ends_with("quit")), "{log}");
    // The app's fit was a recorded run, which says how it ended.
    let runs: serde_json::Value = serde_json::from_slice(&mednist_in(&workspace, &["runs", "--json"]).stdout).unwrap();
    let statuses: Vec<&serde_json::Value> = runs["runs"].as_array().unwrap().iter().map(|run| &run["status"]).collect();
    assert_eq!(statuses, ["stopped"], "{runs:#}");
}

#[test]
fn with_stdin_closed_or_empty_the_app_reads_the_terminal_and_does_not_spin() {
    let work = TempDir::new().unwrap();
    let tmux = Tmux::start("stdin");
    for redirect in ["< /dev/null", "0<&-"] {
        tmux.type_line(&format!(
            "{} --workdir {} --no-graphics {redirect}",
            env!("CARGO_BIN_EXE_mednist"),
            work.path().display()
        ));
        tmux.wait_for_text("1 Setup      [1]✓", Duration::from_secs(30));
        let app = tmux.app_pid();
        let before = cpu_seconds(app);
        std::thread::sleep(Duration::from_secs(2));
        let idle = cpu_seconds(app) - before;
        assert!(idle < 0.5, "with stdin {redirect}, the idle app used {idle:.2} s of CPU in 2 s");
        tmux.keys(&["4"]);
        tmux.wait_for_text("4 Split", Duration::from_secs(5));
        tmux.keys(&["q"]);
        assert_terminal_restored(&tmux);
        tmux.type_line("clear");
    }
}

#[test]
fn a_detached_training_outlives_the_terminal_that_started_it() {
    let work = TempDir::new().unwrap();
    let workspace = split_workspace_with_tiny_dataset(work.path());
    let mednist = |args: &[&str]| mednist_in(&workspace, args);
    let tmux = Tmux::start("detach");
    tmux.type_line(&format!(
        "{} --workdir {} train --detach --name survivor --arch resnet18 --size 16 --bs 16 --device cpu --epochs 3",
        env!("CARGO_BIN_EXE_mednist"),
        workspace.display()
    ));
    tmux.wait_for_text("mednist logs -f survivor", Duration::from_secs(30));
    // The terminal goes while the training starts up.
    tmux.run(&["kill-server"]);

    let followed = mednist(&["logs", "-f", "survivor"]);
    let (stdout, stderr) = (String::from_utf8_lossy(&followed.stdout), String::from_utf8_lossy(&followed.stderr));
    assert!(followed.status.success() && stderr.contains("run survivor finished"), "{stderr}");
    let rows = stdout.lines().filter(|line| line.trim_start().starts_with(|c: char| c.is_ascii_digit())).count();
    assert_eq!(rows, 3, "{stdout}");
}

/// The highest epoch number in the training table on `screen`, if it shows a row.
fn last_epoch_shown(screen: &str) -> Option<usize> {
    screen
        .lines()
        .filter_map(|line| line.split('│').nth(1))
        .filter_map(|cell| {
            let fields: Vec<&str> = cell.split_whitespace().collect();
            let numbers = fields.len() == 5 && fields[1..4].iter().all(|field| field.parse::<f64>().is_ok());
            numbers.then(|| fields[0].parse::<usize>().ok()).flatten()
        })
        .max()
}

#[test]
fn the_app_shows_a_detached_training_live_and_esc_stops_it() {
    let work = TempDir::new().unwrap();
    let workspace = split_workspace_with_tiny_dataset(work.path());
    let mednist = |args: &[&str]| mednist_in(&workspace, args);
    let tiny = ["--arch", "resnet18", "--size", "16", "--bs", "16", "--device", "cpu", "--epochs", "200"];
    let started = mednist(&[&["--json", "train", "--detach", "--name", "night"], &tiny[..]].concat());
    assert!(started.status.success(), "{}", String::from_utf8_lossy(&started.stderr));
    let pid = serde_json::from_slice::<serde_json::Value>(&started.stdout).unwrap()["pid"].as_u64().unwrap();
    let long = Duration::from_secs(300);

    let tmux = Tmux::start("attach");
    tmux.type_line(&format!("{} --workdir {} --no-graphics", env!("CARGO_BIN_EXE_mednist"), workspace.display()));
    tmux.wait_for_text("1 Setup      [1]✓", Duration::from_secs(30));
    tmux.keys(&["7"]);
    let first = tmux.wait_for("a row of the detached run", long, |screen| last_epoch_shown(screen).is_some());
    assert!(first.contains(&format!("attached to run night, pid {pid}, detached")), "{first}");
    let epoch = last_epoch_shown(&first).unwrap();
    // Rows keep coming as the other process trains, with its batch progress.
    tmux.wait_for("a later row", long, |screen| last_epoch_shown(screen).is_some_and(|last| last > epoch));
    tmux.wait_for_text(" · batch ", long);

    tmux.keys(&["Escape"]);
    let stopped = tmux.wait_for_text("detached · stopped", long);
    assert!(stopped.contains(" stopped│"), "the cell says so too:\n{stopped}");
    let runs = mednist(&["runs", "--json"]);
    let runs: serde_json::Value = serde_json::from_slice(&runs.stdout).unwrap();
    let night = runs["runs"].as_array().unwrap().iter().find(|run| run["name"] == "night").expect("run night");
    assert_eq!(night["status"], "stopped", "{night:#}");
    let state = checkpoint::load(&workspace.join("runs/night")).unwrap().expect("a checkpoint").state;
    assert!(state.epochs_done > epoch && state.epochs_done < 200, "{state:?}");
    assert!(has_ended(pid as u32), "the detached training (pid {pid}) has ended");
    tmux.keys(&["q"]);
    assert_terminal_restored(&tmux);
}

#[test]
fn quitting_with_d_continues_the_app_s_training_in_the_background() {
    let work = TempDir::new().unwrap();
    let workspace = workspace_with_tiny_dataset(work.path());
    let long = Duration::from_secs(300);
    let tmux = Tmux::start("quit-detach");
    start_a_long_fit_in_the_app(&tmux, &workspace);
    tmux.keys(&["q"]);
    tmux.wait_for_text("Train is training. Quit how?", Duration::from_secs(10));
    tmux.keys(&["d"]);
    // Lines joined with spaces: tmux wraps the long first line of the message.
    let said = tmux.wait_for_text("follow it with: mednist logs -f", long).replace('\n', " ");
    assert!(said.contains("continues in the background (pid") && said.contains("the epoch that was in progress"));
    let pid: u32 = said.split("(pid ").nth(1).and_then(|rest| rest.split(')').next()).unwrap().parse().unwrap();
    let run = said.split("mednist logs -f ").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    assert_terminal_restored(&tmux);

    // The background run continues the app's run and its cycle, with the app's batch size.
    let runs: serde_json::Value = serde_json::from_slice(&mednist_in(&workspace, &["runs", "--json"]).stdout).unwrap();
    let record = runs["runs"].as_array().unwrap().iter().find(|r| r["name"] == run.as_str()).expect("the run");
    assert_eq!((&record["status"], record["pid"].as_u64()), (&"running".into(), Some(u64::from(pid))), "{record:#}");
    let events = std::fs::read_to_string(workspace.join("runs").join(&run).join("events.jsonl")).unwrap();
    let starts: Vec<serde_json::Value> = events
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|event| event["event"] == "train_started")
        .collect();
    assert_eq!(starts.len(), 2, "the app's fit, then the background one: {starts:?}");
    let resumed = &starts[1];
    assert_eq!((resumed["cycle_epochs"].as_u64(), resumed["batches_per_epoch"].as_u64()), (Some(20), Some(4)));
    let done = resumed["cycle_epochs_done"].as_u64().unwrap();
    assert!(done >= 1 && resumed["first_epoch"].as_u64() == Some(done), "{resumed}");

    mednist::runs::interrupt(pid).unwrap();
    let asked = Instant::now();
    while !has_ended(pid) {
        assert!(asked.elapsed() < long, "the background run (pid {pid}) did not stop");
        std::thread::sleep(Duration::from_millis(100));
    }
}
