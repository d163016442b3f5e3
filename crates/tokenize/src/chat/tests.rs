use super::*;
use serde_json::json;

fn render(template: &str, messages: &[Json]) -> Result<String> {
    ChatTemplate::new(template, "<s>", "</s>")?.render(messages, None, false)
}

fn user(content: &str) -> Json {
    json!({"role": "user", "content": content})
}

#[test]
fn trim_and_lstrip_blocks_like_hf() {
    let t = "{% for m in messages %}\n    {% if m.role == 'user' %}\n[{{ m.content }}]\n    {% endif %}\n{% endfor %}\n";
    assert_eq!(render(t, &[user("a"), user("b")]).unwrap(), "[a]\n[b]\n");
}

#[test]
fn tojson_matches_python_json_dumps() {
    let msgs = [
        json!({"role": "user", "content": "x", "meta": {"b": "<&>\"é\n", "a": [1, 2.5, null, true]}}),
    ];
    assert_eq!(
        render("{{ messages[0].meta | tojson }}", &msgs).unwrap(),
        r#"{"b": "<&>\"é\n", "a": [1, 2.5, null, true]}"#
    );
    assert_eq!(
        render("{{ messages[0].meta.a | tojson(indent=2) }}", &msgs).unwrap(),
        "[\n  1,\n  2.5,\n  null,\n  true\n]"
    );
    assert_eq!(
        render(
            "{{ messages[0].meta | tojson(sort_keys=true, separators=(',', ':')) }}",
            &msgs
        )
        .unwrap(),
        r#"{"a":[1,2.5,null,true],"b":"<&>\"é\n"}"#
    );
    assert_eq!(
        render(
            "{{ messages[0].meta.b | tojson(ensure_ascii=true) }}",
            &msgs
        )
        .unwrap(),
        r#""<&>\"\u00e9\n""#
    );
    assert!(render("{{ 1 | tojson(bogus=1) }}", &msgs).is_err());
}

#[test]
fn values_print_like_python() {
    let msgs = [
        json!({"role": "user", "content": "x", "flag": true, "n": null, "f": 1.0, "list": ["a", 1]}),
    ];
    let out = render(
        "{{ messages[0].flag }} {{ none }} {{ messages[0].f }} {{ messages[0].list }} {{ messages[0].missing }}|",
        &msgs,
    )
    .unwrap();
    assert_eq!(out, "True None 1.0 ['a', 1] |");
}

#[test]
fn python_string_and_dict_methods() {
    let msgs = [json!({"role": "user", "content": "  Hello World  ", "d": {"k": "v"}})];
    let t = "{{ messages[0].content.strip() }}|{{ messages[0].content.split() | join(',') }}|\
             {{ messages[0].content.strip().startswith('Hello') }}|{{ messages[0].content.lower().strip() }}|\
             {% for k, v in messages[0].d.items() %}{{ k }}={{ v }}{% endfor %}|{{ messages[0].get('nope', 'dflt') }}";
    assert_eq!(
        render(t, &msgs).unwrap(),
        "Hello World|Hello,World|True|hello world|k=v|dflt"
    );
}

#[test]
fn loop_controls_namespace_and_slicing() {
    let t = "{% set ns = namespace(n=0) %}{% for m in messages[::-1] %}{% if loop.index > 2 %}{% break %}{% endif %}\
             {% if m.content == 'skip' %}{% continue %}{% endif %}{% set ns.n = ns.n + 1 %}{{ m.content }}{% endfor %}:{{ ns.n }}";
    let msgs = [user("a"), user("b"), user("skip"), user("c")];
    assert_eq!(render(t, &msgs).unwrap(), "c:1");
}

#[test]
fn special_variables_and_generation_prompt() {
    let t = ChatTemplate::new(
        "{{ bos_token }}{% for m in messages %}{{ m.content }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}>>{% endif %}{% if tools is not none %}{{ tools | length }}{% endif %}",
        "<s>",
        "</s>",
    )
    .unwrap();
    assert_eq!(t.render(&[user("hi")], None, true).unwrap(), "<s>hi</s>>>");
    let tools = [json!({"type": "function"})];
    assert_eq!(
        t.render(&[user("hi")], Some(&tools), false).unwrap(),
        "<s>hi</s>1"
    );
}

#[test]
fn null_keys_are_dropped_and_reasoning_is_aliased() {
    let msgs = [json!({"role": "assistant", "content": null, "reasoning": "think"})];
    let out = render(
        "{{ messages[0].content is defined }} {{ messages[0].thinking }} {{ messages[0].reasoning_content }} {{ messages[0] | tojson }}",
        &msgs,
    )
    .unwrap();
    assert_eq!(
        out,
        r#"False think think {"thinking": "think", "role": "assistant", "reasoning": "think", "reasoning_content": "think"}"#
    );
}

#[test]
fn chainable_undefined_is_lenient() {
    let out = render("[{{ messages[0].tool_calls.function.name }}]{% for x in messages[0].nothing %}x{% endfor %}", &[user("a")]).unwrap();
    assert_eq!(out, "[]");
}

#[test]
fn strftime_now_with_fixed_time() {
    let t = ChatTemplate::new("{{ strftime_now('%d %b %Y') }}", "", "")
        .unwrap()
        .with_fixed_time(1_721_997_296);
    assert_eq!(t.render(&[], None, false).unwrap(), "26 Jul 2024");
    let live = ChatTemplate::new("{{ strftime_now('%Y') }}", "", "").unwrap();
    assert_eq!(live.render(&[], None, false).unwrap().len(), 4);
}

#[test]
fn generation_tags_are_accepted() {
    let t = "{% for m in messages %}{%- generation -%} {{ m.content }} {%- endgeneration %}{% endfor %}";
    assert_eq!(render(t, &[user("a"), user("b")]).unwrap(), "ab");
}

#[test]
fn errors_are_reported() {
    assert!(matches!(
        ChatTemplate::new("{% for %}", "", ""),
        Err(Error::Template(_))
    ));
    assert!(matches!(
        render("{{ messages[0].content + 1 }}", &[user("a")]),
        Err(Error::Template(_))
    ));
    assert!(matches!(
        render("{{ raise_exception('nope') }}", &[user("a")]),
        Err(Error::TemplateException(m)) if m == "nope"
    ));
    assert!(matches!(
        render("x", &[json!("not an object")]),
        Err(Error::InvalidMessage { index: 0, .. })
    ));
}

#[test]
fn trailing_newline_is_dropped_like_jinja2() {
    assert_eq!(render("a\n", &[]).unwrap(), "a");
    assert_eq!(render("a\n\n", &[]).unwrap(), "a\n");
}
