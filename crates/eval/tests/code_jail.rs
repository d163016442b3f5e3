//! Hostile model answers run for real through the code checker: each attack must fail or be contained.
//! Early exit before the tests, reading and writing the user's home folder, a detached process holding stdout
//! open, a fork bomb — in the full jail, and (where it matters) at the weaker levels the sandbox falls back to.
//! (A connection to a port on the host: `code_exec.rs`, `programs_cannot_reach_the_network_or_the_environment`.)

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tuneup_eval::code::sandbox::{isolation, jail_unavailable_reason, Isolation, SandboxLimits};
use tuneup_eval::code::{CodeChecker, CodeErrorType, CodeProblem, CodeVerdict, Language};

const PROMPT: &str = "def add(a, b):\n";
const TEST: &str =
    "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(2, 2) == 4\n";

fn problem() -> CodeProblem<'static> {
    CodeProblem {
        language: Language::Python,
        prompt: PROMPT,
        test: TEST,
        entry_point: Some("add"),
    }
}

fn checker(timeout_s: u64) -> CodeChecker {
    CodeChecker::new(SandboxLimits {
        timeout: Duration::from_secs(timeout_s),
        memory_bytes: Some(512 << 20),
        ..SandboxLimits::default()
    })
}

fn run(checker: &CodeChecker, code: &str) -> CodeVerdict {
    checker.check(&problem(), code).unwrap()
}

/// A file in the real home folder, removed on drop.
struct HomeFile(PathBuf);

impl HomeFile {
    fn new(name: &str) -> Self {
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
        Self(home.join(format!("{name}-{}", std::process::id())))
    }
}

impl Drop for HomeFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn the_full_jail_and_landlock_are_in_force_here() {
    // This machine and CI run as root in a container where `unshare --user --pid --mount --net` works and
    // the kernel has landlock; a machine without them gets a weaker level (and a warning), tested below.
    if std::env::var_os("TUNEUP_SANDBOX_WEAK_OK").is_some() {
        eprintln!("skipping: TUNEUP_SANDBOX_WEAK_OK is set");
        return;
    }
    assert_eq!(
        isolation(),
        Isolation::Jail,
        "{:?}",
        jail_unavailable_reason()
    );
    let v = run(&checker(5), "def add(a, b):\n    return a + b\n");
    assert!(v.passed, "{v:?}");
    assert_eq!(v.sandbox.isolation, Isolation::Jail);
    assert!(v.sandbox.landlock, "landlock not enforced: {v:?}");
}

#[test]
fn a_correct_answer_passes_and_a_wrong_one_fails() {
    let c = checker(5);
    assert!(run(&c, "    return a + b\n").passed);
    let v = run(&c, "    return a - b\n");
    assert_eq!(v.error_type, Some(CodeErrorType::TestFailed), "{v:?}");
}

#[test]
fn exiting_with_status_0_before_the_tests_is_a_failure() {
    let c = checker(5);
    for code in [
        "def add(a, b):\n    return a - b\nimport os\nos._exit(0)\n",
        "def add(a, b):\n    return a - b\nraise SystemExit(0)\n",
        "def add(a, b):\n    return a - b\nimport sys\nsys.stdout.flush()\nsys.exit()\n",
    ] {
        let v = run(&c, code);
        assert!(!v.passed, "{code}: {v:?}");
        assert_eq!(v.error_type, Some(CodeErrorType::RuntimeError), "{code}");
        assert!(
            v.message
                .as_deref()
                .unwrap_or("")
                .contains("exited before its tests finished"),
            "{v:?}"
        );
    }
}

fn home_attacks(c: &CodeChecker) {
    let secret = HomeFile::new("tuneup-jail-secret");
    let content = format!("classified {}", std::process::id() * 7);
    std::fs::write(&secret.0, &content).unwrap();
    // Reads the secret and passes the tests when it can.
    let read = format!(
        "def add(a, b):\n    return a + b\nprint(open({:?}).read())\n",
        secret.0.display().to_string()
    );
    let v = run(c, &read);
    assert!(!v.passed, "read the home folder: {v:?}");
    assert!(!format!("{v:?}").contains(&content), "{v:?}");

    let written = HomeFile::new("tuneup-jail-written");
    let write = format!(
        "def add(a, b):\n    return a + b\ntry:\n    open({:?}, 'w').write('x')\nexcept OSError:\n    pass\n",
        written.0.display().to_string()
    );
    let v = run(c, &write);
    assert!(
        v.passed,
        "the answer is right and swallows the error: {v:?}"
    );
    assert!(
        !written.0.exists(),
        "the program wrote into the home folder"
    );
}

#[test]
fn the_home_folder_can_be_neither_read_nor_written() {
    home_attacks(&checker(5));
}

#[test]
fn the_system_folders_are_read_only() {
    let marker = format!("/usr/tuneup-jail-{}", std::process::id());
    let code = format!(
        "def add(a, b):\n    return a + b\ntry:\n    open({marker:?}, 'w').write('x')\nexcept OSError:\n    pass\n"
    );
    let v = run(&checker(5), &code);
    assert!(v.passed, "{v:?}");
    assert!(!std::path::Path::new(&marker).exists());
}

#[test]
fn a_detached_process_holding_stdout_cannot_hang_the_evaluation() {
    let c = checker(3);
    let code = "import subprocess\nsubprocess.Popen(['sleep', '297.5'], start_new_session=True)\ndef add(a, b):\n    return a + b\n";
    let start = Instant::now();
    let v = run(&c, code);
    let took = start.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}");
    if v.sandbox.isolation == Isolation::Jail {
        assert!(!v.passed, "{v:?}");
        assert!(
            v.message
                .as_deref()
                .unwrap_or("")
                .contains("left processes running"),
            "{v:?}"
        );
        let listing = tuneup_test_utils::process_listing();
        assert!(
            !listing.contains("sleep 297.5"),
            "the sleep outlived the jail:\n{listing}"
        );
    }
    // A detached process that hangs the program itself: killed at the limit.
    let hang = "def add(a, b):\n    return a + b\nimport subprocess, time\nsubprocess.Popen(['sleep', '296.5'], start_new_session=True)\ntime.sleep(60)\n";
    let start = Instant::now();
    let v = run(&c, hang);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(v.error_type, Some(CodeErrorType::Timeout), "{v:?}");
}

#[test]
fn a_fork_bomb_is_contained_and_the_evaluation_goes_on() {
    let c = checker(3);
    let bomb =
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n";
    let start = Instant::now();
    let v = run(&c, bomb);
    assert!(!v.passed, "{v:?}");
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
    let after = run(&c, "    return a + b\n");
    assert!(
        after.passed,
        "the next program failed after the bomb: {after:?}"
    );
}

#[test]
fn the_weaker_levels_still_keep_home_and_time() {
    for level in [Isolation::NetworkNamespace, Isolation::LimitsOnly] {
        let c = checker(3).with_isolation(level);
        let v = run(&c, "    return a + b\n");
        assert!(v.passed, "{level:?}: {v:?}");
        assert!(v.sandbox.isolation <= level);
        let v = run(&c, "def add(a, b):\n    return a\nimport os\nos._exit(0)\n");
        assert!(!v.passed, "{level:?}: {v:?}");
        if v.sandbox.landlock {
            home_attacks(&c);
        }
        // Without a PID namespace the detached process survives the group kill, but reading stops in time.
        let code = "import subprocess\nsubprocess.Popen(['sleep', '4'], start_new_session=True)\ndef add(a, b):\n    return a + b\n";
        let start = Instant::now();
        let _ = run(&c, code);
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{level:?}: {:?}",
            start.elapsed()
        );
    }
}
