//! `tuneup agent agent.toml`: a tool-using agent, interactive or one answer with `-p`.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use tuneup_agent::{Agent, AgentConfig, Event, StopReason, Toolbox, Turn};

use crate::args::ModelArgs;
use crate::chat::prompt_message;
use crate::model::load;

/// Arguments of `tuneup agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The agent definition (TOML: model, system, memory, max_steps, [generation], [[tools]]; see docs/agents.md).
    config: PathBuf,
    /// Model, overriding `model` in the TOML: an alias, a GGUF file, an HF folder or `hf:ORG/NAME[:FILE]`.
    #[arg(short = 'm', long)]
    model: Option<String>,
    /// Threads for the CPU kernels (default: all cores).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// Cap the context window (tokens) below the model's own.
    #[arg(short = 'c', long = "ctx-size")]
    ctx_size: Option<usize>,
    /// Run on the first CUDA GPU (needs a build with `--features cuda`).
    #[arg(long)]
    gpu: bool,
    /// Answer this one question and exit (`-` reads it from stdin).
    #[arg(short = 'p', long)]
    prompt: Option<String>,
    /// Print each turn as JSON (answer, stop reason, steps, tool calls, messages, usage) instead of text.
    #[arg(long)]
    json: bool,
    /// Also print the model's raw output of every step.
    #[arg(long)]
    verbose: bool,
    /// Print the tools in OpenAI's `tools` shape (for requests to `tuneup serve`) and exit.
    #[arg(long)]
    print_tools: bool,
}

const HELP: &str = "commands: /reset (forget the conversation), /tools (list the tools), /exit";

/// Runs the agent.
pub fn run(args: AgentArgs) -> Result<()> {
    let config = AgentConfig::from_file(&args.config)?;
    let tools = Toolbox::from_config(&config)?;
    if args.print_tools {
        let tools = serde_json::json!({ "tools": tools.openai_tools() });
        println!("{}", serde_json::to_string_pretty(&tools)?);
        return Ok(());
    }
    let name = model_name(&args, &config);
    let model_args = ModelArgs {
        model: name.clone(),
        threads: args.threads,
        ctx_size: args.ctx_size,
        gpu: args.gpu,
        adapter: None,
    };
    let model = load(&model_args)?;
    let mut agent = Agent::new(&model, &config, tools)?;
    if let Some(p) = &args.prompt {
        let question = if p == "-" {
            std::io::read_to_string(std::io::stdin())?
        } else {
            p.clone()
        };
        let turn = ask(&args, &mut agent, &question)?;
        if turn.stop == StopReason::StepLimit && !args.json {
            bail!(
                "no answer after {} steps (max_steps in {})",
                turn.steps,
                args.config.display()
            );
        }
        return Ok(());
    }
    let names: Vec<&str> = agent
        .tools()
        .iter()
        .filter_map(|t| t["function"]["name"].as_str())
        .collect();
    eprintln!("tuneup agent — {name}, tools: {}. {HELP}", names.join(", "));
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        let Some(input) = prompt_message(&mut lines)? else {
            break;
        };
        match input.trim() {
            "" => continue,
            "/exit" | "/quit" | "/bye" => break,
            "/reset" => {
                agent.reset();
                eprintln!("(conversation cleared)");
            }
            "/tools" => {
                for t in agent.tools() {
                    let f = &t["function"];
                    let (name, about) = (f["name"].as_str(), f["description"].as_str());
                    eprintln!(
                        "{}: {}",
                        name.unwrap_or_default(),
                        about.unwrap_or_default()
                    );
                }
            }
            "/help" | "/?" => eprintln!("{HELP}"),
            _ => {
                if let Err(e) = ask(&args, &mut agent, &input) {
                    eprintln!("error: {e:#}");
                }
            }
        }
    }
    Ok(())
}

/// The model: `-m`, else the TOML's `model` (a path relative to the TOML when one exists there), else the default.
fn model_name(args: &AgentArgs, config: &AgentConfig) -> String {
    if let Some(m) = &args.model {
        return m.clone();
    }
    match &config.model {
        Some(m) => {
            let path = config.resolve_path(m);
            if path.exists() {
                path.to_string_lossy().into_owned()
            } else {
                m.clone()
            }
        }
        None => "qwen2.5-coder-0.5b".to_string(),
    }
}

/// Text dimmed on a terminal.
fn dim(text: &str) -> String {
    if std::io::stderr().is_terminal() {
        format!("\x1b[2m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// At most `n` characters of `text`, on one line.
fn short(text: &str, n: usize) -> String {
    let line = text.replace('\n', " ");
    match line.char_indices().nth(n) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line,
    }
}

fn ask(args: &AgentArgs, agent: &mut Agent<'_>, question: &str) -> Result<Turn> {
    let quiet = args.json;
    let verbose = args.verbose;
    let mut on_event = |e: Event<'_>| match e {
        Event::ModelOutput { step, text } if verbose => {
            eprintln!("{}", dim(&format!("[step {step}] {text}")))
        }
        Event::ToolCall {
            name, arguments, ..
        } if !quiet => {
            eprintln!("{}", dim(&format!("→ {name}({arguments})")))
        }
        Event::ToolResult { content, ok, .. } if !quiet => {
            let mark = if ok { "←" } else { "← (failed)" };
            eprintln!("{}", dim(&format!("{mark} {}", short(content, 300))))
        }
        _ => {}
    };
    let turn = agent
        .ask(question, &mut on_event)
        .context("running the agent")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&turn.to_json())?);
        return Ok(turn);
    }
    match &turn.answer {
        Some(answer) => println!("{answer}"),
        None => eprintln!(
            "(no answer: the model was still calling tools after {} steps; raise max_steps in {})",
            turn.steps,
            args.config.display()
        ),
    }
    let u = turn.usage;
    eprintln!(
        "{}",
        dim(&format!(
            "[{} step(s), {} tool call(s) | prompt {} tok ({} cached) | generated {} tok | {:.1} s]",
            turn.steps,
            turn.tool_calls().len(),
            u.prompt_tokens,
            u.cached_prompt_tokens,
            u.completion_tokens,
            turn.seconds
        ))
    );
    Ok(turn)
}
