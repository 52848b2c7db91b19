//! Headless front end: renders step events as progress lines, tables and JSON.

pub mod charts;
pub mod classes;
pub mod detach;
pub mod doctor;
pub mod errors;
pub mod export;
pub mod fetch;
pub mod freeze;
pub mod heatmap;
pub mod interpret;
pub mod logs;
pub mod lr_find;
pub mod predict;
pub mod progress;
pub mod runs;
pub mod split;
pub mod table;
pub mod train;
mod train_rank;

use serde::Serialize;

use crate::job::CancelToken;

/// Prints `value` as one pretty JSON document on stdout.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// The first Ctrl-C asks the step to stop at its next safe point (a download resumes later, a
/// training keeps its checkpoint); a second one quits at once. If a handler was already set,
/// Ctrl-C simply ends the process, which is safe too.
pub fn cancel_on_interrupt(cancel: &CancelToken, message: &'static str) {
    let cancel = cancel.clone();
    let _ = ctrlc::set_handler(move || {
        if cancel.is_cancelled() {
            std::process::exit(130);
        }
        cancel.cancel();
        eprintln!("\n{message} (Ctrl-C again to quit now)");
    });
}
