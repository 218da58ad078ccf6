//! Typing into an ACI exec terminal and turning its stream into command output and an exit code
//! (pure functions).
//!
//! ACI exec runs one executable on a PTY and reports no exit code. To run a command line we exec a
//! shell and type into it: first a setup line (no echo, no line editing, empty prompts) ending in a
//! "ready" marker, then the command, a line printing `$?` framed by the marker, and `exit`. The
//! marker is printed from two halves passed as separate arguments, so the shell's echo of what we
//! typed never contains the joined marker; only the output of `printf` does.

use std::fmt;

/// A per-run random marker, in two halves that are joined only by the remote `printf`.
#[derive(Clone, PartialEq, Eq)]
pub struct Marker {
    head: String,
    tail: String,
}

impl fmt::Debug for Marker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Marker({}|{})", self.head, self.tail)
    }
}

impl Marker {
    pub fn random() -> Self {
        let hex = uuid::Uuid::new_v4().simple().to_string();
        Self {
            head: format!("KI{}", &hex[..10]),
            tail: format!("{}X", &hex[10..20]),
        }
    }

    /// Halves must be plain alphanumerics (they are typed inside single quotes).
    pub fn new(head: &str, tail: &str) -> Option<Self> {
        let ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric());
        (ok(head) && ok(tail)).then(|| Self {
            head: head.into(),
            tail: tail.into(),
        })
    }

    fn joined(&self) -> String {
        format!("{}{}:", self.head, self.tail)
    }

    /// The first thing typed: silence the terminal, then say "ready". Bash's line editor writes a
    /// line end for every line it accepts even with the echo off, so bash gets it switched off
    /// (it then reads lines like dash does; busybox's falls back to that by itself without echo).
    pub fn setup_line(&self) -> String {
        format!(
            "stty -echo 2>/dev/null; [ -z \"$BASH_VERSION\" ] || set +o emacs +o vi; PS1=''; PS2=''; printf '%s%s:ready\\n' '{}' '{}'\n",
            self.head, self.tail
        )
    }

    fn status_line(&self) -> String {
        format!(
            "printf '\\n%s%s:%s\\n' '{}' '{}' \"$?\"",
            self.head, self.tail
        )
    }

    /// What is typed once the shell is ready: the command in a subshell (so an `exit N` in it
    /// ends only the subshell and `$?` is still reported), the status line, `exit`.
    pub fn command_input(&self, command: &str) -> String {
        format!(
            "(\n{}\n)\n{}\nexit\n",
            command.trim_end_matches('\n'),
            self.status_line()
        )
    }

    fn typed_lines(&self, command: &str) -> Vec<String> {
        let mut lines: Vec<String> = command
            .trim_end_matches('\n')
            .split('\n')
            .map(|l| l.trim_end().to_string())
            .collect();
        lines.push(self.status_line());
        lines.push("exit".to_string());
        lines
    }
}

/// Removes terminal escape sequences (CSI, OSC, and two-byte escapes) and other control bytes
/// except `\n`, `\r` and `\t`.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                Some('[') => {
                    // CSI: parameters and intermediates, then one final byte in @..~
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                Some(']') | Some('P') | Some('_') | Some('^') => {
                    // OSC/DCS/APC/PM: until BEL or ESC \
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' {
                            break;
                        }
                        if c == '\u{1b}' && chars.peek() == Some(&'\\') {
                            chars.next();
                            break;
                        }
                    }
                }
                Some('(') | Some(')') | Some('#') => {
                    chars.next();
                }
                _ => {}
            },
            '\n' | '\r' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// What a terminal would show: escapes removed, `\r\n` → `\n`, and a bare `\r` returning to the
/// start of the line (so the text after the last one wins).
pub fn terminal_text(raw: &str) -> String {
    let clean = strip_ansi(raw);
    let lines: Vec<&str> = clean
        .split('\n')
        .map(|line| {
            let line = line.trim_end_matches('\r');
            line.rsplit('\r').next().unwrap_or(line)
        })
        .collect();
    lines.join("\n")
}

/// Byte offset in `raw` just after the line that says the shell is ready, once that whole line
/// came: the terminal may deliver its `\r` and its `\n` in two pieces, and the `\n` is not output.
pub fn find_ready(raw: &str, marker: &Marker) -> Option<usize> {
    let needle = format!("{}ready", marker.joined());
    let at = raw.find(&needle)? + needle.len();
    let rest = &raw[at..];
    Some(at + rest.find('\n')? + 1)
}

#[derive(Clone, PartialEq, Eq)]
pub struct ShellOutput {
    pub output: String,
    /// `None` when the status line never came (the shell died, or the command swallowed stdin).
    pub exit_code: Option<i32>,
    /// The status line came: the shell got past the command (its value may still be unreadable).
    pub status_seen: bool,
}

impl fmt::Debug for ShellOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShellOutput")
            .field("output", &format_args!("<{} bytes>", self.output.len()))
            .field("exit_code", &self.exit_code)
            .field("status_seen", &self.status_seen)
            .finish()
    }
}

/// A line that is only a shell prompt, like `# `, `$ `, `/app # ` or `sh-5.2$ `.
fn is_prompt_only(line: &str) -> bool {
    line.len() <= 40
        && ["# ", "$ ", "> "].iter().any(|p| {
            line.strip_suffix(p)
                .is_some_and(|rest| !rest.trim().contains(char::is_whitespace))
        })
}

/// The line is the echo of `typed`, possibly after a prompt.
fn is_echo_of(line: &str, typed: &str) -> bool {
    if typed.is_empty() {
        return false;
    }
    let line = line.trim_end();
    line == typed || line.strip_suffix(typed).is_some_and(is_prompt_only)
}

/// Output and exit code from what the shell printed after "ready".
/// Echo of the typed lines (if `stty -echo` failed) and prompt-only lines are dropped.
pub fn parse_shell_output(after_ready: &str, command: &str, marker: &Marker) -> ShellOutput {
    let text = terminal_text(after_ready);
    let joined = marker.joined();
    let lines: Vec<&str> = text.split('\n').collect();
    let marker_at = lines
        .iter()
        .rposition(|l| l.trim_start().starts_with(&joined));
    let (body, exit_code) = match marker_at {
        Some(i) => {
            let value = lines[i].trim_start()[joined.len()..].trim();
            (&lines[..i], value.parse::<i32>().ok())
        }
        None => (&lines[..], None),
    };
    let typed = marker.typed_lines(command);
    let mut next_typed = 0;
    let mut kept: Vec<&str> = Vec::with_capacity(body.len());
    for line in body {
        // The echo of the subshell's `(` and `)` (if the terminal echoes at all) may come in any
        // order relative to the output; a line that is only one of them is dropped.
        if is_echo_of(line, "(") || is_echo_of(line, ")") {
            continue;
        }
        if next_typed < typed.len() && is_echo_of(line, &typed[next_typed]) {
            next_typed += 1;
            continue;
        }
        if is_prompt_only(line) {
            continue;
        }
        kept.push(line);
    }
    if marker_at.is_some() {
        // The status line starts with '\n' so the marker has its own line; drop that blank line.
        if kept.last() == Some(&"") {
            kept.pop();
        }
    } else {
        // No marker: the stream ended somewhere; a trailing empty piece is not output.
        while kept.last() == Some(&"") {
            kept.pop();
        }
    }
    let mut output = kept.join("\n");
    if !output.is_empty() {
        output.push('\n');
    }
    ShellOutput {
        output,
        exit_code,
        status_seen: marker_at.is_some(),
    }
}

/// Splits typed input into websocket messages of at most `max_bytes` (at least 4), never inside a
/// UTF-8 character. Real clients send keystrokes, not whole scripts, and the service cuts longer
/// messages (50 characters: azure-sdk-for-js #6487, azure-sdk-for-node #5127).
pub fn input_frames(text: &str, max_bytes: usize) -> Vec<&str> {
    let max = max_bytes.max(4);
    let mut frames = Vec::with_capacity(text.len() / max + 1);
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = rest.len().min(max);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        frames.push(&rest[..end]);
        rest = &rest[end..];
    }
    frames
}

/// Without a shell, `command` is exec'd as one executable: no arguments, so no whitespace.
pub fn validate_direct_command(command: &str) -> Result<(), String> {
    if command.trim().is_empty() {
        return Err("command is empty".to_string());
    }
    if command.chars().any(char::is_whitespace) {
        return Err(format!(
            "ACI exec runs a single executable without arguments, but command '{}' contains whitespace; \
             set `shell` (e.g. /bin/sh) to run a command line",
            command.chars().take(80).collect::<String>()
        ));
    }
    Ok(())
}

/// The longest line a terminal in canonical mode takes: Linux's N_TTY buffer holds 4096 bytes, the
/// newline included, and silently drops what comes past it (the emulator's real PTY does the same).
pub const MAX_TYPED_LINE_BYTES: usize = 4095;

/// A command typed into a shell: no line may be longer than the terminal takes, or the shell would
/// run a shortened, different command. Refused before anything is sent.
pub fn validate_shell_command(command: &str) -> Result<(), String> {
    if command.trim().is_empty() {
        return Err("command is empty".to_string());
    }
    // The terminal ends a line at '\n' and at '\r' (ICRNL).
    for (n, line) in command.split(['\n', '\r']).enumerate() {
        if line.len() > MAX_TYPED_LINE_BYTES {
            return Err(format!(
                "line {} of the command has {} bytes; a terminal line takes at most {MAX_TYPED_LINE_BYTES} \
                 (Linux's canonical-mode limit) and would cut it into a different command: split it into \
                 shorter lines, or put the long part in a file",
                n + 1,
                line.len()
            ));
        }
    }
    Ok(())
}

/// Keeps the last `max` bytes of a stream.
#[derive(Debug, Default)]
pub struct TailBuffer {
    buf: Vec<u8>,
    max: usize,
    pub truncated: bool,
}

impl TailBuffer {
    pub fn new(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            max,
            truncated: false,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        // Trim in batches so pushing stays linear.
        if self.buf.len() > self.max.saturating_mul(2).max(64 * 1024) {
            self.trim();
        }
    }

    fn trim(&mut self) {
        if self.buf.len() > self.max {
            let cut = self.buf.len() - self.max;
            self.buf.drain(..cut);
            self.truncated = true;
        }
    }

    /// The kept tail as text, starting at a character boundary.
    pub fn into_string(mut self) -> (String, bool) {
        self.trim();
        let mut start = 0;
        if self.truncated {
            // Skip UTF-8 continuation bytes cut in half.
            while start < self.buf.len()
                && start < 4
                && (self.buf[start] & 0b1100_0000) == 0b1000_0000
            {
                start += 1;
            }
        }
        (
            String::from_utf8_lossy(&self.buf[start..]).into_owned(),
            self.truncated,
        )
    }
}

#[cfg(test)]
#[path = "aci_output_tests.rs"]
mod tests;
