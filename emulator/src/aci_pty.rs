//! One ACI exec process on a real pseudo-terminal. Echo, `\r` → `\n` on input, `\n` → `\r\n` on
//! output, Ctrl-C / Ctrl-D and the 4095-byte cut of a canonical-mode input line all come from the
//! kernel's line discipline and the program itself, as in a container.

use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// A running process whose stdin, stdout and stderr are the slave side of a new PTY; it is the
/// leader of a new session with that terminal as its controlling terminal.
pub struct PtyProcess {
    pub child: tokio::process::Child,
    /// Terminal output as it comes; closed once no process holds the terminal open any more.
    pub output: mpsc::Receiver<Vec<u8>>,
    input: mpsc::UnboundedSender<Vec<u8>>,
}

impl PtyProcess {
    /// Starts `exe` without arguments in `dir` on a `rows` × `cols` terminal.
    pub fn spawn(exe: &Path, dir: &Path, rows: u16, cols: u16) -> std::io::Result<Self> {
        let (pty, pts) = pty_process::open().map_err(std::io::Error::other)?;
        pty.resize(pty_process::Size::new(rows, cols))
            .map_err(std::io::Error::other)?;
        let child = pty_process::Command::new(exe)
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", dir)
            .env("TERM", "xterm")
            .kill_on_drop(true)
            .spawn(pts)
            .map_err(std::io::Error::other)?;
        let (mut reader, mut writer) = pty.into_split();
        let (out_tx, output) = mpsc::channel::<Vec<u8>>(64);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                // EIO once the last holder of the slave side closed it: the end of the output.
                // Dropping the process ends this task too, which closes the master side: the
                // terminal hangs up even if something in the background still holds it.
                let n = tokio::select! {
                    read = reader.read(&mut buf) => match read {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    },
                    _ = out_tx.closed() => return,
                };
                if out_tx.send(buf[..n].to_vec()).await.is_err() {
                    return;
                }
            }
        });
        // Input is written by its own task: a program that does not read its terminal must not
        // stop the session from forwarding output or noticing the end.
        let (input, mut in_rx) = mpsc::unbounded_channel::<Vec<u8>>();
        tokio::spawn(async move {
            while let Some(bytes) = in_rx.recv().await {
                if writer.write_all(&bytes).await.is_err() {
                    return;
                }
            }
        });
        Ok(Self {
            child,
            output,
            input,
        })
    }

    /// Types `bytes` into the terminal (as keystrokes: the line discipline sees them).
    pub fn type_in(&self, bytes: Vec<u8>) {
        let _ = self.input.send(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn collect_until(p: &mut PtyProcess, needle: &str) -> String {
        let mut seen = Vec::new();
        let read = async {
            while let Some(chunk) = p.output.recv().await {
                seen.extend_from_slice(&chunk);
                if String::from_utf8_lossy(&seen).contains(needle) {
                    break;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} in {:?}", String::from_utf8_lossy(&seen)));
        String::from_utf8_lossy(&seen).into_owned()
    }

    #[tokio::test]
    async fn the_kernel_echoes_and_translates_newlines() {
        let dir = std::env::temp_dir();
        let mut p = PtyProcess::spawn(Path::new("/bin/sh"), &dir, 24, 132).unwrap();
        p.type_in(b"stty size; echo x$((40+2))y\r".to_vec());
        let text = collect_until(&mut p, "x42y\r\n").await;
        assert!(text.contains("echo x$((40+2))y\r\n"), "echo: {text:?}");
        assert!(text.contains("24 132\r\n"), "window size: {text:?}");
        p.type_in(b"exit 0\n".to_vec());
        let status = tokio::time::timeout(Duration::from_secs(10), p.child.wait())
            .await
            .expect("the shell exits")
            .unwrap();
        assert!(status.success());
    }
}
