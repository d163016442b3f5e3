//! Code execution accuracy (pass@1, pass@k) for HumanEval/MBPP-style problems.
//!
//! A problem is a function header (`prompt`), a test program and the entry point's name, in the layout of
//! HumanEval and of the MBXP releases of MBPP (Python and Kotlin). [`assemble`] turns the model's code into one
//! program: when the code defines the entry point itself it replaces the header (keeping the imports and helpers
//! written before it), otherwise it continues the header; the test follows, and for Python `check(entry_point)`.
//! [`CodeChecker`] runs the program in a scratch folder with the limits of [`sandbox`] and sorts failures into
//! [`CodeErrorType`]s. [`pass_at_k`] is the unbiased estimator of Chen et al. (2021).

mod assemble;
pub mod sandbox;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

pub use assemble::{assemble, defines_entry_point};
use sandbox::{run_sandboxed, NetworkIsolation, SandboxLimits, SandboxOutcome};

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
    /// How the program was kept off the network.
    pub isolation: NetworkIsolation,
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

/// The Python harness: blocks sockets (a second guard besides the network namespace), compiles the solution
/// (exit 3 on a syntax error) and runs it as module `solution`, so `if __name__ == "__main__"` demos stay quiet.
const PYTHON_HARNESS: &str = r#"import socket, sys
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
"#;

/// Exit status the harness uses for a program that does not compile.
const PYTHON_COMPILE_ERROR_EXIT: i32 = 3;

/// Runs programs under limits and judges them.
#[derive(Debug, Clone)]
pub struct CodeChecker {
    limits: SandboxLimits,
    python: PathBuf,
    /// `python`'s `sys.executable`, found once: launchers such as pyenv shims cost ~150 ms a start.
    resolved_python: std::sync::OnceLock<PathBuf>,
    kotlinc: PathBuf,
    java: PathBuf,
    compile_timeout: Duration,
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
        }
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
        match language {
            Language::Python => {
                std::fs::write(dir.path().join("solution.py"), program)?;
                std::fs::write(dir.path().join("_tuneup_harness.py"), PYTHON_HARNESS)?;
                let python = self.python_executable();
                let mut cmd = Command::new(python);
                cmd.args(["-I", "-B", "_tuneup_harness.py", "solution.py"]);
                let out = self.spawn(cmd, dir.path(), self.limits, python, PYTHON_HINT)?;
                Ok(judge_python(&out, self.limits.timeout))
            }
            Language::Kotlin => {
                std::fs::write(dir.path().join("solution.kt"), program)?;
                let mut compile = Command::new(&self.kotlinc);
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
                let built = self.spawn(compile, dir.path(), limits, &self.kotlinc, KOTLIN_HINT)?;
                if !built.success() {
                    let mut v = judge_kotlin(&built, self.compile_timeout);
                    if v.error_type != Some(CodeErrorType::Timeout) {
                        v.error_type = Some(CodeErrorType::CompileError);
                    }
                    return Ok(v);
                }
                let mut run = Command::new(&self.java);
                run.args(["-Xmx512m", "-Xss16m", "-jar", "solution.jar"]);
                let limits = SandboxLimits {
                    memory_bytes: None,
                    ..self.limits
                };
                let out = self.spawn(run, dir.path(), limits, &self.java, KOTLIN_HINT)?;
                let mut v = judge_kotlin(&out, self.limits.timeout);
                v.elapsed += built.elapsed;
                Ok(v)
            }
        }
    }

    /// The interpreter's real path (`sys.executable`), or the configured name when asking fails.
    fn python_executable(&self) -> &std::path::Path {
        self.resolved_python.get_or_init(|| {
            Command::new(&self.python)
                .args(["-c", "import sys; print(sys.executable)"])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .filter(|p| !p.is_empty())
                .map_or_else(|| self.python.clone(), PathBuf::from)
        })
    }

    fn spawn(
        &self,
        cmd: Command,
        dir: &std::path::Path,
        limits: SandboxLimits,
        program: &std::path::Path,
        hint: &'static str,
    ) -> Result<SandboxOutcome, CodeEvalError> {
        run_sandboxed(cmd, dir, limits).map_err(|source| CodeEvalError::Spawn {
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
        isolation: out.isolation,
    }
}

fn timeout_verdict(out: &SandboxOutcome, timeout: Duration) -> CodeVerdict {
    let message = format!("killed after the {:.1} s time limit", timeout.as_secs_f64());
    verdict(out, Some(CodeErrorType::Timeout), Some(message))
}

fn judge_python(out: &SandboxOutcome, timeout: Duration) -> CodeVerdict {
    if out.timed_out {
        return timeout_verdict(out, timeout);
    }
    if out.success() {
        return verdict(out, None, None);
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

fn judge_kotlin(out: &SandboxOutcome, timeout: Duration) -> CodeVerdict {
    if out.timed_out {
        return timeout_verdict(out, timeout);
    }
    if out.success() {
        return verdict(out, None, None);
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
