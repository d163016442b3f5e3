//! Putting the model's code, the problem's header and its tests into one program.

use super::{CodeProblem, Language};

/// Words that may precede `fun` in a top-level Kotlin declaration.
const KOTLIN_MODIFIERS: &[&str] = &[
    "private",
    "public",
    "internal",
    "protected",
    "inline",
    "suspend",
    "tailrec",
    "operator",
    "infix",
    "override",
    "open",
    "external",
];

/// Byte offset of the line that defines `entry` (`def entry(` / `fun entry(`, any indentation,
/// `async def` and generic `fun <T> entry(` included), if any.
fn definition_offset(language: Language, text: &str, entry: &str) -> Option<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        let rest = match language {
            Language::Python => t
                .strip_prefix("async def ")
                .or_else(|| t.strip_prefix("def ")),
            Language::Kotlin => t.find("fun ").and_then(|i| {
                // Modifiers (`private`, `inline`, ...) may come before `fun`.
                let before = &t[..i];
                let is_modifiers = before
                    .split_whitespace()
                    .all(|w| KOTLIN_MODIFIERS.contains(&w));
                is_modifiers.then(|| {
                    let after = t[i + 4..].trim_start();
                    match after.strip_prefix('<') {
                        Some(generic) => generic.split_once('>').map_or(after, |(_, r)| r),
                        None => after,
                    }
                })
            }),
        };
        if let Some(rest) = rest {
            let rest = rest.trim_start();
            if rest
                .strip_prefix(entry)
                .is_some_and(|r| r.trim_start().starts_with('('))
            {
                return Some(offset);
            }
        }
        offset += line.len();
    }
    None
}

/// Whether `code` defines the function `entry` itself.
pub fn defines_entry_point(language: Language, code: &str, entry: &str) -> bool {
    definition_offset(language, code, entry).is_some()
}

/// The whole program for `code`: header (or just what precedes the entry point's definition when `code`
/// defines it), `code`, the test, and for Python a final `check(entry_point)` when the test defines `check`.
pub fn assemble(problem: &CodeProblem<'_>, code: &str) -> String {
    let mut program = String::new();
    match problem.entry_point {
        Some(entry) if defines_entry_point(problem.language, code, entry) => {
            // Keep the imports and helper functions written before the header.
            let end = definition_offset(problem.language, problem.prompt, entry)
                .unwrap_or(problem.prompt.len());
            program.push_str(&problem.prompt[..end]);
        }
        _ => program.push_str(problem.prompt),
    }
    program.push_str(code);
    if !program.ends_with('\n') {
        program.push('\n');
    }
    program.push('\n');
    match (problem.language, problem.entry_point) {
        (Language::Python, Some(entry)) if problem.test.contains("def check(") => {
            // MBPP/56's function is itself called `check`: the test's `check` would shadow it.
            let checker = if entry == "check" {
                "_tuneup_check"
            } else {
                "check"
            };
            program.push_str(
                &problem
                    .test
                    .replace("def check(", &format!("def {checker}(")),
            );
            program.push_str(&format!("\n\n{checker}({entry})\n"));
        }
        _ => program.push_str(problem.test),
    }
    if !program.ends_with('\n') {
        program.push('\n');
    }
    program
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "from typing import List\n\n\ndef helper(x):\n    return x\n\n\ndef add(a: int, b: int) -> int:\n    \"\"\"Add.\"\"\"\n";
    const TEST: &str = "\n\ndef check(candidate):\n    assert candidate(1, 2) == 3\n";

    fn problem() -> CodeProblem<'static> {
        CodeProblem {
            language: Language::Python,
            prompt: HEADER,
            test: TEST,
            entry_point: Some("add"),
        }
    }

    #[test]
    fn a_body_continues_the_header() {
        let p = assemble(&problem(), "    return a + b\n");
        assert!(p.starts_with(HEADER));
        assert!(p.contains("\"\"\"Add.\"\"\"\n    return a + b\n"));
        assert!(p.trim_end().ends_with("check(add)"));
    }

    #[test]
    fn a_whole_function_replaces_the_header_but_keeps_imports_and_helpers() {
        let code = "def add(a, b):\n    return a + b\n";
        let p = assemble(&problem(), code);
        assert!(p.starts_with("from typing import List"));
        assert!(p.contains("def helper(x)"));
        assert_eq!(p.matches("def add").count(), 1);
        assert!(p.contains(code));
    }

    #[test]
    fn an_entry_point_named_check_is_not_shadowed_by_the_test() {
        let p = CodeProblem {
            language: Language::Python,
            prompt: "def check(n):\n",
            test: "def check(candidate):\n    assert candidate(1)\n",
            entry_point: Some("check"),
        };
        let program = assemble(&p, "    return n == 1\n");
        assert!(program.contains("def _tuneup_check(candidate)"));
        assert!(program.trim_end().ends_with("_tuneup_check(check)"));
    }

    #[test]
    fn kotlin_definitions_are_found_with_modifiers_and_generics() {
        for code in [
            "fun add(a: Int, b: Int): Int = a + b",
            "private fun add (a: Int, b: Int) = a + b",
            "fun <T> add(a: T): T = a",
        ] {
            assert!(defines_entry_point(Language::Kotlin, code, "add"), "{code}");
        }
        assert!(!defines_entry_point(
            Language::Kotlin,
            "fun adder(a: Int) = a",
            "add"
        ));
        assert!(!defines_entry_point(
            Language::Kotlin,
            "val fun add(",
            "add"
        ));
    }
}
