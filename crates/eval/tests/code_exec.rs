//! Code execution: the sandbox's verdicts on hand-made programs, the official solutions of HumanEval and MBPP
//! (MBXP release) passing, trivial wrong answers failing, and Kotlin when `kotlinc` is installed.

mod common;

use std::io::Read;
use std::time::Duration;

use common::code_dir;
use serde_json::Value;
use tuneup_eval::code::sandbox::{isolation, SandboxLimits};
use tuneup_eval::code::{CodeChecker, CodeErrorType, CodeProblem, Language};

fn checker(timeout_s: u64) -> CodeChecker {
    CodeChecker::new(SandboxLimits {
        timeout: Duration::from_secs(timeout_s),
        memory_bytes: Some(512 << 20),
        ..SandboxLimits::default()
    })
}

fn python(program: &str) -> tuneup_eval::code::CodeVerdict {
    checker(3).run_program(Language::Python, program).unwrap()
}

#[test]
fn failures_are_sorted_into_types() {
    assert!(python("assert 1 + 1 == 2\n").passed);
    let cases = [
        ("def f(:\n    pass\n", CodeErrorType::CompileError),
        ("assert 1 + 1 == 3, 'sum'\n", CodeErrorType::TestFailed),
        ("print(undefined_name)\n", CodeErrorType::RuntimeError),
        ("while True:\n    pass\n", CodeErrorType::Timeout),
        ("x = bytearray(4 << 30)\n", CodeErrorType::MemoryLimit),
    ];
    for (program, expected) in cases {
        let v = python(program);
        assert!(!v.passed, "{program}");
        assert_eq!(v.error_type, Some(expected), "{program}: {v:?}");
        assert!(v.message.is_some(), "{program}");
    }
    let slow = python("while True:\n    pass\n");
    assert!(slow.elapsed < Duration::from_secs(6), "{:?}", slow.elapsed);
}

#[test]
fn a_timed_out_program_leaves_no_process_behind() {
    let marker = format!("tuneup-sandbox-orphan-{}", std::process::id());
    let program = format!(
        "import subprocess\nsubprocess.Popen(['sleep', '300', '{marker}'][:2])\nsubprocess.Popen(['sh', '-c', 'exec -a {marker} sleep 300'])\nwhile True:\n    pass\n"
    );
    let v = checker(1).run_program(Language::Python, &program).unwrap();
    assert_eq!(v.error_type, Some(CodeErrorType::Timeout));
    let listing = tuneup_test_utils::process_listing();
    assert!(
        !listing.contains(&marker),
        "a child outlived the sandbox:\n{listing}"
    );
}

#[test]
fn programs_cannot_reach_the_network_or_the_environment() {
    // A real listener on the host's loopback: a sandboxed program must not connect to it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let program = format!(
        "import _socket\ns = _socket.socket()\ns.settimeout(2)\ns.connect(('127.0.0.1', {port}))\nprint('connected')\n"
    );
    let v = python(&program);
    assert!(!v.passed, "connected to the host: {v:?}");
    // The high-level socket module is blocked too (the guard that remains without namespaces).
    let v = python(&format!(
        "import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
    ));
    assert!(!v.passed);
    assert!(v
        .message
        .unwrap_or_default()
        .contains("network access is disabled"));
    eprintln!("isolation here: {:?}", isolation());
    assert_eq!(python("print(1)").sandbox.isolation, isolation());
    std::env::set_var("TUNEUP_SECRET_FOR_SANDBOX_TEST", "x");
    let v = python("import os\nassert 'TUNEUP_SECRET_FOR_SANDBOX_TEST' not in os.environ\nassert os.getcwd() == os.environ['HOME']\n");
    assert!(v.passed, "{v:?}");
}

fn read_jsonl(path: &std::path::Path) -> Vec<Value> {
    let bytes = std::fs::read(path).unwrap();
    let text = if path.extension().is_some_and(|e| e == "gz") {
        let mut s = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut s)
            .unwrap();
        s
    } else {
        String::from_utf8(bytes).unwrap()
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn problem(record: &Value, language: Language) -> CodeProblem<'_> {
    CodeProblem {
        language,
        prompt: record["prompt"].as_str().unwrap(),
        test: record["test"].as_str().unwrap(),
        entry_point: record["entry_point"].as_str(),
    }
}

/// Runs every problem's canonical solution and a `return None` body; returns the ids whose canonical
/// solution failed and those whose wrong body passed.
fn canonical_and_wrong(records: &[Value], wrong_body: &str) -> (Vec<String>, Vec<String>) {
    let checker = checker(20);
    let (mut canonical_failed, mut wrong_passed) = (Vec::new(), Vec::new());
    for r in records {
        let id = r["task_id"].as_str().unwrap().to_owned();
        let p = problem(r, Language::Python);
        let good = checker
            .check(&p, r["canonical_solution"].as_str().unwrap())
            .unwrap();
        if !good.passed {
            eprintln!("{id}: canonical solution failed: {good:?}");
            canonical_failed.push(id.clone());
        }
        if checker.check(&p, wrong_body).unwrap().passed {
            wrong_passed.push(id);
        }
    }
    (canonical_failed, wrong_passed)
}

#[test]
fn humaneval_canonical_solutions_pass_and_wrong_ones_fail() {
    let Some(dir) = code_dir() else { return };
    let records = read_jsonl(&dir.join("HumanEval.jsonl.gz"));
    assert_eq!(records.len(), 164);
    let (failed, wrong_passed) = canonical_and_wrong(&records, "    return None\n");
    assert!(failed.is_empty(), "canonical solutions failed: {failed:?}");
    assert!(
        wrong_passed.is_empty(),
        "`return None` passed: {wrong_passed:?}"
    );
    // A whole function in place of the body is assembled with the header's imports and helpers.
    let he0 = &records[0];
    let whole = "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n";
    assert!(
        checker(10)
            .check(&problem(he0, Language::Python), whole)
            .unwrap()
            .passed
    );
}

#[test]
fn mbpp_canonical_solutions_pass() {
    let Some(dir) = code_dir() else { return };
    let records = read_jsonl(&dir.join("mbpp_release_v1.jsonl"));
    let first: Vec<Value> = records.into_iter().take(60).collect();
    let (failed, wrong_passed) = canonical_and_wrong(&first, "\treturn None\n");
    assert!(failed.is_empty(), "canonical solutions failed: {failed:?}");
    assert!(
        wrong_passed.len() <= 1,
        "`return None` passed: {wrong_passed:?}"
    );
}

#[test]
fn kotlin_programs_compile_run_and_fail_when_kotlinc_is_installed() {
    let checker = checker(20);
    if !checker.available(Language::Kotlin) {
        eprintln!("skipping: kotlinc/java not installed");
        return;
    }
    let test = "fun main() {\n    if (add(1, 2) != 3) { throw Exception(\"Exception -- test case 0 did not pass.\") }\n}\n";
    let p = CodeProblem {
        language: Language::Kotlin,
        prompt: "fun add(a: Int, b: Int): Int {\n",
        test,
        entry_point: Some("add"),
    };
    assert!(checker.check(&p, "    return a + b\n}\n").unwrap().passed);
    let wrong = checker.check(&p, "    return a - b\n}\n").unwrap();
    assert_eq!(
        wrong.error_type,
        Some(CodeErrorType::TestFailed),
        "{wrong:?}"
    );
    // Exiting with status 0 before the tests ran is no pass: a pass needs the harness's completion marker.
    let early = checker
        .check(&p, "    kotlin.system.exitProcess(0)\n}\n")
        .unwrap();
    assert!(!early.passed, "{early:?}");
    assert!(
        early
            .message
            .as_deref()
            .unwrap_or("")
            .contains("exited before"),
        "{early:?}"
    );
    let broken = checker.check(&p, "    return a +\n").unwrap();
    assert_eq!(
        broken.error_type,
        Some(CodeErrorType::CompileError),
        "{broken:?}"
    );
    let whole = checker
        .check(&p, "fun add(a: Int, b: Int) = a + b\n")
        .unwrap();
    assert!(whole.passed, "{whole:?}");
    if let Some(dir) = code_dir() {
        let records = read_jsonl(&dir.join("mbkp_release_v1.2.jsonl"));
        for r in records.iter().take(3) {
            let v = checker
                .check(
                    &problem(r, Language::Kotlin),
                    r["canonical_solution"].as_str().unwrap(),
                )
                .unwrap();
            assert!(v.passed, "{}: {v:?}", r["task_id"]);
        }
    }
}
