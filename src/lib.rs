//! mednist: the MedNIST deep-learning lesson as library steps.
//!
//! The steps (`data`, and later `model`, `learn`) know nothing of a terminal: they
//! report what they do as [`event::Event`]s, which the headless commands (`cli`)
//! and the TUI render.

pub mod cli;
pub mod data;
pub mod dist;
pub mod event;
pub mod job;
pub mod learn;
pub mod model;
pub mod remedy;
pub mod render;
pub mod runs;
pub mod system;
pub mod tui;
pub mod workspace;
