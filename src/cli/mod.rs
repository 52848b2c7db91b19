//! Headless front end: renders step events as progress lines, tables and JSON.

pub mod classes;
pub mod doctor;
pub mod fetch;
pub mod progress;
pub mod split;
pub mod table;
pub mod train;

use serde::Serialize;

/// Prints `value` as one pretty JSON document on stdout.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
