//! Code execution accuracy (pass@1, pass@k) for HumanEval/MBPP-style problems.
//!
//! A problem is a function header (`prompt`), a test program and the entry point's name, in the layout of
//! HumanEval and of the MBXP releases of MBPP (Python and Kotlin). [`assemble`] turns the model's code into one
//! program: when the code defines the entry point itself it replaces the header (keeping the imports and helpers
//! written before it), otherwise it continues the header; the test follows, and for Python `check(entry_point)`.
//! [`CodeChecker`] runs the program in the jail of [`sandbox`] and sorts failures into [`CodeErrorType`]s. A
//! pass needs positive proof: the harness prints a random marker (sent on stdin) after the last test, and the
//! program must print it, exit with status 0 and leave no process running. [`pass_at_k`] is the unbiased
//! estimator of Chen et al. (2021).

mod assemble;
pub mod sandbox;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub use assemble::{assemble, defines_entry_point};
use sandbox::{
    resolve_program, run_sandboxed_at, Isolation, SandboxInput, SandboxLimits, SandboxOutcome,
    SandboxReport,
};

/// Programming language of a problem.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    /// Python 3, run by `python3` (or [`CodeChecker::with_python`]).
    #[default]
    Python,
    /// Kotlin/JVM, compiled by `kotlinc` and run by `java`.
    Kotlin,
}

/// One problem: the header the model completes, the tests, the entry point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeProblem<'a> {
    /// Language of the header, tests and expected code.
    pub language: Language,
    /// Function header with its docstring (HumanEval `prompt`); may be empty.
    pub prompt: &'a str,
    /// Test program (HumanEval `test`: a `check(candidate)` function; Kotlin: a `main` that throws on failure).
    pub test: &'a str,
    /// Function under test (HumanEval `entry_point`).
    pub entry_point: Option<&'a str>,
}

/// Why a program failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeErrorType {
    /// The program does not parse or compile.
    CompileError,
    /// A test assertion failed (Python `AssertionError`, a Kotlin test's thrown exception).
    TestFailed,
    /// Any other exception or a crash while running.
    RuntimeError,
    /// The program ran past the time limit.
    Timeout,
    /// The program ran out of its memory limit.
    MemoryLimit,
}

/// The verdict on one program.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CodeVerdict {
    /// All tests passed.
    pub passed: bool,
    /// Why not.
    pub error_type: Option<CodeErrorType>,
    /// The last lines of the error output (or the limit that was hit).
    pub message: Option<String>,
    /// Wall-clock time of the run (compilation included).
    pub elapsed: Duration,
    /// How the program was isolated.
    pub sandbox: SandboxReport,
}

/// Failures of the checker itself (as opposed to a wrong program).
#[derive(Debug, thiserror::Error)]
pub enum CodeEvalError {
    /// The scratch folder could not be made or written.
    #[error("preparing the sandbox folder: {0}")]
    Scratch(#[from] std::io::Error),
    /// The interpreter or compiler could not be started.
    #[error("starting {program}: {source}{hint}")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        source: std::io::Error,
        /// How to install it, when known.
        hint: &'static str,
    },
}

/// The Python harness: reads the completion marker from stdin, blocks sockets (a second guard besides the
/// network namespace), compiles the solution (exit 3 on a syntax error), runs it as module `solution` (so
/// `if __name__ == "__main__"` demos stay quiet) and prints the marker on its own line after the last test.
const PYTHON_HARNESS: &str = r#"import os, socket, sys
_marker = sys.stdin.readline().strip()
_write = os.write
class _NoSocket(socket.socket):
    def __init__(self, *args, **kwargs):
        raise OSError("network access is disabled in the tuneup sandbox")
def _no_connection(*args, **kwargs):
    raise OSError("network access is disabled in the tuneup sandbox")
socket.socket = _NoSocket
socket.create_connection = _no_connection
with open(sys.argv[1], encoding="utf-8") as f:
    source = f.read()
try:
    code = compile(source, "solution.py", "exec")
except (SyntaxError, ValueError) as e:
    print(f"{type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(3)
sys.argv = ["solution.py"]
exec(code, {"__name__": "solution", "__file__": "solution.py", "__builtins__": __builtins__})
_write(1, ("\n" + _marker + "\n").encode())
"#;

/// Exit status the harness uses for a program that does not compile.
const PYTHON_COMPILE_ERROR_EXIT: i32 = 3;

/// The interpreter to run and the folders it needs (its prefix and base prefix outside the system folders).
#[derive(Debug, Clone)]
struct PythonRuntime {
    executable: PathBuf,
    dirs: Vec<PathBuf>,
}

/// Runs programs under limits and judges them.
#[derive(Debug, Clone)]
pub struct CodeChecker {
    limits: SandboxLimits,
    python: PathBuf,
    /// `python`'s `sys.executable` and prefixes, found once: launchers such as pyenv shims cost ~150 ms a start.
    resolved_python: std::sync::OnceLock<PythonRuntime>,
    kotlinc: PathBuf,
    java: PathBuf,
    compile_timeout: Duration,
    isolation: Option<Isolation>,
}

impl Default for CodeChecker {
    fn default() -> Self {
        Self::new(SandboxLimits::default())
    }
}

impl CodeChecker {
    /// A checker with `limits` for each run (compilation gets at least 120 s).
    pub fn new(limits: SandboxLimits) -> Self {
        Self {
            limits,
            python: "python3".into(),
            resolved_python: std::sync::OnceLock::new(),
            kotlinc: "kotlinc".into(),
            java: "java".into(),
            compile_timeout: limits.timeout.max(Duration::from_secs(120)),
            isolation: None,
        }
    }

    /// Runs programs at `level` at most (default: the strongest this machine allows); for testing the
    /// weaker levels.
    pub fn with_isolation(mut self, level: Isolation) -> Self {
        self.isolation = Some(level);
        self
    }

    /// Uses this Python interpreter instead of `python3` from `PATH`.
    pub fn with_python(mut self, python: impl Into<PathBuf>) -> Self {
        self.python = python.into();
        self.resolved_python = std::sync::OnceLock::new();
        self
    }

    /// Whether programs in `language` can run here (`kotlinc` and `java` on `PATH` for Kotlin).
    pub fn available(&self, language: Language) -> bool {
        let probe = |p: &PathBuf, arg: &str| {
            Command::new(p)
                .arg(arg)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        match language {
            Language::Python => probe(&self.python, "--version"),
            Language::Kotlin => probe(&self.java, "-version") && probe(&self.kotlinc, "-version"),
        }
    }

    /// Assembles the model's `code` with `problem` and runs it.
    pub fn check(
        &self,
        problem: &CodeProblem<'_>,
        code: &str,
    ) -> Result<CodeVerdict, CodeEvalError> {
        self.run_program(problem.language, &assemble(problem, code))
    }

    /// Runs a whole program (already assembled) and judges it by its exit status.
    pub fn run_program(
        &self,
        language: Language,
        program: &str,
    ) -> Result<CodeVerdict, CodeEvalError> {
        let dir = tempfile::Builder::new().prefix("tuneup-code-").tempdir()?;
        let marker = completion_marker()?;
        match language {
            Language::Python => {
                std::fs::write(dir.path().join("solution.py"), program)?;
                std::fs::write(dir.path().join("_tuneup_harness.py"), PYTHON_HARNESS)?;
                let python = self.python_runtime();
                let mut cmd = Command::new(&python.executable);
                cmd.args(["-I", "-B", "_tuneup_harness.py", "solution.py"]);
                let input = SandboxInput {
                    runtime_dirs: python.dirs.clone(),
                    stdin: format!("{marker}\n").into_bytes(),
                    ..SandboxInput::default()
                };
                let out = self.spawn(
                    cmd,
                    dir.path(),
                    self.limits,
                    &input,
                    &python.executable,
                    PYTHON_HINT,
                )?;
                Ok(judge_python(&out, self.limits.timeout, &marker))
            }
            Language::Kotlin => {
                let program = with_kotlin_marker(program);
                std::fs::write(dir.path().join("solution.kt"), program)?;
                let (kotlinc, java) = (
                    self.kotlin_tool(&self.kotlinc),
                    self.kotlin_tool(&self.java),
                );
                let java_home = java.parent().and_then(Path::parent).map(Path::to_path_buf);
                let kotlin_home = kotlinc
                    .parent()
                    .and_then(Path::parent)
                    .map(Path::to_path_buf);
                let mut input = SandboxInput {
                    runtime_dirs: java_home.iter().chain(&kotlin_home).cloned().collect(),
                    env: java_home
                        .iter()
                        .map(|h| ("JAVA_HOME".to_owned(), h.into()))
                        .collect(),
                    ..SandboxInput::default()
                };
                let mut compile = Command::new(&kotlinc);
                compile.args([
                    "-J-Xmx1g",
                    "solution.kt",
                    "-include-runtime",
                    "-d",
                    "solution.jar",
                ]);
                let limits = SandboxLimits {
                    timeout: self.compile_timeout,
                    memory_bytes: None,
                    ..self.limits
                };
                let built =
                    self.spawn(compile, dir.path(), limits, &input, &kotlinc, KOTLIN_HINT)?;
                if !built.success() {
                    let mut v = judge_kotlin(&built, self.compile_timeout, None);
                    if v.error_type != Some(CodeErrorType::Timeout) {
                        v.error_type = Some(CodeErrorType::CompileError);
                    }
                    return Ok(v);
                }
                let mut run = Command::new(&java);
                run.args(["-Xmx512m", "-Xss16m", "-jar", "solution.jar"]);
                let limits = SandboxLimits {
                    memory_bytes: None,
                    ..self.limits
                };
                input.stdin = format!("{marker}\n").into_bytes();
                let out = self.spawn(run, dir.path(), limits, &input, &java, KOTLIN_HINT)?;
                let mut v = judge_kotlin(&out, self.limits.timeout, Some(&marker));
                v.elapsed += built.elapsed;
                Ok(v)
            }
        }
    }

    /// The interpreter's path (`sys.executable`) and the folders it needs, or the configured name when
    /// asking fails.
    fn python_runtime(&self) -> &PythonRuntime {
        self.resolved_python.get_or_init(|| {
            let asked = Command::new(&self.python)
                .args([
                    "-c",
                    "import sys; print(sys.executable); print(sys.prefix); print(sys.base_prefix)",
                ])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            let mut lines = asked.lines().map(str::trim).filter(|l| !l.is_empty());
            let executable = lines.next().map_or_else(
                || resolve_program(&self.python).unwrap_or_else(|| self.python.clone()),
                PathBuf::from,
            );
            let mut dirs: Vec<PathBuf> = lines.map(PathBuf::from).collect();
            // The interpreter a venv's `python` links to, with its own prefix.
            if let Ok(real) = std::fs::canonicalize(&executable) {
                dirs.extend(real.parent().and_then(Path::parent).map(Path::to_path_buf));
            }
            PythonRuntime { executable, dirs }
        })
    }

    /// `tool` as an absolute path with symlinks resolved (as given when it is not found).
    fn kotlin_tool(&self, tool: &Path) -> PathBuf {
        resolve_program(tool).unwrap_or_else(|| tool.to_path_buf())
    }

    fn spawn(
        &self,
        cmd: Command,
        dir: &Path,
        limits: SandboxLimits,
        input: &SandboxInput,
        program: &Path,
        hint: &'static str,
    ) -> Result<SandboxOutcome, CodeEvalError> {
        let level = self.isolation.unwrap_or(Isolation::Jail);
        run_sandboxed_at(level, cmd, dir, limits, input).map_err(|source| CodeEvalError::Spawn {
            program: program.display().to_string(),
            source,
            hint,
        })
    }
}

const PYTHON_HINT: &str = " (install Python 3, or set the interpreter with `[code] python = ...`)";
const KOTLIN_HINT: &str = " (install the Kotlin compiler and a JDK, e.g. `apt-get install kotlin`)";

/// The last `n` non-empty lines of `text`.
fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn verdict(
    out: &SandboxOutcome,
    error_type: Option<CodeErrorType>,
    message: Option<String>,
) -> CodeVerdict {
    CodeVerdict {
        passed: error_type.is_none(),
        error_type,
        message,
        elapsed: out.elapsed,
        sandbox: out.report(),
    }
}

/// A fresh random marker the harness prints after the last test.
fn completion_marker() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| std::io::Error::other(format!("getting random bytes: {e}")))?;
    Ok(format!(
        "tuneup-tests-done-{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

/// Renames the test's `main` and adds one that reads the marker from stdin, runs it and prints the marker.
/// A program without `main` is left as it is (it can only compile, not pass).
fn with_kotlin_marker(program: &str) -> String {
    let mut offset = None;
    let mut at = 0;
    for line in program.split_inclusive('\n') {
        if let Some(i) = line.find("fun main(") {
            if line[..i].trim().is_empty() {
                offset = Some(at + i);
            }
        }
        at += line.len();
    }
    let Some(start) = offset else {
        return program.to_owned();
    };
    let after = &program[start + "fun main(".len()..];
    let call = if after.trim_start().starts_with(')') {
        "tuneupTestMain()"
    } else {
        "tuneupTestMain(args)"
    };
    format!(
        "{}fun tuneupTestMain({after}\n\nfun main(args: Array<String>) {{\n    val tuneupMarker = readLine() ?: \"\"\n    {call}\n    println()\n    println(tuneupMarker)\n}}\n",
        &program[..start]
    )
}

/// Why a program that exited with status 0 did not pass: no marker after the tests, or processes left running.
fn unproven_pass(out: &SandboxOutcome, marker: &str) -> Option<String> {
    if out.left_processes {
        return Some("the program left processes running after it ended (they were killed)".into());
    }
    let printed = out.stdout.lines().any(|l| l.trim() == marker);
    (!printed).then(|| {
        "the program exited before its tests finished (status 0 without the harness's completion marker)".into()
    })
}

fn timeout_verdict(out: &SandboxOutcome, timeout: Duration) -> CodeVerdict {
    let message = format!("killed after the {:.1} s time limit", timeout.as_secs_f64());
    verdict(out, Some(CodeErrorType::Timeout), Some(message))
}

fn judge_python(out: &SandboxOutcome, timeout: Duration, marker: &str) -> CodeVerdict {
    if out.timed_out {
        return timeout_verdict(out, timeout);
    }
    if out.success() {
        return match unproven_pass(out, marker) {
            None => verdict(out, None, None),
            Some(why) => verdict(out, Some(CodeErrorType::RuntimeError), Some(why)),
        };
    }
    let last = tail_lines(&out.stderr, 1);
    let kind = if out.code == Some(PYTHON_COMPILE_ERROR_EXIT) {
        CodeErrorType::CompileError
    } else if last.starts_with("MemoryError") {
        CodeErrorType::MemoryLimit
    } else if last.starts_with("AssertionError") {
        CodeErrorType::TestFailed
    } else {
        CodeErrorType::RuntimeError
    };
    let message = match (out.signal, last.is_empty()) {
        (Some(sig), _) => format!("killed by signal {sig}"),
        (None, true) => format!("exit status {:?}", out.code),
        (None, false) => tail_lines(&out.stderr, 3),
    };
    verdict(out, Some(kind), Some(message))
}

/// `marker`: the completion marker a run must print (`None` for compilation).
fn judge_kotlin(out: &SandboxOutcome, timeout: Duration, marker: Option<&str>) -> CodeVerdict {
    if out.timed_out {
        return timeout_verdict(out, timeout);
    }
    if out.success() {
        return match marker.and_then(|m| unproven_pass(out, m)) {
            None => verdict(out, None, None),
            Some(why) => verdict(out, Some(CodeErrorType::RuntimeError), Some(why)),
        };
    }
    let kind = if out.stderr.contains("OutOfMemoryError") {
        CodeErrorType::MemoryLimit
    } else if out.stderr.contains("did not pass") {
        CodeErrorType::TestFailed
    } else {
        CodeErrorType::RuntimeError
    };
    let message = match out.signal {
        Some(sig) => format!("killed by signal {sig}"),
        None => tail_lines(&out.stderr, 3),
    };
    verdict(out, Some(kind), Some(message))
}

/// The unbiased pass@k estimator: the chance that at least one of `k` samples drawn without replacement
/// from `n` (of which `c` passed) passes, `1 - C(n-c, k) / C(n, k)`, computed as a stable product.
/// `None` when `k` is 0 or larger than `n`, or `c > n`.
pub fn pass_at_k(n: usize, c: usize, k: usize) -> Option<f64> {
    if k == 0 || k > n || c > n {
        return None;
    }
    if n - c < k {
        return Some(1.0);
    }
    let fail_all: f64 = ((n - c + 1)..=n)
        .map(|i| 1.0 - k as f64 / i as f64)
        .product();
    Some(1.0 - fail_all)
}
