//! A pane's settings: one line per field. ↑/↓ (Tab) select a field, ←/→ change it, `e` types
//! a value (Enter accepts it once it checks out, Esc leaves it as it was).

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::text::{Line, Span};

use super::keys::{self, Command, Key};
use crate::render::theme::Theme;

/// Width of the label column.
const LABEL_WIDTH: usize = 13;

#[derive(Debug, Clone)]
pub struct Form {
    fields: Vec<Field>,
    selected: usize,
    editing: Option<Editing>,
}

#[derive(Debug, Clone)]
pub struct Field {
    label: &'static str,
    value: Value,
}

#[derive(Debug, Clone)]
enum Value {
    Choice {
        options: Vec<String>,
        index: usize,
    },
    Number {
        value: u64,
        min: u64,
        max: u64,
        step: Step,
    },
    /// Free text; `check` accepts or explains, `step` moves along suggested values.
    Text {
        text: String,
        check: fn(&str) -> Result<(), String>,
        step: Option<fn(&str, bool) -> Option<String>>,
    },
}

/// How ←/→ move a number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    Add(u64),
    /// Halve or double: batch sizes, image sides.
    Double,
}

#[derive(Debug, Clone)]
struct Editing {
    text: String,
    error: Option<String>,
}

impl Field {
    pub fn choice(label: &'static str, options: &[&str], index: usize) -> Self {
        Self { label, value: Value::Choice { options: options.iter().map(|o| o.to_string()).collect(), index } }
    }

    pub fn number(label: &'static str, value: u64, min: u64, max: u64, step: Step) -> Self {
        Self { label, value: Value::Number { value, min, max, step } }
    }

    pub fn text(
        label: &'static str,
        text: &str,
        check: fn(&str) -> Result<(), String>,
        step: Option<fn(&str, bool) -> Option<String>>,
    ) -> Self {
        Self { label, value: Value::Text { text: text.to_string(), check, step } }
    }

    fn display(&self) -> String {
        match &self.value {
            Value::Choice { options, index } => options[*index].clone(),
            Value::Number { value, .. } => value.to_string(),
            Value::Text { text, .. } => text.clone(),
        }
    }

    fn change(&mut self, forward: bool) {
        match &mut self.value {
            Value::Choice { options, index } => {
                *index =
                    if forward { (*index + 1) % options.len() } else { (*index + options.len() - 1) % options.len() };
            }
            Value::Number { value, min, max, step } => {
                let next = match (step, forward) {
                    (Step::Add(n), true) => value.saturating_add(*n),
                    (Step::Add(n), false) => value.saturating_sub(*n),
                    (Step::Double, true) => value.saturating_mul(2),
                    (Step::Double, false) => *value / 2,
                };
                *value = next.clamp(*min, *max);
            }
            Value::Text { text, step: Some(step), .. } => {
                if let Some(next) = step(text, forward) {
                    *text = next;
                }
            }
            Value::Text { step: None, .. } => {}
        }
    }

    /// Accepts typed text, or says why not.
    fn accept(&mut self, typed: &str) -> Result<(), String> {
        let typed = typed.trim();
        match &mut self.value {
            Value::Choice { .. } => Ok(()),
            Value::Number { value, min, max, .. } => match typed.parse::<u64>() {
                Ok(n) if (*min..=*max).contains(&n) => {
                    *value = n;
                    Ok(())
                }
                _ => Err(format!("{}: enter a whole number from {min} to {max}", self.label)),
            },
            Value::Text { text, check, .. } => {
                check(typed).map_err(|why| format!("{}: {why}", self.label))?;
                *text = typed.to_string();
                Ok(())
            }
        }
    }
}

impl Form {
    pub fn new(fields: Vec<Field>) -> Self {
        Self { fields, selected: 0, editing: None }
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn is_editing(&self) -> bool {
        self.editing.is_some()
    }

    pub fn selected(&self) -> usize {
        self.selected
    }

    /// The index of the option chosen in a choice field.
    pub fn choice(&self, field: usize) -> usize {
        match &self.fields[field].value {
            Value::Choice { index, .. } => *index,
            other => panic!("field {field} is not a choice: {other:?}"),
        }
    }

    pub fn number(&self, field: usize) -> u64 {
        match &self.fields[field].value {
            Value::Number { value, .. } => *value,
            other => panic!("field {field} is not a number: {other:?}"),
        }
    }

    pub fn text(&self, field: usize) -> &str {
        match &self.fields[field].value {
            Value::Text { text, .. } => text,
            other => panic!("field {field} is not text: {other:?}"),
        }
    }

    /// Chooses option `index` of a choice field.
    pub fn set_choice(&mut self, field: usize, chosen: usize) {
        match &mut self.fields[field].value {
            Value::Choice { index, .. } => *index = chosen,
            other => panic!("field {field} is not a choice: {other:?}"),
        }
    }

    /// Sets a number field as if typed, checked the same way.
    pub fn set_number(&mut self, field: usize, value: u64) -> Result<(), String> {
        self.fields[field].accept(&value.to_string())
    }

    /// Sets a text field as if typed, checked the same way.
    pub fn set_text(&mut self, field: usize, text: &str) -> Result<(), String> {
        self.fields[field].accept(text)
    }

    /// The settings keys that apply: typing a value only where a field takes one.
    pub fn keys(&self) -> Vec<Key> {
        let typed = self.fields.iter().any(|field| !matches!(field.value, Value::Choice { .. }));
        keys::FORM.iter().filter(|key| typed || key.command != Command::Edit).copied().collect()
    }

    /// A key for the form: a settings key, or one typed into the value being edited.
    pub fn handle_key(&mut self, key: KeyEvent) {
        if let Some(editing) = &mut self.editing {
            match keys::find(&key, &[keys::EDITING]).map(|found| found.command) {
                Some(Command::Accept) => match self.fields[self.selected].accept(&editing.text) {
                    Ok(()) => self.editing = None,
                    Err(why) => editing.error = Some(why),
                },
                Some(_) => self.editing = None,
                None => match key.code {
                    KeyCode::Char(c) => {
                        editing.text.push(c);
                        editing.error = None;
                    }
                    KeyCode::Backspace => {
                        editing.text.pop();
                        editing.error = None;
                    }
                    _ => {}
                },
            }
            return;
        }
        if self.fields.is_empty() {
            return;
        }
        let count = self.fields.len();
        match keys::find(&key, &[keys::FORM]).map(|found| found.command) {
            Some(Command::NextField) => self.selected = (self.selected + 1) % count,
            Some(Command::PreviousField) => self.selected = (self.selected + count - 1) % count,
            Some(Command::Decrease) => self.fields[self.selected].change(false),
            Some(Command::Increase) => self.fields[self.selected].change(true),
            Some(Command::Edit) if !matches!(self.fields[self.selected].value, Value::Choice { .. }) => {
                self.editing = Some(Editing { text: self.fields[self.selected].display(), error: None });
            }
            _ => {}
        }
    }

    /// One line per field; the selected one is highlighted when the pane has the focus.
    pub fn lines(&self, theme: &Theme) -> Vec<Line<'static>> {
        let mut lines: Vec<Line> = self
            .fields
            .iter()
            .enumerate()
            .map(|(index, field)| {
                let selected = index == self.selected;
                let label = Span::styled(format!("  {:<LABEL_WIDTH$}", field.label), theme.dim());
                let value = match (&self.editing, selected) {
                    (Some(editing), true) => Span::styled(format!(" {}█ ", editing.text), theme.selected()),
                    _ => {
                        let arrows = matches!(field.value, Value::Choice { .. } | Value::Number { .. })
                            || matches!(field.value, Value::Text { step: Some(_), .. });
                        let text = if arrows && selected {
                            format!("‹ {} ›", field.display())
                        } else {
                            format!(" {} ", field.display())
                        };
                        Span::styled(text, if selected { theme.selected() } else { theme.base() })
                    }
                };
                Line::from(vec![label, value])
            })
            .collect();
        if let Some(Editing { error: Some(error), .. }) = &self.editing {
            lines.push(Line::styled(format!("  {error}"), theme.failed()));
        }
        lines
    }
}
