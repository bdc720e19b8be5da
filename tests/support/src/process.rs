//! A child process that is ended by its PID when the guard drops, pass or fail.

use std::process::Child;

/// Owns a child this test started; on drop sends SIGTERM, then SIGKILL if it has not exited, and reaps it.
pub struct ChildGuard {
    child: Option<Child>,
    what: String,
}

impl ChildGuard {
    /// Guards `child`; `what` names it in messages (`qemu`, `registry`, `etcd`).
    pub fn new(child: Child, what: impl Into<String>) -> Self {
        Self { child: Some(child), what: what.into() }
    }

    /// The child's PID, for signals, /proc reads and messages.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The name given in [`ChildGuard::new`].
    pub fn what(&self) -> &str {
        &self.what
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        let pid = child.id().to_string();
        let _ = std::process::Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..50 {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Runs `cmd` to its end with stdout and stderr captured and `stdin` fed to it (or /dev/null). A run still going
/// after `timeout` is killed by its PID and the test fails naming `what` and showing what it printed so far: a
/// hung client fails the test instead of stalling CI.
pub fn output_within(cmd: &mut std::process::Command, stdin: Option<&[u8]>, timeout: std::time::Duration, what: &str) -> std::process::Output {
    use std::io::{Read, Write};
    use std::process::Stdio;
    use std::sync::{Arc, Mutex};

    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("start {what}: {e}"));
    // Readers keep what arrived in a shared buffer, so a timeout can still show the partial output.
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let handle = std::thread::spawn(move || {
            let Some(mut pipe) = pipe else { return };
            let mut chunk = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(&chunk[..n]);
            }
        });
        (buf, handle)
    };
    let (out, out_thread) = reader(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let (err, err_thread) = reader(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let input = input.to_vec();
        // a writer thread: a child that does not read all its input must not block the deadline
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if std::time::Instant::now() < deadline => std::thread::sleep(std::time::Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                let take = |b: &Arc<Mutex<Vec<u8>>>| String::from_utf8_lossy(&b.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
                panic!("{what} did not finish within {timeout:?} (killed pid {}); stdout: {}; stderr: {}", child.id(), take(&out), take(&err));
            }
            Err(e) => panic!("wait for {what}: {e}"),
        }
    };
    let _ = out_thread.join();
    let _ = err_thread.join();
    let take = |b: Arc<Mutex<Vec<u8>>>| std::mem::take(&mut *b.lock().unwrap_or_else(|e| e.into_inner()));
    std::process::Output { status, stdout: take(out), stderr: take(err) }
}
