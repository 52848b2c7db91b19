//! The interactive app: `mednist` with no subcommand. One pane per notebook step; the steps
//! run on a job thread ([`jobs`]) while this loop answers keys and redraws.
//!
//! The loop waits on terminal input, job messages and the next frame together
//! (`tokio::select!`), applies everything queued, and draws at most ~30 times a second.

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
use ratatui_image::picker::Picker;
use tokio::sync::mpsc;

use self::app::{Action, App};
use self::jobs::{JobMessage, Jobs};
use self::log::LogFile;
use self::panes::PaneId;
use self::theme::Theme;
use crate::workspace::Workspace;

/// Shortest time between two frames (~30 fps).
const FRAME: Duration = Duration::from_millis(33);

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
    // The query must come after entering the alternate screen and before reading events.
    let picker = if options.no_graphics {
        Picker::halfblocks()
    } else {
        Picker::from_query_stdio().unwrap_or_else(|error| {
            log.line(format_args!("terminal graphics query failed ({error}); using half-blocks"));
            Picker::halfblocks()
        })
    };
    log.line(format_args!("images: {:?}, font {:?}", picker.protocol_type(), picker.font_size()));

    let (sender, receiver) = mpsc::unbounded_channel();
    let jobs = Jobs::start(workspace.clone(), sender, log.clone())?;
    let app = App::new(theme, picker);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().context("cannot start the event loop")?;
    let result = runtime.block_on(event_loop(&mut terminal.terminal, app, jobs, receiver, &log, started));
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
    log: &LogFile,
    started: Instant,
) -> Result<()> {
    let mut input = EventStream::new();
    if let Some(Action::Run(request)) = app.run_step(PaneId::Setup) {
        jobs.submit(request);
    }
    let mut dirty = true;
    let mut last_draw: Option<Instant> = None;
    loop {
        let next_frame = match (dirty, last_draw) {
            (false, _) => None,
            (true, None) => Some(Instant::now()),
            (true, Some(last)) => Some(last + FRAME),
        };
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
            _ = tokio::time::sleep_until(next_frame.unwrap_or_else(Instant::now).into()), if next_frame.is_some() => {
                draw(terminal, &mut app)?;
                if last_draw.is_none() {
                    log.line(format_args!("first frame after {} ms", started.elapsed().as_millis()));
                }
                last_draw = Some(Instant::now());
                dirty = false;
            }
        }
        if app.should_exit() {
            return Ok(());
        }
    }
}

/// One frame, inside a synchronized update so the terminal never shows half of it.
fn draw(terminal: &mut Terminal<CrosstermBackend<Stdout>>, app: &mut App) -> Result<()> {
    queue!(terminal.backend_mut(), BeginSynchronizedUpdate)?;
    if app.take_needs_clear() {
        terminal.clear()?;
    }
    terminal.draw(|frame| app.render(frame))?;
    execute!(terminal.backend_mut(), EndSynchronizedUpdate)?;
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
