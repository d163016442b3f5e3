//! The child side of the jail. Runs after `fork` in a multithreaded parent, so it only makes syscalls
//! (no allocation, no locks): everything it needs was prepared by [`super::plan::JailPlan`].
//!
//! Three processes: the *supervisor* (the process `std::process::Command` forked) `clone`s the *init* into
//! new user, PID, mount, network, IPC and UTS namespaces, writes its uid/gid maps and waits for it. The init
//! (PID 1 of the new namespace, killed with its parent through `PR_SET_PDEATHSIG`) builds the private root,
//! forks the *program's process* (which returns to `Command` and is confined and exec'd), reaps everything
//! and reports on the status pipe. When the init exits the kernel kills every process left in the namespace,
//! so nothing the program started outlives it.

use std::io;
use std::os::fd::RawFd;

use super::plan::{JailPlan, Step, MAX_BINDS};

/// Status record: setting up the jail failed (`a` = stage, `b` = errno).
pub(crate) const TAG_SETUP_FAILED: i32 = 1;
/// Status record: landlock (`a` = 1 when enforced).
pub(crate) const TAG_LANDLOCK: i32 = 2;
/// Status record: the program ended (`a` = raw wait status, `b` = 1 when processes were left running).
pub(crate) const TAG_EXIT: i32 = 3;
/// Size of one status record.
pub(crate) const RECORD_BYTES: usize = 12;

/// Stages before and after the plan's steps (steps are numbered from 0).
pub(crate) const STAGE_MAPS: i32 = -1;
const STAGE_PRIVATE: i32 = -2;
const STAGE_ROOT_TMPFS: i32 = -3;
const STAGE_PIVOT: i32 = -4;
const STAGE_OLD_ROOT: i32 = -5;
const STAGE_READ_ONLY_ROOT: i32 = -6;
const STAGE_WORKDIR: i32 = -7;
const STAGE_FORK: i32 = -8;
const STAGE_IDENTITY: i32 = -9;

/// Exit status of the supervisor when the jail could not be built.
const EXIT_SETUP: i32 = 120;

/// Names a stage of a `TAG_SETUP_FAILED` record (`steps`: the plan's step descriptions).
pub(crate) fn stage_name(stage: i32, steps: &[String]) -> String {
    match stage {
        STAGE_MAPS => "writing the user namespace's uid/gid maps".into(),
        STAGE_PRIVATE => "making the mounts private".into(),
        STAGE_ROOT_TMPFS => "mounting the new root (tmpfs)".into(),
        STAGE_PIVOT => "pivot_root into the new root".into(),
        STAGE_OLD_ROOT => "unmounting the old root".into(),
        STAGE_READ_ONLY_ROOT => "making the new root read-only".into(),
        STAGE_WORKDIR => "entering /sandbox".into(),
        STAGE_FORK => "forking the program's process".into(),
        STAGE_IDENTITY => "becoming root of the user namespace".into(),
        i => steps
            .get(i as usize)
            .cloned()
            .unwrap_or_else(|| format!("stage {i}")),
    }
}

/// Writes one record to the status pipe (best effort: the parent treats a missing record as unknown).
pub(crate) fn report(fd: RawFd, tag: i32, a: i32, b: i32) {
    let mut rec = [0u8; RECORD_BYTES];
    rec[..4].copy_from_slice(&tag.to_ne_bytes());
    rec[4..8].copy_from_slice(&a.to_ne_bytes());
    rec[8..].copy_from_slice(&b.to_ne_bytes());
    // SAFETY: writing a local buffer to a pipe we hold.
    unsafe { libc::write(fd, rec.as_ptr().cast(), rec.len()) };
}

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn exit(code: i32) -> ! {
    // SAFETY: _exit never returns and runs no destructors or atexit handlers.
    unsafe { libc::_exit(code) }
}

/// Exit code for a raw wait status (signals as 128 + number, as shells do).
fn exit_code_of(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        1
    }
}

/// Closes file descriptors `lo..=hi`.
fn close_range(lo: u32, hi: u32) {
    if lo > hi {
        return;
    }
    // SAFETY: close_range/close on descriptors of this process only.
    unsafe {
        if libc::syscall(libc::SYS_close_range, lo, hi, 0) == 0 {
            return;
        }
        let mut lim: libc::rlimit = std::mem::zeroed();
        let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur.min(1 << 16) as u32
        } else {
            1024
        };
        for fd in lo..=hi.min(max) {
            libc::close(fd as libc::c_int);
        }
    }
}

/// Closes every descriptor but `keep`: stdio (the output pipes must close when the program's processes
/// end) and the one `Command` uses to learn whether `exec` worked (its `spawn` waits for that to close).
fn close_all_but(keep: RawFd) {
    close_range(0, keep as u32 - 1);
    close_range(keep as u32 + 1, u32::MAX);
}

/// Appends `bytes` to `buf` at `*at`.
fn put(buf: &mut [u8; 64], at: &mut usize, bytes: &[u8]) {
    for &b in bytes {
        buf[*at] = b;
        *at += 1;
    }
}

/// Appends the decimal digits of `n`.
fn put_number(buf: &mut [u8; 64], at: &mut usize, n: u32) {
    let mut digits = [0u8; 10];
    let (mut n, mut len) = (n, 0);
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in (0..len).rev() {
        put(buf, at, &digits[i..=i]);
    }
}

/// `/proc/<pid>/<name>` into `buf` as a C string.
fn proc_file<'a>(buf: &'a mut [u8; 64], pid: libc::pid_t, name: &[u8]) -> &'a [u8] {
    let mut at = 0;
    put(buf, &mut at, b"/proc/");
    put_number(buf, &mut at, pid as u32);
    put(buf, &mut at, b"/");
    put(buf, &mut at, name);
    put(buf, &mut at, b"\0");
    &buf[..at]
}

/// `/proc/<who>/fd/<fd>` into `buf` as a C string.
fn proc_path<'a>(buf: &'a mut [u8; 64], who: &[u8], fd: libc::c_int) -> &'a [u8] {
    let mut at = 0;
    put(buf, &mut at, b"/proc/");
    put(buf, &mut at, who);
    put(buf, &mut at, b"/fd/");
    put_number(buf, &mut at, fd as u32);
    put(buf, &mut at, b"\0");
    &buf[..at]
}

fn write_file(path: &[u8], data: &[u8]) -> Result<(), i32> {
    // SAFETY: path is NUL-terminated; data is a valid buffer.
    unsafe {
        let fd = libc::open(path.as_ptr().cast(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(errno());
        }
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        let e = errno();
        libc::close(fd);
        if n != data.len() as isize {
            return Err(e);
        }
    }
    Ok(())
}

fn write_maps(pid: libc::pid_t, plan: &JailPlan) -> Result<(), i32> {
    let mut buf = [0u8; 64];
    match write_file(proc_file(&mut buf, pid, b"setgroups"), b"deny") {
        Err(libc::ENOENT) | Ok(()) => {}
        Err(e) => return Err(e),
    }
    write_file(proc_file(&mut buf, pid, b"uid_map"), &plan.uid_map)?;
    write_file(proc_file(&mut buf, pid, b"gid_map"), &plan.gid_map)
}

/// Enters the jail. Called in the process `Command` forked; returns only in the program's process (which
/// `Command` then execs), inside the new root with `/sandbox` as its working directory.
pub(crate) fn enter(plan: &JailPlan, status: RawFd) -> io::Result<()> {
    let mut sync = [0 as libc::c_int; 2];
    // SAFETY: plain syscalls on this single-threaded child; no allocation below.
    unsafe {
        if libc::pipe2(sync.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return Err(io::Error::last_os_error());
        }
        let flags = libc::CLONE_NEWUSER
            | libc::CLONE_NEWPID
            | libc::CLONE_NEWNS
            | libc::CLONE_NEWNET
            | libc::CLONE_NEWIPC
            | libc::CLONE_NEWUTS;
        // Without a new stack `clone` behaves like `fork`.
        let pid = libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        );
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            libc::close(sync[1]);
            return init(plan, sync[0], status);
        }
        let pid = pid as libc::pid_t;
        libc::close(sync[0]);
        if let Err(e) = write_maps(pid, plan) {
            report(status, TAG_SETUP_FAILED, STAGE_MAPS, e);
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
            exit(EXIT_SETUP);
        }
        libc::write(sync[1], b"1".as_ptr().cast(), 1);
        libc::close(sync[1]);
        close_all_but(status);
        let mut st = 0;
        loop {
            let r = libc::waitpid(pid, &mut st, 0);
            if r == pid || (r < 0 && errno() != libc::EINTR) {
                break;
            }
        }
        exit(exit_code_of(st))
    }
}

/// PID 1 of the new namespace.
fn init(plan: &JailPlan, sync: RawFd, status: RawFd) -> io::Result<()> {
    // SAFETY: plain syscalls; no allocation.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        );
        let mut byte = 0u8;
        // EOF: the supervisor died before writing the maps.
        if libc::read(sync, (&mut byte as *mut u8).cast(), 1) != 1 {
            exit(EXIT_SETUP);
        }
        libc::close(sync);
        // Open the bind sources while still the creating user (a runtime under `/root` is reachable only so),
        // in this mount namespace (a bind from another namespace's mount is refused).
        let mut sources = [-1 as libc::c_int; MAX_BINDS];
        let mut n = 0;
        for (i, step) in plan.steps.iter().enumerate() {
            if let Step::Bind { source, .. } = step {
                let fd = libc::open(source.as_ptr(), libc::O_PATH | libc::O_CLOEXEC);
                if fd < 0 || n == MAX_BINDS {
                    report(status, TAG_SETUP_FAILED, i as i32, errno());
                    exit(EXIT_SETUP);
                }
                sources[n] = fd;
                n += 1;
            }
        }
        // Credentials do not change when the maps are written: become the namespace's root (the mapped,
        // unprivileged user outside) so that file access and RLIMIT_NPROC apply to that user.
        if libc::setresgid(0, 0, 0) != 0 || libc::setresuid(0, 0, 0) != 0 {
            report(status, TAG_SETUP_FAILED, STAGE_IDENTITY, errno());
            exit(EXIT_SETUP);
        }
        if let Err((stage, e)) = build_root(plan, &sources) {
            report(status, TAG_SETUP_FAILED, stage, e);
            exit(EXIT_SETUP);
        }
        let program = libc::fork();
        if program == 0 {
            return Ok(());
        }
        if program < 0 {
            report(status, TAG_SETUP_FAILED, STAGE_FORK, errno());
            exit(EXIT_SETUP);
        }
        close_all_but(status);
        let mut program_status = None;
        let mut st = 0;
        while program_status.is_none() {
            let r = libc::waitpid(-1, &mut st, 0);
            if r == program {
                program_status = Some(st);
            } else if r < 0 && errno() != libc::EINTR {
                break;
            }
        }
        // Anything still alive now was started by the program and outlived it.
        let mut strays = 0;
        loop {
            let r = libc::waitpid(-1, &mut st, libc::WNOHANG);
            if r > 0 {
                continue;
            }
            if r == 0 {
                strays = 1;
            }
            break;
        }
        let program_status = program_status.unwrap_or(0);
        report(status, TAG_EXIT, program_status, strays);
        exit(exit_code_of(program_status))
    }
}

fn check(stage: i32, result: libc::c_int) -> Result<(), (i32, i32)> {
    if result < 0 {
        Err((stage, errno()))
    } else {
        Ok(())
    }
}

/// Builds the private root on a tmpfs mounted over `/tmp` (sources are reached through their open
/// descriptors, so covering `/tmp` hides nothing the plan needs), then `pivot_root`s into it.
fn build_root(plan: &JailPlan, sources: &[libc::c_int]) -> Result<(), (i32, i32)> {
    let mut next_source = 0;
    let null = std::ptr::null::<libc::c_char>();
    // SAFETY: syscalls with NUL-terminated strings that live in `plan` or are literals.
    unsafe {
        check(
            STAGE_PRIVATE,
            libc::mount(
                null,
                c"/".as_ptr(),
                null,
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ),
        )?;
        check(
            STAGE_ROOT_TMPFS,
            libc::mount(
                c"tmpfs".as_ptr(),
                c"/tmp".as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                c"size=1m,mode=0755".as_ptr().cast(),
            ),
        )?;
        check(STAGE_ROOT_TMPFS, libc::chdir(c"/tmp".as_ptr()))?;
        for (i, step) in plan.steps.iter().enumerate() {
            let i = i as i32;
            match step {
                Step::Dir(d) => {
                    if libc::mkdir(d.as_ptr(), 0o755) != 0 && errno() != libc::EEXIST {
                        return Err((i, errno()));
                    }
                }
                Step::File(f) => {
                    let fd = libc::open(
                        f.as_ptr(),
                        libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                        0o644,
                    );
                    check(i, fd)?;
                    libc::close(fd);
                }
                Step::Symlink { target, link } => {
                    if libc::symlink(target.as_ptr(), link.as_ptr()) != 0 && errno() != libc::EEXIST
                    {
                        return Err((i, errno()));
                    }
                }
                Step::Bind {
                    dest,
                    remount_flags,
                    ..
                } => {
                    let mut buf = [0u8; 64];
                    let source = proc_path(&mut buf, b"self", sources[next_source]);
                    next_source += 1;
                    check(
                        i,
                        libc::mount(
                            source.as_ptr().cast(),
                            dest.as_ptr(),
                            null,
                            libc::MS_BIND | libc::MS_REC,
                            std::ptr::null(),
                        ),
                    )?;
                    if let Some(flags) = remount_flags {
                        check(
                            i,
                            libc::mount(null, dest.as_ptr(), null, *flags, std::ptr::null()),
                        )?;
                    }
                }
                Step::Proc(d) => check(
                    i,
                    libc::mount(
                        c"proc".as_ptr(),
                        d.as_ptr(),
                        c"proc".as_ptr(),
                        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                        std::ptr::null(),
                    ),
                )?,
            }
        }
        let dot = c".".as_ptr();
        check(
            STAGE_PIVOT,
            libc::syscall(libc::SYS_pivot_root, dot, dot) as libc::c_int,
        )?;
        check(STAGE_OLD_ROOT, libc::umount2(dot, libc::MNT_DETACH))?;
        check(STAGE_OLD_ROOT, libc::chdir(c"/".as_ptr()))?;
        check(
            STAGE_READ_ONLY_ROOT,
            libc::mount(
                null,
                c"/".as_ptr(),
                null,
                libc::MS_REMOUNT
                    | libc::MS_BIND
                    | libc::MS_RDONLY
                    | libc::MS_NOSUID
                    | libc::MS_NODEV,
                std::ptr::null(),
            ),
        )?;
        let host = b"tuneup-sandbox";
        libc::sethostname(host.as_ptr().cast(), host.len());
        check(STAGE_WORKDIR, libc::chdir(plan.workdir.as_ptr()))?;
    }
    Ok(())
}
