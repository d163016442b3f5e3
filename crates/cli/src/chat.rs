//! `tuneup chat`: interactive chat with history, or one answer with `-p`.

use std::io::{BufRead, Write};
use std::ops::ControlFlow;

use anyhow::{bail, Result};
use clap::Args;
use serde_json::{json, Value};
use tuneup_generate::{ChatModel, GenerationStats, Generator};

use crate::args::{ModelArgs, SamplingArgs};
use crate::model::{attach_draft, load};

/// Arguments of `tuneup chat`.
#[derive(Debug, Args)]
pub struct ChatArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Answer this one prompt and exit (`-` reads it from stdin).
    #[arg(short = 'p', long)]
    prompt: Option<String>,
    /// System prompt.
    #[arg(long)]
    system: Option<String>,
    /// Do not print speed after each answer.
    #[arg(long)]
    no_stats: bool,
    /// Print the rendered prompt before answering.
    #[arg(long)]
    verbose_prompt: bool,
}

const HELP: &str =
    "commands: /reset (forget the conversation), /system TEXT (set the system prompt), \
/exit; end a line with \\ or wrap text in \"\"\" to write several lines";

/// Runs the chat.
pub fn run(args: ChatArgs) -> Result<()> {
    let model = load(&args.model)?;
    let mut system = args.system.clone();
    let mut history: Vec<Value> = Vec::new();
    if let Some(p) = &args.prompt {
        let prompt = if p == "-" {
            std::io::read_to_string(std::io::stdin())?
        } else {
            p.clone()
        };
        let mut generator = Generator::new(&model.model.decoder, &model.tokenizer);
        history.push(json!({"role": "user", "content": prompt}));
        answer(&args, &model, &mut generator, system.as_deref(), &history)?;
        return Ok(());
    }
    let mut generator = Generator::new(&model.model.decoder, &model.tokenizer);
    eprintln!("tuneup chat — {}. {HELP}", args.model.model);
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        let Some(input) = prompt_message(&mut lines)? else {
            break;
        };
        let trimmed = input.trim();
        if trimmed.is_empty() {
            continue;
        }
        match trimmed {
            "/exit" | "/quit" | "/bye" => break,
            "/reset" => {
                history.clear();
                generator.reset();
                eprintln!("(conversation cleared)");
                continue;
            }
            "/help" | "/?" => {
                eprintln!("{HELP}");
                continue;
            }
            _ => {}
        }
        if let Some(rest) = trimmed.strip_prefix("/system") {
            let rest = rest.trim();
            system = (!rest.is_empty()).then(|| rest.to_string());
            history.clear();
            eprintln!(
                "(system prompt {}; conversation cleared)",
                if system.is_some() { "set" } else { "removed" }
            );
            continue;
        }
        history.push(json!({"role": "user", "content": input}));
        match answer(&args, &model, &mut generator, system.as_deref(), &history) {
            Ok(text) => history.push(json!({"role": "assistant", "content": text})),
            Err(e) => {
                history.pop();
                eprintln!("error: {e:#}");
            }
        }
    }
    Ok(())
}

/// Shows the `> ` prompt on stderr and reads one message ([`read_message`]); `None` at the end of input.
pub fn prompt_message(
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
) -> Result<Option<String>> {
    eprint!("> ");
    std::io::stderr().flush()?;
    read_message(lines)
}

/// Reads one message: a line, lines joined by a trailing `\`, or a `"""` block.
fn read_message(
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
) -> Result<Option<String>> {
    let Some(first) = lines.next().transpose()? else {
        return Ok(None);
    };
    if first.trim_start().starts_with("\"\"\"") {
        let mut text = first.trim_start()[3..].to_string();
        if let Some(end) = text.find("\"\"\"") {
            text.truncate(end);
            return Ok(Some(text));
        }
        for line in lines.by_ref() {
            let line = line?;
            if let Some(end) = line.find("\"\"\"") {
                text.push('\n');
                text.push_str(&line[..end]);
                return Ok(Some(text.trim_start_matches('\n').to_string()));
            }
            text.push('\n');
            text.push_str(&line);
        }
        return Ok(Some(text));
    }
    let mut text = first;
    while text.ends_with('\\') {
        text.pop();
        text.push('\n');
        match lines.next().transpose()? {
            Some(l) => text.push_str(&l),
            None => break,
        }
    }
    Ok(Some(text))
}

fn answer(
    args: &ChatArgs,
    model: &ChatModel,
    generator: &mut Generator<'_>,
    system: Option<&str>,
    history: &[Value],
) -> Result<String> {
    let mut messages = Vec::new();
    if let Some(s) = system {
        messages.push(json!({"role": "system", "content": s}));
    }
    messages.extend(history.iter().cloned());
    let (text, ids) = model.chat_prompt(&messages, None)?;
    if args.verbose_prompt {
        eprintln!("--- prompt ({} tokens) ---\n{text}\n---", ids.len());
    }
    if ids.is_empty() {
        bail!("the prompt is empty");
    }
    let mut params = args.sampling.params();
    attach_draft(&args.sampling, model, &args.model, &mut params)?;
    let stdout = std::io::stdout();
    let mut sink = |_id: u32, piece: &str| {
        let mut out = stdout.lock();
        let _ = out.write_all(piece.as_bytes());
        let _ = out.flush();
        ControlFlow::Continue(())
    };
    let out = generator.generate(&ids, &mut params, &mut sink)?;
    println!();
    if !args.no_stats {
        eprintln!("{}", stats_line(&out.stats));
    }
    Ok(out.text)
}

/// One line of speed figures, as printed after each answer.
pub fn stats_line(s: &GenerationStats) -> String {
    let mut line = format!(
        "[prompt {} tok ({} cached), {:.1} tok/s | generated {} tok, {:.1} tok/s | first token {:.0} ms | {:?}",
        s.prompt_tokens,
        s.cached_prompt_tokens,
        s.prefill_tokens_per_second(),
        s.completion_tokens,
        s.decode_tokens_per_second(),
        s.time_to_first_token.as_secs_f64() * 1000.0,
        s.finish_reason,
    );
    if s.draft_proposed > 0 {
        line.push_str(&format!(
            " | drafts accepted {}/{}",
            s.draft_accepted, s.draft_proposed
        ));
    }
    line.push(']');
    line
}
