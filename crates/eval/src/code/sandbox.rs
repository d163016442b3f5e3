//! Runs one untrusted program in a scratch folder under resource limits.
//!
//! The child gets an empty environment (only `PATH`, `HOME` and `TMPDIR`, both pointing at the scratch folder),
//! no stdin, its own process group (killed as a whole on timeout and after exit, so grandchildren die too),
//! `RLIMIT_AS` (address space), `RLIMIT_CPU`, `RLIMIT_FSIZE` (files it writes), no core dumps, and — where the
//! kernel allows it — its own empty network namespace (`unshare(CLONE_NEWNET)`, with a user namespace when not
//! root), so it cannot reach any network, loopback services of the host included.

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

/// Limits for one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxLimits {
    /// Wall-clock limit; the process group is killed after it.
    pub timeout: Duration,
    /// Address-space limit in bytes (`RLIMIT_AS`); `None` for runtimes that reserve huge virtual ranges
    /// (the JVM), which are limited by their own flags instead.
    pub memory_bytes: Option<u64>,
    /// Largest file the program may write.
    pub file_bytes: u64,
    /// Bytes kept of stdout and of stderr each (the rest is read and dropped).
    pub output_bytes: usize,
}

impl Default for SandboxLimits {
    /// 10 s, 2 GiB address space, 64 MiB files, 64 KiB of output.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            memory_bytes: Some(2 << 30),
            file_bytes: 64 << 20,
            output_bytes: 64 << 10,
        }
    }
}

/// How the program was kept off the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkIsolation {
    /// Its own network namespace (no interfaces but a down loopback).
    Namespace,
    /// The kernel refused namespaces; only the language-level guard (Python's socket is replaced) applies.
    GuardOnly,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxOutcome {
    /// Exit code, when the process exited.
    pub code: Option<i32>,
    /// Signal that ended it, when one did.
    pub signal: Option<i32>,
    /// Killed at the wall-clock limit (or by `RLIMIT_CPU`).
    pub timed_out: bool,
    /// Captured stdout (truncated to the limit, lossy UTF-8).
    pub stdout: String,
    /// Captured stderr (truncated to the limit, lossy UTF-8).
    pub stderr: String,
    /// Wall-clock time.
    pub elapsed: Duration,
    /// Network isolation in force.
    pub isolation: NetworkIsolation,
}

impl SandboxOutcome {
    /// Exited with status 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Whether network namespaces work here (probed once by running `true` in one).
pub fn network_isolation() -> NetworkIsolation {
    static PROBE: OnceLock<NetworkIsolation> = OnceLock::new();
    *PROBE.get_or_init(|| {
        let mut probe = Command::new("true");
        probe.stdout(Stdio::null()).stderr(Stdio::null());
        // SAFETY: the closure only calls async-signal-safe libc functions (unshare).
        unsafe { probe.pre_exec(enter_network_namespace) };
        match probe.status() {
            Ok(s) if s.success() => NetworkIsolation::Namespace,
            _ => NetworkIsolation::GuardOnly,
        }
    })
}

/// `unshare(CLONE_NEWNET)`, with a new user namespace when that alone is not permitted (non-root).
fn enter_network_namespace() -> std::io::Result<()> {
    // SAFETY: plain syscalls on the forked child, no allocation.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNET) == 0 {
            return Ok(());
        }
        if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) == 0 {
            return Ok(());
        }
    }
    Err(std::io::Error::last_os_error())
}

fn set_limit(resource: libc::__rlimit_resource_t, value: u64) -> std::io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: value as libc::rlim_t,
        rlim_max: value as libc::rlim_t,
    };
    // SAFETY: setrlimit with a valid pointer to a local struct.
    if unsafe { libc::setrlimit(resource, &limit) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Runs `command` in `dir` under `limits`; waits at most `limits.timeout`.
pub fn run_sandboxed(
    mut command: Command,
    dir: &Path,
    limits: SandboxLimits,
) -> std::io::Result<SandboxOutcome> {
    let isolation = network_isolation();
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", path)
        .env("HOME", dir)
        .env("TMPDIR", dir)
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let cpu_seconds = limits.timeout.as_secs() + 2;
    let SandboxLimits {
        memory_bytes,
        file_bytes,
        ..
    } = limits;
    let pre_exec = move || -> std::io::Result<()> {
        // SAFETY: setpgid on ourselves in the forked child.
        if unsafe { libc::setpgid(0, 0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if let Some(bytes) = memory_bytes {
            set_limit(libc::RLIMIT_AS, bytes)?;
        }
        set_limit(libc::RLIMIT_CPU, cpu_seconds)?;
        set_limit(libc::RLIMIT_FSIZE, file_bytes)?;
        set_limit(libc::RLIMIT_CORE, 0)?;
        if isolation == NetworkIsolation::Namespace {
            enter_network_namespace()?;
        }
        Ok(())
    };
    // SAFETY: the closure only makes async-signal-safe syscalls (setpgid, setrlimit, unshare).
    unsafe { command.pre_exec(pre_exec) };
    let start = Instant::now();
    let mut child = command.spawn()?;
    let pgid = child.id() as libc::pid_t;
    let readers = [
        child.stdout.take().map(|s| capture(s, limits.output_bytes)),
        child.stderr.take().map(|s| capture(s, limits.output_bytes)),
    ];
    let deadline = start + limits.timeout;
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            kill_group(pgid);
            break child.wait()?;
        }
        thread::sleep(Duration::from_millis(5));
    };
    let elapsed = start.elapsed();
    // Grandchildren may still hold the pipes open.
    kill_group(pgid);
    let [stdout, stderr] = readers.map(|r| r.and_then(|h| h.join().ok()).unwrap_or_default());
    let signal = status.signal();
    timed_out |= signal == Some(libc::SIGXCPU);
    Ok(SandboxOutcome {
        code: status.code(),
        signal,
        timed_out,
        stdout,
        stderr,
        elapsed,
        isolation,
    })
}

fn kill_group(pgid: libc::pid_t) {
    // SAFETY: sending a signal to a process group we created; failure (already gone) is fine.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

fn capture(mut source: impl Read + Send + 'static, keep: usize) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match source.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = keep.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }
        String::from_utf8_lossy(&kept).into_owned()
    })
}
