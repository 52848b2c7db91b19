//! The interactive app: `mednist` with no subcommand. One pane per notebook step; the steps
//! run on a job thread ([`jobs`]) while this loop answers keys and redraws.
//!
//! The loop waits on terminal input ([`input`], read by the app itself), job messages, encoded
//! images, signals and the next frame together (`tokio::select!`), applies everything queued,
//! and draws at most ~30 times a second. Images are resized and encoded for the terminal on a
//! thread of their own. When the terminal goes away (SIGHUP, end of input, a failed draw) the
//! loop stops drawing and reading, asks the running step to stop after its current batch and
//! waits for it.

pub mod app;
pub mod attach;
pub mod background;
pub mod errors;
pub mod form;
pub mod graphics;
pub mod input;
pub mod jobs;
pub mod keys;
pub mod lesson;
pub mod log;
pub mod panes;
pub mod widgets;

use std::io::{self, Stdout, Write};
use std::mem::ManuallyDrop;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossterm::terminal::{BeginSynchronizedUpdate, EndSynchronizedUpdate};
use crossterm::{cursor, execute, queue, terminal};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::layout::{Position, Rect};
use ratatui_image::picker::Picker;
use tokio::sync::mpsc;

use self::app::{Action, AfterExit, App};
use self::graphics::GraphicsQuery;
use self::input::Input;
use self::jobs::{JobMessage, Jobs};
use self::log::LogFile;
use self::panes::PaneId;
use self::widgets::Encoded;
use crate::render::theme::Theme;
use crate::runs::Runs;
use crate::workspace::Workspace;

/// Shortest time between two frames (~30 fps).
const FRAME: Duration = Duration::from_millis(33);
/// How long after the last resize the screen is repainted once more.
const RESIZE_SETTLE: Duration = Duration::from_millis(250);
/// How long a step may take to stop after the terminal went away or SIGTERM came.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// A built-in theme's name or a theme file.
    pub theme: Option<String>,
    /// Draw images with half-blocks, never a graphics protocol.
    pub no_graphics: bool,
}

/// Runs the app until the user quits, the process is asked to end, or the terminal goes
/// away. The terminal is restored on every way out: return, error, Ctrl-C and panic.
pub fn run(workspace: &Workspace, options: &Options) -> Result<()> {
    let started = Instant::now();
    // Settings are checked before the screen is taken, so their errors print plainly.
    let theme = Theme::load(options.theme.as_deref(), no_color())?;
    let log = Arc::new(LogFile::open(&workspace.logs_dir())?);
    install_panic_hook(log.clone());

    let runs = Runs::open(workspace, &|event| log.line(format_args!("runs: {event:?}")))?;

    let mut terminal = TerminalSession::enter()?;
    let (input_sender, input) = mpsc::unbounded_channel();
    input::spawn_reader(input_sender).context("cannot read the terminal")?;
    let (sender, receiver) = mpsc::unbounded_channel();
    let workspace_runs = WorkspaceRuns { runs, messages: sender.clone() };
    let mut jobs = Jobs::start(workspace.clone(), sender, log.clone())?;
    let mut app = App::new(theme, Picker::halfblocks());
    let (encoded_sender, encoded) = mpsc::unbounded_channel();
    app.encode_images_on_worker(encoded_sender).context("cannot start the image thread")?;
    if let Some(Action::Run(request)) = app.run_step(PaneId::Setup) {
        jobs.submit(request);
    }
    workspace_runs.attach_if_any(&mut app, &log);
    draw(&mut terminal.terminal, &mut app)?;
    log.line(format_args!("first frame after {} ms", started.elapsed().as_millis()));
    // After the first frame, on the alternate screen: the replies arrive with the keys.
    let query = if options.no_graphics { None } else { Some(GraphicsQuery::send()?) };

    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the event loop")?;
    let channels = Channels { input, messages: receiver, encoded };
    let result =
        runtime.block_on(event_loop(&mut terminal.terminal, app, jobs, channels, &workspace_runs, query, &log));
    drop(terminal);
    let result = result.and_then(|after| match after {
        AfterExit::Nothing => Ok(()),
        AfterExit::ContinueInBackground(continuation) => {
            let said = background::continue_in_background(workspace, &continuation)?;
            log.line(format_args!("{said}"));
            println!("{said}");
            Ok(())
        }
        AfterExit::NothingToContinue => {
            println!("the training ended before it could continue in the background: nothing left to continue");
            Ok(())
        }
    });
    if let Err(error) = &result {
        log.line(format_args!("error: {}", errors::describe(error)));
    }
    log.line("quit");
    result
}

/// The workspace's runs, read off the UI thread for the Train pane: another process's
/// training followed when there is one, and the runs compared in its runs view.
struct WorkspaceRuns {
    runs: Runs,
    /// The kernel's channel, which what is read takes too.
    messages: mpsc::UnboundedSender<JobMessage>,
}

impl WorkspaceRuns {
    /// Reads every run for the runs view; they come as the Train pane's output.
    fn read_all(&self, app: &mut App) {
        if let Err(error) = jobs::runs::read_in_background(self.runs.clone(), self.messages.clone()) {
            app.say(format!("cannot read the runs: {error}"));
        }
    }

    /// Shows the run another process trains, if any; whether there was one.
    fn attach_if_any(&self, app: &mut App, log: &LogFile) -> bool {
        let Some(run) = attach::find(&self.runs) else { return false };
        log.line(format_args!("attaching to {}", run.describe()));
        app.attach(run.clone());
        if let Err(error) = attach::follow(self.runs.clone(), run.clone(), self.messages.clone()) {
            app.say(format!("cannot follow {}: {error}", run.describe()));
        }
        true
    }
}

/// `NO_COLOR` set to anything but the empty string (<https://no-color.org>).
fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty())
}

/// Everything the loop waits on besides timers and signals.
struct Channels {
    input: mpsc::UnboundedReceiver<Input>,
    messages: mpsc::UnboundedReceiver<JobMessage>,
    encoded: mpsc::UnboundedReceiver<Encoded>,
}

/// Leaves without the user having asked (`why`, for the log): stops the running step and
/// sets the time to give up waiting for it. Once is enough (a hang-up often comes twice).
fn shut_down(app: &mut App, jobs: &Jobs, log: &LogFile, why: &str, give_up_at: &mut Option<Instant>) {
    if give_up_at.is_none() {
        log.line(format_args!("{why}: stopping"));
        jobs.cancel();
        app.shut_down();
        *give_up_at = Some(Instant::now() + SHUTDOWN_GRACE);
    }
}

async fn event_loop(
    terminal: &mut Terminal<CrosstermBackend<Stdout>>,
    mut app: App,
    mut jobs: Jobs,
    mut channels: Channels,
    workspace_runs: &WorkspaceRuns,
    mut query: Option<GraphicsQuery>,
    log: &LogFile,
) -> Result<AfterExit> {
    let mut signals = Signals::new()?;
    let mut dirty = true;
    let mut last_draw = Instant::now();
    // A second full repaint shortly after the last resize: a terminal (or tmux) may still be
    // reflowing its old contents when the first one lands, and nothing else would redraw.
    let mut repaint_at: Option<Instant> = None;
    // Once the terminal is gone nothing is drawn or read; the loop only waits (up to this
    // instant) for the running step to stop after its current batch.
    let mut terminal_gone = false;
    let mut give_up_at: Option<Instant> = None;
    loop {
        let next_frame = (dirty && !terminal_gone).then_some(last_draw + FRAME);
        tokio::select! {
            input = channels.input.recv(), if !terminal_gone => match input {
                Some(Input::Key(key)) => {
                    match app.handle_key(key) {
                        // Another process's training holds the workspace: it is shown instead.
                        Some(Action::Run(request))
                            if request.pane() == PaneId::Train && workspace_runs.attach_if_any(&mut app, log) => {}
                        Some(Action::Run(request)) => jobs.submit(request),
                        Some(Action::Cancel) => jobs.cancel(),
                        Some(Action::LookForOtherRun) => {
                            workspace_runs.attach_if_any(&mut app, log);
                        }
                        Some(Action::ReadRuns) => workspace_runs.read_all(&mut app),
                        Some(Action::StopOtherRun(pid)) => {
                            log.line(format_args!("asking pid {pid} to stop (SIGINT)"));
                            if let Err(error) = crate::runs::interrupt(pid) {
                                app.say(format!("cannot ask pid {pid} to stop: {error}"));
                            }
                        }
                        // A second Ctrl-C, or nothing to wait for: leave now.
                        Some(Action::Quit) if app.running().is_none() || give_up_at.is_some() => {
                            jobs.cancel();
                            return Ok(AfterExit::Nothing);
                        }
                        Some(Action::Quit) => shut_down(&mut app, &jobs, log, "Ctrl-C", &mut give_up_at),
                        None => {}
                    }
                    dirty = true;
                }
                Some(Input::Reply(reply)) => match query.as_mut().map(|asked| asked.reply(&reply)) {
                    Some(true) => {
                        choose_graphics(&mut app, query.take(), log);
                        dirty = true;
                    }
                    Some(false) => {}
                    None => log.line(format_args!("late terminal reply {reply:?} ignored")),
                },
                Some(Input::Closed(why)) => {
                    terminal_gone = true;
                    shut_down(&mut app, &jobs, log, &format!("the terminal's input ended ({why})"), &mut give_up_at);
                }
                None => {
                    terminal_gone = true;
                    shut_down(&mut app, &jobs, log, "the terminal reader stopped", &mut give_up_at);
                }
            },
            Some(message) = channels.messages.recv() => {
                let now = Instant::now();
                app.apply(message, now);
                while let Ok(message) = channels.messages.try_recv() {
                    app.apply(message, now);
                }
                dirty = true;
            }
            signal = signals.next() => match signal {
                Signal::Resize => {
                    app.resized();
                    dirty = true;
                    repaint_at = Some(Instant::now() + RESIZE_SETTLE);
                }
                Signal::HangUp => {
                    terminal_gone = true;
                    shut_down(&mut app, &jobs, log, "the terminal hung up", &mut give_up_at);
                }
                Signal::Terminate => {
                    shut_down(&mut app, &jobs, log, "asked to end (SIGTERM or SIGINT)", &mut give_up_at);
                    dirty = true;
                }
            },
            Some(image) = channels.encoded.recv() => {
                app.image_encoded(image);
                while let Ok(image) = channels.encoded.try_recv() {
                    app.image_encoded(image);
                }
                dirty = true;
            }
            _ = sleep_until(query.as_ref().map(|q| q.deadline)), if query.is_some() => {
                log.line("the terminal did not answer the graphics query in time");
                choose_graphics(&mut app, query.take(), log);
                dirty = true;
            }
            _ = sleep_until(repaint_at), if repaint_at.is_some() => {
                app.resized();
                dirty = true;
                repaint_at = None;
            }
            _ = sleep_until(give_up_at), if give_up_at.is_some() => {
                log.line("the running step did not stop in time; leaving it");
                return Ok(AfterExit::Nothing);
            }
            _ = sleep_until(next_frame), if next_frame.is_some() => {
                if let Err(error) = draw(terminal, &mut app) {
                    terminal_gone = true;
                    shut_down(&mut app, &jobs, log, &format!("cannot draw ({error:#})"), &mut give_up_at);
                }
                last_draw = Instant::now();
                dirty = false;
            }
        }
        if app.should_exit() {
            return Ok(app.after_exit());
        }
    }
}
/// What the loop hears from the operating system.
enum Signal {
    /// SIGWINCH: the terminal changed size.
    Resize,
    /// SIGHUP: the terminal went away (a dropped SSH connection, a killed tmux session).
    HangUp,
    /// SIGTERM, or SIGINT from outside (raw mode makes Ctrl-C a key): asked to end.
    Terminate,
}

struct Signals {
    resize: tokio::signal::unix::Signal,
    hang_up: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind| signal(kind).context("cannot listen for signals");
        Ok(Self {
            resize: listen(SignalKind::window_change())?,
            hang_up: listen(SignalKind::hangup())?,
            terminate: listen(SignalKind::terminate())?,
            interrupt: listen(SignalKind::interrupt())?,
        })
    }

    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.resize.recv() => Signal::Resize,
            _ = self.hang_up.recv() => Signal::HangUp,
            _ = self.terminate.recv() => Signal::Terminate,
            _ = self.interrupt.recv() => Signal::Terminate,
        }
    }
}

/// Sleeps until `at`; never wakes for `None` (the loop's guards keep it from being awaited).
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// The picker the graphics query's replies call for, or half-blocks.
fn choose_graphics(app: &mut App, query: Option<GraphicsQuery>, log: &LogFile) {
    if let Some(picker) = query.and_then(|query| query.picker()) {
        app.set_picker(picker);
    }
    log.line(format_args!("images: {}", app.image_protocol()));
}

/// One frame, inside a synchronized update so the terminal never shows half of it.
fn draw(terminal: &mut Terminal<CrosstermBackend<Stdout>>, app: &mut App) -> Result<()> {
    queue!(terminal.backend_mut(), BeginSynchronizedUpdate)?;
    if app.take_needs_clear() {
        // Clears the screen and repaints every cell. (`Terminal::clear` would ask the
        // terminal for the cursor position, whose answer the event reader takes.)
        let area = Rect::from((Position::ORIGIN, terminal.size()?));
        terminal.resize(area)?;
    }
    terminal.draw(|frame| app.render(frame))?;
    execute!(terminal.backend_mut(), EndSynchronizedUpdate)?;
    Ok(())
}

/// The terminal in raw mode on the alternate screen; restored when dropped.
struct TerminalSession {
    /// Dropped by hand: ratatui's own drop prints to stderr when it cannot show the cursor,
    /// and printing to a terminal that has gone panics.
    terminal: ManuallyDrop<Terminal<CrosstermBackend<Stdout>>>,
}

impl TerminalSession {
    fn enter() -> Result<Self> {
        terminal::enable_raw_mode().context("cannot switch the terminal to raw mode")?;
        let entered = execute!(io::stdout(), terminal::EnterAlternateScreen, cursor::Hide)
            .map_err(anyhow::Error::from)
            .and_then(|()| Ok(Terminal::new(CrosstermBackend::new(io::stdout()))?));
        match entered {
            Ok(terminal) => Ok(Self { terminal: ManuallyDrop::new(terminal) }),
            Err(error) => {
                restore_terminal();
                Err(error.context("cannot set up the terminal"))
            }
        }
    }
}

impl Drop for TerminalSession {
    fn drop(&mut self) {
        restore_terminal();
        // Where the cursor cannot be shown (the terminal is gone) the terminal is left to the
        // process's end instead.
        if self.terminal.show_cursor().is_ok() {
            // SAFETY: dropped once, here, and never used again.
            unsafe { ManuallyDrop::drop(&mut self.terminal) }
        }
    }
}

/// Leaves raw mode and the alternate screen; safe to call more than once.
fn restore_terminal() {
    let _ = terminal::disable_raw_mode();
    let mut stdout = io::stdout();
    let _ = execute!(stdout, EndSynchronizedUpdate, terminal::LeaveAlternateScreen, cursor::Show);
    let _ = stdout.flush();
}

/// Logs every panic. A panic on the UI thread restores the terminal before the message is
/// printed; panics on the job thread are caught there and shown in their pane instead.
/// (ratatui's `init` is not used: its hook would restore the terminal on any thread's panic.)
fn install_panic_hook(log: Arc<LogFile>) {
    let ui_thread = std::thread::current().id();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        log.line(format_args!("panic on thread {:?}: {info}", std::thread::current().name()));
        if std::thread::current().id() == ui_thread {
            restore_terminal();
            previous(info);
            // Not eprintln: with the terminal gone it would panic inside the panic.
            let _ = writeln!(io::stderr(), "mednist: the log is in {}", log.path().display());
        }
    }));
}
