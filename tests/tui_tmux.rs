//! The real binary in a real terminal (tmux): fetch the lesson data and list its classes, then
//! fetch a tiny made-up dataset, split it, train a small model for one epoch, stop a second
//! fit by quitting, and check the terminal is given back as it was; resizes, Ctrl-C and
//! SIGTERM too; a key typed while the terminal is still being asked about graphics, the
//! terminal killed under a running training (a dropped SSH connection), a closed stdin, and a
//! detached training outliving the terminal that started it.

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
    tmux.wait_for_text("Quit anyway?", short);
    tmux.keys(&["y"]);
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

#[test]
fn a_killed_terminal_stops_the_training_after_its_batch_and_keeps_the_checkpoint() {
    let work = TempDir::new().unwrap();
    let workspace = workspace_with_tiny_dataset(work.path());
    let long = Duration::from_secs(300);
    let tmux = Tmux::start("hangup");
    tmux.type_line(&format!("{} --workdir {} --no-graphics", env!("CARGO_BIN_EXE_mednist"), workspace.display()));
    tmux.wait_for_text("1 Setup      [1]✓", Duration::from_secs(30));
    // resnet18, batches of 16, 16-pixel images, then a fit of 20 epochs.
    tmux.keys(&["6", "Left", "Down", "Down", "Left", "Left", "Down", "Left", "Left"]);
    tmux.wait_for("the small learner's settings", Duration::from_secs(10), |screen| {
        screen.contains("resnet18") && screen.contains("‹ 16 ›")
    });
    tmux.keys(&["7", "e", "BSpace", "2", "0", "Enter", "Enter"]);
    tmux.wait_for_text("epoch 1 · batch", long);
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
    let workspace = workspace_with_tiny_dataset(work.path());
    let mednist = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_mednist")).arg("--workdir").arg(&workspace).args(args).output().unwrap()
    };
    let split = mednist(&["split"]);
    assert!(split.status.success(), "{}", String::from_utf8_lossy(&split.stderr));
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
