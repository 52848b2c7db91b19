//! Which graphics protocol the terminal speaks (kitty, sixel), asked once at start. The query
//! goes out on stdout and its replies come back through the app's own input
//! ([`Input::Reply`](super::input::Input)), so keys typed meanwhile reach the app, and a
//! terminal that never answers costs nothing but half-blocks.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use ratatui_image::FontSize;
use ratatui_image::picker::cap_parser::{Parser, QueryStdioOptions, Response};
use ratatui_image::picker::{Picker, ProtocolType};

/// How long to wait for the terminal to answer.
pub const TIMEOUT: Duration = Duration::from_secs(1);

pub struct GraphicsQuery {
    parser: Parser,
    responses: Vec<Response>,
    pub deadline: Instant,
}

impl GraphicsQuery {
    /// Writes the query to the terminal. In tmux it is wrapped for passthrough to the outer
    /// terminal (a detached tmux never answers).
    pub fn send() -> io::Result<Self> {
        // `halfblocks` also lets tmux pass graphics through (`allow-passthrough`).
        let is_tmux = Picker::halfblocks().tmux_detected();
        let query = Parser::query(is_tmux, QueryStdioOptions { timeout: TIMEOUT, ..QueryStdioOptions::default() });
        let mut stdout = io::stdout();
        stdout.write_all(query.as_bytes())?;
        stdout.flush()?;
        Ok(Self { parser: Parser::new(), responses: Vec::new(), deadline: Instant::now() + TIMEOUT })
    }

    /// Takes one reply; `true` once the query is answered (its closing status report came).
    pub fn reply(&mut self, reply: &str) -> bool {
        for c in reply.chars() {
            for response in self.parser.push(c) {
                if response == Response::Status {
                    return true;
                }
                self.responses.push(response);
            }
        }
        false
    }

    /// The picker the replies so far call for (see [`choose`]); `None` for half-blocks.
    pub fn picker(&self) -> Option<Picker> {
        choose(&self.responses, iterm2_from_env(), font_size_from_window)
    }
}

/// Kitty, else sixel, else iTerm2 where the environment says so (`iterm2`), with the cell size
/// the terminal reported, or else its window's (`window_font`); `None` for half-blocks.
fn choose(responses: &[Response], iterm2: bool, window_font: impl FnOnce() -> Option<FontSize>) -> Option<Picker> {
    let replied = |wanted: &Response| responses.iter().any(|r| r == wanted);
    let protocol = if replied(&Response::Kitty) {
        ProtocolType::Kitty
    } else if replied(&Response::Sixel) {
        ProtocolType::Sixel
    } else if iterm2 {
        ProtocolType::Iterm2
    } else {
        return None;
    };
    let reported = responses.iter().find_map(|r| match r {
        Response::CellSize(Some((width, height))) => Some(FontSize::new(*width, *height)),
        _ => None,
    });
    let font_size = reported.or_else(window_font)?;
    #[allow(deprecated)] // Its replacement queries stdin itself, which this module avoids.
    let mut picker = Picker::from_fontsize(font_size);
    picker.set_protocol_type(protocol);
    Some(picker)
}

/// Terminals that draw iTerm2 images without answering the query (ratatui-image's list).
fn iterm2_from_env() -> bool {
    let program = std::env::var("TERM_PROGRAM").unwrap_or_default();
    ["iTerm", "WezTerm", "mintty", "vscode", "Tabby", "Hyper", "rio", "Bobcat", "WarpTerminal"]
        .iter()
        .any(|name| program.contains(name))
        || std::env::var("LC_TERMINAL").is_ok_and(|terminal| terminal.contains("iTerm"))
}

fn font_size_from_window() -> Option<FontSize> {
    let size = crossterm::terminal::window_size().ok()?;
    (size.width > 0 && size.height > 0 && size.columns > 0 && size.rows > 0)
        .then(|| FontSize::new(size.width / size.columns, size.height / size.rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(replies: &[&str]) -> Vec<Response> {
        let mut query = GraphicsQuery { parser: Parser::new(), responses: Vec::new(), deadline: Instant::now() };
        let (last, before) = replies.split_last().expect("replies");
        assert!(before.iter().all(|reply| !query.reply(reply)), "only the status report ends the query");
        assert!(query.reply(last), "the status report ends the query");
        query.responses
    }

    #[test]
    fn kitty_wins_over_sixel_at_the_reported_cell_size() {
        let responses = answered(&["\x1b_Gi=31;OK\x1b\\", "\x1b[?62;4c", "\x1b[6;20;10t", "\x1b[0n"]);
        let picker = choose(&responses, false, || None).expect("a graphics protocol");
        assert_eq!(picker.protocol_type(), ProtocolType::Kitty);
        assert_eq!((picker.font_size().width, picker.font_size().height), (10, 20));
    }

    #[test]
    fn sixel_without_a_cell_size_reply_takes_the_window_size() {
        let responses = answered(&["\x1b[?62;4;22c", "\x1b[0n"]);
        let picker = choose(&responses, false, || Some(FontSize::new(9, 18))).expect("sixel");
        let size = picker.font_size();
        assert_eq!((picker.protocol_type(), size.width, size.height), (ProtocolType::Sixel, 9, 18));
        assert!(choose(&responses, false, || None).is_none(), "no cell size: half-blocks");
    }

    #[test]
    fn a_terminal_without_graphics_keeps_half_blocks_unless_it_is_iterm2() {
        let responses = answered(&["\x1b[?62;22c", "\x1b[0n"]);
        assert!(choose(&responses, false, || Some(FontSize::new(9, 18))).is_none());
        let iterm2 = choose(&responses, true, || Some(FontSize::new(9, 18))).expect("iTerm2");
        assert_eq!(iterm2.protocol_type(), ProtocolType::Iterm2);
    }
}
