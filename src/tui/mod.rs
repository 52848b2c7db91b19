//! The interactive app: `mednist` with no subcommand. One pane per notebook step; the steps
//! run on a job thread ([`jobs`]) while this loop answers keys and redraws.
//!
//! The loop waits on terminal input, job messages, encoded images and the next frame together
//! (`tokio::select!`), applies everything queued, and draws at most ~30 times a second. Images
//! are resized and encoded for the terminal on a thread of their own.

pub mod app;
pub mod form;
pub mod jobs;
pub mod log;
pub mod panes;
pub mod theme;
pub mod widgets;

use std::io::{self, Stdout, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossterm::event::{Event as TermEvent, EventStream};
use crossterm::terminal::{BeginSynchronizedUpdate, EndSynchronizedUpdate};
use crossterm::{cursor, execute, queue, terminal};
use futures::StreamExt;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::layout::{Position, Rect};
use ratatui_image::picker::Picker;
use ratatui_image::picker::cap_parser::QueryStdioOptions;
use tokio::sync::mpsc;

use self::app::{Action, App};
use self::jobs::{JobMessage, Jobs};
use self::log::LogFile;
use self::panes::PaneId;
use self::theme::Theme;
use self::widgets::Encoded;
use crate::workspace::Workspace;

/// Shortest time between two frames (~30 fps).
const FRAME: Duration = Duration::from_millis(33);
/// How long after the last resize the screen is repainted once more.
const RESIZE_SETTLE: Duration = Duration::from_millis(250);
/// How long to wait for the terminal to say which graphics it supports.
const GRAPHICS_QUERY_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// A built-in theme's name or a theme file.
    pub theme: Option<String>,
    /// Draw images with half-blocks, never a graphics protocol.
    pub no_graphics: bool,
}

/// Runs the app until the user quits. The terminal is restored on every way out: return,
/// error, Ctrl-C and panic.
pub fn run(workspace: &Workspace, options: &Options) -> Result<()> {
    let started = Instant::now();
    // Settings are checked before the screen is taken, so their errors print plainly.
    let theme = Theme::load(options.theme.as_deref(), no_color())?;
    let log = Arc::new(LogFile::open(&workspace.logs_dir())?);
    install_panic_hook(log.clone());

    let mut terminal = TerminalSession::enter()?;
    let (sender, receiver) = mpsc::unbounded_channel();
    let mut jobs = Jobs::start(workspace.clone(), sender, log.clone())?;
    let mut app = App::new(theme, Picker::halfblocks());
    let (encoded_sender, encoded) = mpsc::unbounded_channel();
    app.encode_images_on_worker(encoded_sender).context("cannot start the image thread")?;
    if let Some(Action::Run(request)) = app.run_step(PaneId::Setup) {
        jobs.submit(request);
    }
    draw(&mut terminal.terminal, &mut app)?;
    log.line(format_args!("first frame after {} ms", started.elapsed().as_millis()));
    if !options.no_graphics {
        // After entering the alternate screen and before reading events: the query reads
        // the terminal's answers from stdin. Unanswered (tmux without passthrough to a
        // graphics terminal), it gives up after the timeout and half-blocks stay.
        let query = QueryStdioOptions { timeout: GRAPHICS_QUERY_TIMEOUT, ..QueryStdioOptions::default() };
        let asked = Instant::now();
        match Picker::from_query_stdio_with_options(query) {
            Ok(picker) => app.set_picker(picker),
            Err(error) => log.line(format_args!("terminal graphics query failed ({error}); using half-blocks")),
        }
        if asked.elapsed() >= GRAPHICS_QUERY_TIMEOUT {
            log.line("the terminal did not answer the graphics query in time");
            release_query_reader()?;
        }
    }
    log.line(format_args!("images: {} after {} ms", app.image_protocol(), started.elapsed().as_millis()));

    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the event loop")?;
    let result = runtime.block_on(event_loop(&mut terminal.terminal, app, jobs, receiver, encoded));
    drop(terminal);
    if let Err(error) = &result {
        log.line(format_args!("error: {error:#}"));
    }
    log.line("quit");
    result
}

/// `NO_COLOR` set to anything but the empty string (<https://no-color.org>).
fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty())
}

async fn event_loop(
    terminal: &mut Terminal<CrosstermBackend<Stdout>>,
    mut app: App,
    mut jobs: Jobs,
    mut messages: mpsc::UnboundedReceiver<JobMessage>,
    mut encoded: mpsc::UnboundedReceiver<Encoded>,
) -> Result<()> {
    let mut input = EventStream::new();
    let mut terminated = std::pin::pin!(termination()?);
    let mut dirty = true;
    let mut last_draw = Instant::now();
    // A second full repaint shortly after the last resize: a terminal (or tmux) may still be
    // reflowing its old contents when the first one lands, and nothing else would redraw.
    let mut repaint_at: Option<Instant> = None;
    loop {
        let next_frame = dirty.then_some(last_draw + FRAME);
        tokio::select! {
            event = input.next() => match event {
                Some(Ok(TermEvent::Key(key))) => {
                    match app.handle_key(key) {
                        Some(Action::Run(request)) => jobs.submit(request),
                        Some(Action::Cancel) => jobs.cancel(),
                        Some(Action::Quit) => {
                            jobs.cancel();
                            return Ok(());
                        }
                        None => {}
                    }
                    dirty = true;
                }
                Some(Ok(TermEvent::Resize(..))) => {
                    app.resized();
                    dirty = true;
                    repaint_at = Some(Instant::now() + RESIZE_SETTLE);
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error).context("cannot read the terminal"),
                None => return Ok(()),
            },
            Some(message) = messages.recv() => {
                let now = Instant::now();
                app.apply(message, now);
                while let Ok(message) = messages.try_recv() {
                    app.apply(message, now);
                }
                dirty = true;
            }
            () = &mut terminated => {
                jobs.cancel();
                return Ok(());
            }
            Some(image) = encoded.recv() => {
                app.image_encoded(image);
                while let Ok(image) = encoded.try_recv() {
                    app.image_encoded(image);
                }
                dirty = true;
            }
            _ = tokio::time::sleep_until(repaint_at.unwrap_or_else(Instant::now).into()), if repaint_at.is_some() => {
                app.resized();
                dirty = true;
                repaint_at = None;
            }
            _ = tokio::time::sleep_until(next_frame.unwrap_or_else(Instant::now).into()), if next_frame.is_some() => {
                draw(terminal, &mut app)?;
                last_draw = Instant::now();
                dirty = false;
            }
        }
        if app.should_exit() {
            return Ok(());
        }
    }
}

/// Resolves when the process is asked to end (SIGTERM) or its terminal goes away (SIGHUP),
/// so that the loop returns and the terminal is restored.
#[cfg(unix)]
fn termination() -> io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = hangup.recv() => {}
        }
    })
}

#[cfg(not(unix))]
fn termination() -> io::Result<impl Future<Output = ()>> {
    Ok(std::future::pending())
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

/// After a query timeout (and only then) ratatui-image's reader thread is still waiting on
/// stdin for the terminal's status report, and would swallow the first keys. A status
/// request sent plainly (tmux answers it itself, unlike the passthrough-wrapped one) ends it.
fn release_query_reader() -> Result<()> {
    let mut stdout = io::stdout();
    stdout.write_all(b"\x1b[5n")?;
    stdout.flush()?;
    std::thread::sleep(Duration::from_millis(100));
    Ok(())
}

/// The terminal in raw mode on the alternate screen; restored when dropped.
struct TerminalSession {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl TerminalSession {
    fn enter() -> Result<Self> {
        terminal::enable_raw_mode().context("cannot switch the terminal to raw mode")?;
        let entered = execute!(io::stdout(), terminal::EnterAlternateScreen, cursor::Hide)
            .map_err(anyhow::Error::from)
            .and_then(|()| Ok(Terminal::new(CrosstermBackend::new(io::stdout()))?));
        match entered {
            Ok(terminal) => Ok(Self { terminal }),
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
            eprintln!("mednist: the log is in {}", log.path().display());
        }
    }));
}
