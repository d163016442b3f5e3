//! Bounds on what a chat template may do. Templates come from model files (GGUF metadata,
//! `tokenizer_config.json`), so a downloaded model could ship one that never ends: rendering is given a
//! fixed budget of instructions (minijinja's fuel), and filters that size a string from an argument are
//! capped. A template past either limit is an error that says which.

use minijinja::value::{Kwargs, StringInput, Value};
use minijinja::{Environment, Error as JinjaError, ErrorKind};

/// Instructions one render may execute. The longest real templates (tools, many messages) need a few
/// thousand per message; a render that runs out of fuel took about a second on the CPU.
pub(super) const RENDER_FUEL: u64 = 20_000_000;

/// Widest indentation `indent` and `tojson(indent=…)` accept.
pub(super) const MAX_INDENT: usize = 1024;

/// Sets the fuel and replaces the size-unbounded builtins of `env`.
pub(super) fn install(env: &mut Environment<'static>) {
    env.set_fuel(Some(RENDER_FUEL));
    env.add_filter("indent", indent);
}

/// The error for a template that ran out of fuel, or `None` for any other error.
pub(super) fn out_of_fuel_message(err: &JinjaError) -> Option<String> {
    (err.kind() == ErrorKind::OutOfFuel).then(|| {
        format!(
            "the chat template ran past its limit of {RENDER_FUEL} instructions (an endless or huge loop?) \
             and was stopped{}",
            err.line()
                .map(|l| format!(" at line {l}"))
                .unwrap_or_default()
        )
    })
}

/// minijinja's `indent`, refusing a width above [`MAX_INDENT`] (the builtin allocates whatever it is given).
fn indent(
    value: StringInput<'_>,
    width: Option<usize>,
    indent_first_line: Option<bool>,
    indent_blank_lines: Option<bool>,
    kwargs: Kwargs,
) -> Result<Value, JinjaError> {
    let requested = match width {
        Some(w) => Some(w),
        None => kwargs.peek::<Option<usize>>("width")?,
    };
    if let Some(w) = requested.filter(|&w| w > MAX_INDENT) {
        return Err(JinjaError::new(
            ErrorKind::InvalidOperation,
            format!("indent width {w} is too large (at most {MAX_INDENT})"),
        ));
    }
    minijinja::filters::indent(value, width, indent_first_line, indent_blank_lines, kwargs)
}
