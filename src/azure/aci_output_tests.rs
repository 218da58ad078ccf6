use super::*;

fn marker() -> Marker {
    Marker::new("KIaaaa", "bbbbX").unwrap()
}

#[test]
fn typed_lines_never_contain_the_joined_marker() {
    let m = Marker::random();
    let typed = format!("{}{}", m.setup_line(), m.command_input("echo hi"));
    assert!(!typed.contains(&m.joined()), "{typed}");
    assert!(typed.contains(&m.head) && typed.contains(&m.tail));
    assert_ne!(Marker::random(), Marker::random());
    assert!(Marker::new("a b", "c").is_none());
    assert!(Marker::new("a'", "c").is_none());
}

#[test]
fn command_input_shape() {
    assert_eq!(
        marker().command_input("ls -l /\n"),
        "(\nls -l /\n)\nprintf '\\n%s%s:%s\\n' 'KIaaaa' 'bbbbX' \"$?\"\nexit\n"
    );
}

#[test]
fn strip_ansi_table() {
    let cases = [
        ("plain", "plain"),
        ("\x1b[31mred\x1b[0m", "red"),
        ("\x1b[?2004hprompt\x1b[?2004l", "prompt"),
        ("\x1b]0;title\x07text", "text"),
        ("\x1b]0;title\x1b\\text", "text"),
        ("a\x1b(Bb", "ab"),
        ("bell\x07 and nul\x00", "bell and nul"),
        ("keep\r\n\ttabs", "keep\r\n\ttabs"),
        ("cut\x1b[", "cut"),
        ("ünïcode ✓", "ünïcode ✓"),
    ];
    for (input, want) in cases {
        assert_eq!(strip_ansi(input), want, "{input:?}");
    }
}

#[test]
fn terminal_text_table() {
    let cases = [
        ("a\r\nb\r\n", "a\nb\n"),
        ("a\r\r\nb", "a\nb"),
        ("10%\r50%\r100%\n", "100%\n"),
        ("\x1b[1mbold\x1b[0m\r\n", "bold\n"),
    ];
    for (input, want) in cases {
        assert_eq!(terminal_text(input), want, "{input:?}");
    }
}

#[test]
fn find_ready_table() {
    let m = marker();
    let raw = "/ # stty -echo 2>/dev/null; PS1=''; PS2=''; printf '%s%s:ready\\n' 'KIaaaa' 'bbbbX'\r\nKIaaaabbbbX:ready\r\nrest";
    let at = find_ready(raw, &m).unwrap();
    assert_eq!(&raw[at..], "rest");
    // Not before the line ended: a "\r" now and the "\n" in the next piece would otherwise make
    // a blank first line of output.
    assert_eq!(find_ready("KIaaaabbbbX:ready", &m), None);
    assert_eq!(find_ready("KIaaaabbbbX:ready\r", &m), None);
    assert_eq!(find_ready("KIaaaabbbbX:ready\r\n", &m), Some(19));
    assert_eq!(
        find_ready("printf '%s%s:ready\\n' 'KIaaaa' 'bbbbX'\r\n", &m),
        None,
        "the echo is not the marker"
    );
}

#[test]
fn parse_shell_output_table() {
    let m = marker();
    let cmd = "kubectl get pods";
    // (raw after ready, output, exit code)
    let cases: Vec<(&str, &str, Option<i32>)> = vec![
        // Clean: echo off, empty prompt.
        (
            "pod-a\r\npod-b\r\n\r\nKIaaaabbbbX:0\r\n",
            "pod-a\npod-b\n",
            Some(0),
        ),
        // Output without a trailing newline.
        ("no newline\r\nKIaaaabbbbX:1\r\n", "no newline\n", Some(1)),
        // Empty output.
        ("\r\nKIaaaabbbbX:0\r\n", "", Some(0)),
        // Echo still on (no stty), prompts, escapes, bracketed paste.
        (
            "\x1b[?2004h# kubectl get pods\r\n\x1b[?2004lpod-a\r\n\x1b[?2004h# printf '\\n%s%s:%s\\n' 'KIaaaa' 'bbbbX' \"$?\"\r\n\x1b[?2004l\r\nKIaaaabbbbX:127\r\n\x1b[?2004h# exit\r\n",
            "pod-a\n",
            Some(127),
        ),
        // Kernel echo of typed-ahead lines first, then prompt-only lines.
        (
            "kubectl get pods\r\nprintf '\\n%s%s:%s\\n' 'KIaaaa' 'bbbbX' \"$?\"\r\nexit\r\n/ # \r\nerror: not found\r\n/ # \r\nKIaaaabbbbX:2\r\n",
            "error: not found\n",
            Some(2),
        ),
        // Output that merely looks like the command is kept once the echo was consumed.
        (
            "kubectl get pods\r\nkubectl get pods\r\n\r\nKIaaaabbbbX:0\r\n",
            "kubectl get pods\n",
            Some(0),
        ),
        // The shell died: no marker, no exit code, output kept.
        ("partial\r\n", "partial\n", None),
        // A garbled status value.
        ("x\r\n\r\nKIaaaabbbbX:abc\r\n", "x\n", None),
    ];
    for (raw, output, exit_code) in cases {
        let got = parse_shell_output(raw, cmd, &m);
        assert_eq!(
            (got.output.as_str(), got.exit_code),
            (output, exit_code),
            "{raw:?}"
        );
    }
}

#[test]
fn multi_line_commands_strip_each_echoed_line() {
    let m = marker();
    let cmd = "cd /tmp\nls";
    let raw = "$ cd /tmp\r\n$ ls\r\na.txt\r\n$ printf '\\n%s%s:%s\\n' 'KIaaaa' 'bbbbX' \"$?\"\r\n\r\nKIaaaabbbbX:0\r\n$ exit\r\n";
    let got = parse_shell_output(raw, cmd, &m);
    assert_eq!(got.output, "a.txt\n");
    assert_eq!(got.exit_code, Some(0));
}

#[test]
fn validate_direct_command_table() {
    for (cmd, ok) in [
        ("/bin/ls", true),
        ("date", true),
        ("ls -l", false),
        ("", false),
        ("a\tb", false),
        (" ", false),
    ] {
        assert_eq!(validate_direct_command(cmd).is_ok(), ok, "{cmd:?}");
    }
    assert!(
        validate_direct_command("ls /")
            .unwrap_err()
            .contains("set `shell`")
    );
}

#[test]
fn tail_buffer_keeps_the_end_at_a_char_boundary() {
    let mut t = TailBuffer::new(10);
    t.push(b"0123456789");
    t.push("abcdé".as_bytes());
    let (s, truncated) = t.into_string();
    assert!(truncated);
    assert!(s.ends_with("abcdé"));
    assert!(s.len() <= 10);
    let mut small = TailBuffer::new(100);
    small.push(b"short");
    assert_eq!(small.into_string(), ("short".to_string(), false));
    let mut cut = TailBuffer::new(3);
    cut.push("éé".as_bytes()); // 4 bytes, keep 3: starts in the middle of the first é
    assert_eq!(cut.into_string().0, "é");
}
