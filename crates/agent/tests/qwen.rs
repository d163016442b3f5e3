//! The weather scenario end to end with the real Qwen2.5-Coder-0.5B (`TUNEUP_QWEN_GGUF`; skipped with a
//! message when unset unless `TUNEUP_REQUIRE_MODELS=1`), greedy, with examples/agent/weather.toml.

use std::path::Path;

use tuneup_agent::{Agent, AgentConfig, Event, StopReason, Toolbox};
use tuneup_generate::ChatModel;
use tuneup_models::{LoadOptions, ModelFiles};

fn print_event(e: Event<'_>) {
    match e {
        Event::ModelOutput { step, text } => eprintln!("[step {step}] {text}"),
        Event::ToolCall {
            name, arguments, ..
        } => eprintln!("→ {name}({arguments})"),
        Event::ToolResult { content, .. } => eprintln!("← {content}"),
    }
}

#[test]
fn weather_needs_the_tool_and_lunch_does_not() {
    let Some(path) = tuneup_test_utils::env_model_path("TUNEUP_QWEN_GGUF") else {
        return;
    };
    let opts = LoadOptions {
        max_context: Some(4096),
        ..LoadOptions::default()
    };
    let model = ChatModel::load(&ModelFiles::Gguf(path), &opts).unwrap();
    let toml = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/agent/weather.toml");
    let config = AgentConfig::from_file(&toml).unwrap();
    let mut agent = Agent::new(&model, &config, Toolbox::from_config(&config).unwrap()).unwrap();

    let turn = agent.ask("서울 날씨 어때?", &mut print_event).unwrap();
    eprintln!("{}", serde_json::to_string_pretty(&turn.to_json()).unwrap());
    assert_eq!(turn.stop, StopReason::Answer);
    let calls = turn.tool_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["name"], "get_weather");
    let city = calls[0]["arguments"]["city"].as_str().unwrap_or_default();
    assert!(
        ["seoul", "서울"].contains(&city.to_lowercase().as_str()),
        "{city}"
    );
    // The tool's fixed answer reached the model and the answer uses it.
    assert!(
        turn.messages
            .iter()
            .any(|m| m["role"] == "tool"
                && m["content"].as_str().unwrap_or_default().contains("18°C"))
    );
    let answer = turn.answer.unwrap();
    assert!(answer.contains("18"), "{answer}");
    assert!(turn.steps <= 3, "{}", turn.steps);

    agent.reset();
    let turn = agent.ask("오늘 점심 뭐 먹지?", &mut print_event).unwrap();
    eprintln!("{}", serde_json::to_string_pretty(&turn.to_json()).unwrap());
    assert_eq!(turn.stop, StopReason::Answer);
    assert!(turn.tool_calls().is_empty(), "{:?}", turn.tool_calls());
    assert_eq!(turn.steps, 1);
    assert!(!turn.answer.unwrap().trim().is_empty());
}
