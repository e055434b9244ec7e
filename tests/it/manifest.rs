//! `manifest.yaml` against the code: every Slack Web API method the source calls has its
//! bot scope declared, nothing declared goes unused, and the manifest keeps Slack's rules.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use sentinel::slack::manifest::{method_scopes, Manifest, METHOD_SCOPES};

/// Slack Web API method families (`chat.postMessage` is family `chat`): a string literal
/// `"family.method"` in the source is a Web API call.
const FAMILIES: &[&str] = &[
    "admin",
    "api",
    "apps",
    "assistant",
    "auth",
    "bookmarks",
    "bots",
    "calls",
    "canvases",
    "chat",
    "conversations",
    "dialog",
    "dnd",
    "emoji",
    "files",
    "functions",
    "migration",
    "oauth",
    "openid",
    "pins",
    "reactions",
    "reminders",
    "rtm",
    "search",
    "stars",
    "team",
    "tooling",
    "usergroups",
    "users",
    "views",
    "workflows",
];

/// Source that answers Slack's or an LLM's side, or measures: not Sentinel's own calls.
const NOT_CALLERS: &[&str] = &["src/slack/emulator", "src/bench", "src/llm/testserver.rs"];

/// The Slack method names quoted in `source`, comment lines ignored.
fn methods_in(source: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r#""([a-z]+)((?:\.[a-zA-Z]+)+)""#).unwrap();
    source
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .flat_map(|l| re.captures_iter(l).collect::<Vec<_>>())
        .filter(|c| FAMILIES.contains(&&c[1]))
        .map(|c| format!("{}{}", &c[1], &c[2]))
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every Web API method Sentinel's source calls.
fn called_methods() -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files
        .iter()
        .filter(|f| {
            let rel = f.strip_prefix(root).unwrap().to_string_lossy().to_string();
            !NOT_CALLERS.iter().any(|n| rel.starts_with(n))
        })
        .flat_map(|f| methods_in(&std::fs::read_to_string(f).unwrap()))
        .collect()
}

#[test]
fn the_scanner_sees_a_new_call_and_ignores_comments() {
    let src = r#"
        // client.call("stars.add", json!({})) is not called
        let v = self.call("pins.add", json!({"channel": c})).await?;
        let m = ("chat.completion", "manifest.yaml", "x.y");
    "#;
    let found = methods_in(src);
    assert_eq!(
        found.into_iter().collect::<Vec<_>>(),
        ["chat.completion", "pins.add"]
    );
    // pins.add is not in the scope table: the test below would fail naming it.
    assert!(method_scopes("pins.add").is_none());
}

#[test]
fn every_called_method_has_its_scope_declared_and_nothing_more() {
    let called = called_methods();
    for m in [
        "chat.postMessage",
        "usergroups.users.list",
        "conversations.info",
    ] {
        assert!(called.contains(m), "the scan missed {m}: {called:?}");
    }
    let unknown: Vec<_> = called
        .iter()
        .filter(|m| method_scopes(m).is_none())
        .collect();
    assert!(
        unknown.is_empty(),
        "add these methods with their scopes (Slack's method docs) to METHOD_SCOPES in src/slack/manifest.rs: {unknown:?}"
    );
    let stale: Vec<_> = METHOD_SCOPES
        .iter()
        .filter(|(m, _)| !called.contains(*m))
        .map(|(m, _)| m)
        .collect();
    assert!(
        stale.is_empty(),
        "no code calls {stale:?}: remove them from METHOD_SCOPES"
    );

    let manifest = Manifest::shipped().unwrap();
    let mut needed = manifest.scopes_for_events_and_commands().unwrap();
    for m in &called {
        needed.extend(method_scopes(m).unwrap().iter().map(|s| s.to_string()));
    }
    let declared = manifest.bot_scopes();
    let missing: Vec<_> = needed.difference(&declared).collect();
    let unused: Vec<_> = declared.difference(&needed).collect();
    assert!(
        missing.is_empty(),
        "manifest.yaml lacks bot scopes {missing:?}"
    );
    assert!(
        unused.is_empty(),
        "manifest.yaml declares unused bot scopes {unused:?}"
    );
}

#[test]
fn the_manifest_is_a_socket_mode_bot_within_slacks_rules() {
    let m = Manifest::shipped().unwrap();
    assert_eq!(m.rule_violations(), Vec::<String>::new());
    assert_eq!(m.settings.socket_mode_enabled, Some(true));
    assert!(m.settings.interactivity.as_ref().unwrap().is_enabled);
    assert_eq!(
        m.bot_events(),
        ["app_mention", "message.channels", "message.groups"]
    );
    let cmd = &m.features.slash_commands[0];
    assert_eq!(cmd.command, "/sentinel");
    assert!(cmd.usage_hint.as_deref().unwrap().contains("search"));
    assert!(cmd.url.is_none());
    assert!(
        m.oauth_config.scopes.user.is_empty(),
        "Sentinel needs no user scopes"
    );
}
