//! What both front ends draw: the colour theme, charts as ratatui widgets (the app shows
//! them, the CLI renders them to text), the training table's text and the runs compared.
//! Neither front end imports the other; what they share lives here.

pub mod charts;
pub mod epochs;
pub mod runs;
pub mod theme;
