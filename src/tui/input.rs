//! The terminal's input, read by the app itself on one thread: keys, and the terminal's
//! replies to the graphics query, in the order they arrived. Keys typed while the query is
//! answered are therefore never lost. crossterm's own reader retries a read that returns 0 or
//! fails forever, which spins on a terminal that has gone; this one ends there and says so.

use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::os::fd::AsFd;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use tokio::sync::mpsc::UnboundedSender;

/// One thing the terminal sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Key(KeyEvent),
    /// An answer to a query: a device-attributes, cell-size, status or cursor report (CSI),
    /// or a kitty graphics (APC) or colour (OSC) reply, as sent.
    Reply(String),
    /// No more input: the terminal hung up, or its input was closed. Why, for the log.
    Closed(String),
}

/// Starts the reader thread on the terminal's input: stdin when it is a terminal, else
/// `/dev/tty` (as crossterm does).
pub fn spawn_reader(sender: UnboundedSender<Input>) -> io::Result<()> {
    let stdin = io::stdin();
    // A duplicate of stdin, so that the reader's handle never closes stdin itself.
    let tty =
        if stdin.is_terminal() { File::from(stdin.as_fd().try_clone_to_owned()?) } else { File::open("/dev/tty")? };
    std::thread::Builder::new().name("mednist-input".into()).spawn(move || pump(tty, &sender))?;
    Ok(())
}

/// Reads `input` until its end, sending what it decodes; ends after sending [`Input::Closed`]
/// at the end of input or on a read error, or when the receiver is gone.
fn pump(mut input: impl Read, sender: &UnboundedSender<Input>) {
    let mut decoder = Decoder::default();
    let mut buffer = [0u8; 1024];
    loop {
        let inputs = match input.read(&mut buffer) {
            Ok(0) => vec![Input::Closed("end of input".into())],
            Ok(read) => decoder.feed(&buffer[..read], read == buffer.len()),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => vec![Input::Closed(format!("cannot read the terminal: {error}"))],
        };
        let closed = inputs.iter().any(|input| matches!(input, Input::Closed(_)));
        for input in inputs {
            if sender.send(input).is_err() {
                return;
            }
        }
        if closed {
            return;
        }
    }
}

/// Turns the terminal's bytes into [`Input`]s; keeps an incomplete sequence for the next read.
#[derive(Debug, Default)]
pub struct Decoder {
    pending: Vec<u8>,
}

/// What one sequence at the start of the input is.
enum Parsed {
    Input(Input),
    /// Recognised and dropped (an unknown escape sequence, a stray byte).
    Nothing,
}

impl Decoder {
    /// Decodes `bytes`; `more` says the read filled its buffer, so a lone ESC at the end may
    /// be the start of a sequence still coming rather than the Esc key.
    pub fn feed(&mut self, bytes: &[u8], more: bool) -> Vec<Input> {
        self.pending.extend_from_slice(bytes);
        let mut inputs = Vec::new();
        let mut at = 0;
        while at < self.pending.len() {
            match parse(&self.pending[at..], more) {
                Some((parsed, used)) => {
                    if let Parsed::Input(input) = parsed {
                        inputs.push(input);
                    }
                    at += used;
                }
                None => break,
            }
        }
        self.pending.drain(..at);
        inputs
    }
}

const ESC: u8 = 0x1b;
const BEL: u8 = 0x07;

fn key(code: KeyCode, modifiers: KeyModifiers) -> Parsed {
    Parsed::Input(Input::Key(KeyEvent::new(code, modifiers)))
}

/// Parses the sequence at the start of `bytes`: what it is and how many bytes it took, or
/// `None` when it is incomplete.
fn parse(bytes: &[u8], more: bool) -> Option<(Parsed, usize)> {
    let none = KeyModifiers::NONE;
    let first = bytes[0];
    let parsed = match first {
        ESC => return parse_escape(bytes, more),
        b'\r' | b'\n' => key(KeyCode::Enter, none),
        b'\t' => key(KeyCode::Tab, none),
        0x7f | 0x08 => key(KeyCode::Backspace, none),
        0x00 => key(KeyCode::Char(' '), KeyModifiers::CONTROL),
        0x01..=0x1a => key(KeyCode::Char((b'a' + first - 1) as char), KeyModifiers::CONTROL),
        0x1c..=0x1f => Parsed::Nothing,
        _ => {
            let (c, used) = parse_char(bytes)?;
            return Some((c.map_or(Parsed::Nothing, |c| key(KeyCode::Char(c), none)), used));
        }
    };
    Some((parsed, 1))
}

/// One UTF-8 character: `None` inside when the bytes are not valid UTF-8 (one is dropped).
fn parse_char(bytes: &[u8]) -> Option<(Option<char>, usize)> {
    let len = match bytes[0] {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => return Some((None, 1)),
    };
    if bytes.len() < len {
        return None;
    }
    match std::str::from_utf8(&bytes[..len]) {
        Ok(text) => Some((text.chars().next(), len)),
        Err(_) => Some((None, 1)),
    }
}

fn parse_escape(bytes: &[u8], more: bool) -> Option<(Parsed, usize)> {
    let Some(&second) = bytes.get(1) else {
        return if more { None } else { Some((key(KeyCode::Esc, KeyModifiers::NONE), 1)) };
    };
    match second {
        b'[' => parse_csi(bytes),
        b'O' => {
            let &third = bytes.get(2)?;
            let code = match third {
                b'A' => KeyCode::Up,
                b'B' => KeyCode::Down,
                b'C' => KeyCode::Right,
                b'D' => KeyCode::Left,
                b'H' => KeyCode::Home,
                b'F' => KeyCode::End,
                b'P'..=b'S' => KeyCode::F(third - b'P' + 1),
                _ => return Some((Parsed::Nothing, 3)),
            };
            Some((key(code, KeyModifiers::NONE), 3))
        }
        // APC (kitty graphics replies), OSC (colour replies), DCS: up to BEL or ST.
        b'_' | b']' | b'P' => {
            let end = bytes[2..].windows(2).position(|pair| pair == [ESC, b'\\']).map(|i| i + 4);
            let bel = bytes[2..].iter().position(|&b| b == BEL).map(|i| i + 3);
            let used = match (end, bel) {
                (Some(st), Some(bel)) => st.min(bel),
                (one, other) => one.or(other)?,
            };
            Some((Parsed::Input(Input::Reply(String::from_utf8_lossy(&bytes[..used]).into_owned())), used))
        }
        ESC => Some((key(KeyCode::Esc, KeyModifiers::NONE), 1)),
        _ => {
            let (c, used) = parse_char(&bytes[1..])?;
            Some((c.map_or(Parsed::Nothing, |c| key(KeyCode::Char(c), KeyModifiers::ALT)), used + 1))
        }
    }
}

/// `ESC [ params intermediates final`: a key (arrows, Home/End, Delete, F-keys, Shift-Tab) or a
/// reply to a query (`c` device attributes, `t` cell size, `n` status, `R` cursor position).
fn parse_csi(bytes: &[u8]) -> Option<(Parsed, usize)> {
    let body = &bytes[2..];
    let final_at = body.iter().position(|b| (0x40..=0x7e).contains(b))?;
    let used = 2 + final_at + 1;
    let params = std::str::from_utf8(&body[..final_at]).unwrap_or("");
    let numbers: Vec<u16> = params.split(';').map(|p| p.parse().unwrap_or(0)).collect();
    let modifiers = modifiers(numbers.get(1).copied().unwrap_or(1));
    let reply = || Some((Parsed::Input(Input::Reply(String::from_utf8_lossy(&bytes[..used]).into_owned())), used));
    let code = match body[final_at] {
        b'c' | b't' | b'n' => return reply(),
        b'R' if numbers.len() == 2 && numbers[0] > 1 => return reply(),
        b'A' => KeyCode::Up,
        b'B' => KeyCode::Down,
        b'C' => KeyCode::Right,
        b'D' => KeyCode::Left,
        b'H' => KeyCode::Home,
        b'F' => KeyCode::End,
        b'Z' => return Some((key(KeyCode::BackTab, KeyModifiers::SHIFT), used)),
        b'P'..=b'S' => KeyCode::F(body[final_at] - b'P' + 1),
        b'~' => match numbers[0] {
            1 | 7 => KeyCode::Home,
            2 => KeyCode::Insert,
            3 => KeyCode::Delete,
            4 | 8 => KeyCode::End,
            5 => KeyCode::PageUp,
            6 => KeyCode::PageDown,
            n @ 11..=15 => KeyCode::F((n - 10) as u8),
            n @ 17..=21 => KeyCode::F((n - 11) as u8),
            n @ 23..=24 => KeyCode::F((n - 12) as u8),
            _ => return Some((Parsed::Nothing, used)),
        },
        _ => return Some((Parsed::Nothing, used)),
    };
    Some((key(code, modifiers), used))
}

/// xterm's modifier parameter: 1 + (shift 1 | alt 2 | ctrl 4).
fn modifiers(parameter: u16) -> KeyModifiers {
    let bits = parameter.saturating_sub(1);
    let mut modifiers = KeyModifiers::NONE;
    for (bit, modifier) in [(1, KeyModifiers::SHIFT), (2, KeyModifiers::ALT), (4, KeyModifiers::CONTROL)] {
        if bits & bit != 0 {
            modifiers |= modifier;
        }
    }
    modifiers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(inputs: &[Input]) -> Vec<(KeyCode, KeyModifiers)> {
        inputs
            .iter()
            .filter_map(|input| match input {
                Input::Key(key) => Some((key.code, key.modifiers)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn keys_typed_among_the_replies_are_kept_in_order() {
        let mut decoder = Decoder::default();
        let inputs = decoder.feed(b"q\x1b_Gi=31;OK\x1b\\\x1b[?62;4c2\x1b[6;16;8t\x1b[A\x1b[0n\r", false);
        assert_eq!(
            inputs,
            vec![
                Input::Key(KeyEvent::new(KeyCode::Char('q'), KeyModifiers::NONE)),
                Input::Reply("\x1b_Gi=31;OK\x1b\\".into()),
                Input::Reply("\x1b[?62;4c".into()),
                Input::Key(KeyEvent::new(KeyCode::Char('2'), KeyModifiers::NONE)),
                Input::Reply("\x1b[6;16;8t".into()),
                Input::Key(KeyEvent::new(KeyCode::Up, KeyModifiers::NONE)),
                Input::Reply("\x1b[0n".into()),
                Input::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)),
            ]
        );
    }

    #[test]
    fn a_sequence_split_across_reads_is_completed() {
        let mut decoder = Decoder::default();
        assert!(decoder.feed(b"\x1b[1;", true).is_empty());
        assert_eq!(keys(&decoder.feed(b"5C", false)), vec![(KeyCode::Right, KeyModifiers::CONTROL)]);
        assert!(decoder.feed("é".as_bytes()[..1].as_ref(), true).is_empty());
        assert_eq!(keys(&decoder.feed(&"é".as_bytes()[1..], false)), vec![(KeyCode::Char('é'), KeyModifiers::NONE)]);
    }

    #[test]
    fn control_keys_escape_and_special_keys() {
        let mut decoder = Decoder::default();
        let inputs = decoder.feed(b"\x03\t\x7f\x1b[Z\x1b[3~\x1bOP\x1bx\x1b[15~", false);
        assert_eq!(
            keys(&inputs),
            vec![
                (KeyCode::Char('c'), KeyModifiers::CONTROL),
                (KeyCode::Tab, KeyModifiers::NONE),
                (KeyCode::Backspace, KeyModifiers::NONE),
                (KeyCode::BackTab, KeyModifiers::SHIFT),
                (KeyCode::Delete, KeyModifiers::NONE),
                (KeyCode::F(1), KeyModifiers::NONE),
                (KeyCode::Char('x'), KeyModifiers::ALT),
                (KeyCode::F(5), KeyModifiers::NONE),
            ]
        );
        // A lone ESC at the end of a read is the Esc key, unless more bytes may follow.
        assert_eq!(keys(&decoder.feed(b"\x1b", false)), vec![(KeyCode::Esc, KeyModifiers::NONE)]);
        assert!(decoder.feed(b"\x1b", true).is_empty());
        assert_eq!(keys(&decoder.feed(b"[B", false)), vec![(KeyCode::Down, KeyModifiers::NONE)]);
    }

    #[test]
    fn the_reader_stops_at_the_end_of_input() {
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
        // Bytes, then the end of input: what a terminal that hangs up leaves.
        let reader = std::thread::spawn(move || pump(&b"q\x1b[B"[..], &sender));
        reader.join().expect("the reader returns");
        let mut got = Vec::new();
        while let Ok(input) = receiver.try_recv() {
            got.push(input);
        }
        assert_eq!(
            got,
            vec![
                Input::Key(KeyEvent::new(KeyCode::Char('q'), KeyModifiers::NONE)),
                Input::Key(KeyEvent::new(KeyCode::Down, KeyModifiers::NONE)),
                Input::Closed("end of input".into()),
            ]
        );
    }

    #[test]
    fn a_read_error_closes_the_input() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::from_raw_os_error(libc::EIO))
            }
        }
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
        pump(Broken, &sender);
        assert!(matches!(receiver.try_recv(), Ok(Input::Closed(why)) if why.contains("cannot read the terminal")));
    }
}
