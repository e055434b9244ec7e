//! What users send the bot, parsed without I/O: `/sentinel` text into a [`Command`], and
//! a button click's `(action_id, value)` into a [`ButtonAction`].

use std::collections::BTreeMap;

use crate::actions::value::ClickKind;
use crate::slack::Mrkdwn;

/// What the user asked `/sentinel` to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// List the subcommands.
    Help,
    /// Search the runbooks; the answer is posted back to the user.
    Search { query: String },
    /// Open the runbook search form (a modal).
    Find,
    /// Is the bot alive, and which version.
    Status,
    /// Answer a question privately (LLM with sources, or the best sections).
    Ask { question: String },
    /// Open incidents, newest first.
    Incidents,
    /// One incident: alerts, timeline, thread link.
    Incident { id: i64 },
    /// Propose a catalog action by hand (it goes through the same approval flow).
    Run {
        action_id: String,
        params: BTreeMap<String, String>,
        incident: Option<i64>,
    },
    /// The action catalog, or the kill switch.
    Actions(ActionsCommand),
    /// The latest audit events (of one incident).
    Audit { incident: Option<i64> },
}

/// `/sentinel actions [pause|resume [ACTION_ID]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionsCommand {
    List,
    /// Pause every action (the kill switch).
    Pause,
    /// Resume every action, or the auto-approval of one.
    Resume {
        action_id: Option<String>,
    },
}

/// One line per subcommand, shown by `help` and on a parse error.
pub const SUBCOMMANDS: &[(&str, &str)] = &[
    ("help", "list these commands"),
    (
        "search <question>",
        "show the runbook sections that best answer <question>",
    ),
    ("find", "open a form to search the runbooks"),
    (
        "ask <question>",
        "answer <question> privately, citing runbook sections",
    ),
    ("incidents", "list open incidents, newest first"),
    (
        "incident <id>",
        "show an incident's alerts, timeline and thread",
    ),
    (
        "status",
        "show whether Sentinel is running, and its version",
    ),
    (
        "run <action> [key=value ...] [#incident]",
        "propose a catalog action; it runs once an approver clicks Approve",
    ),
    (
        "actions",
        "list the action catalog and whether actions are paused",
    ),
    (
        "actions pause | resume [action]",
        "admins: stop or restart all actions, or an action's auto-approval",
    ),
    ("audit [#incident]", "show the latest audit log events"),
];

/// A user mistake, answered with a sentence and the help. The sentence is mrkdwn: the
/// user's own words in it went through `Mrkdwn::code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl ParseError {
    pub fn sentence(&self) -> Mrkdwn {
        Mrkdwn::own(self.0.clone())
    }
}

pub fn parse(text: &str) -> Result<Command, ParseError> {
    let text = text.trim();
    let (head, rest) = match text.split_once(char::is_whitespace) {
        Some((h, r)) => (h, r.split_whitespace().collect::<Vec<_>>().join(" ")),
        None => (text, String::new()),
    };
    match head.to_ascii_lowercase().as_str() {
        "" | "help" | "-h" | "--help" | "?" => Ok(Command::Help),
        "search" | "s" => {
            if rest.is_empty() {
                Err(ParseError(
                    "`search` needs a question, e.g. `/sentinel search disk full on node`".into(),
                ))
            } else {
                Ok(Command::Search { query: rest })
            }
        }
        "find" => Ok(Command::Find),
        "ask" => {
            if rest.is_empty() {
                Err(ParseError(
                    "`ask` needs a question, e.g. `/sentinel ask why would etcd lose its leader?`"
                        .into(),
                ))
            } else {
                Ok(Command::Ask { question: rest })
            }
        }
        "incidents" => Ok(Command::Incidents),
        "incident" => incident_id(&rest).map(|id| Command::Incident { id }),
        "status" | "version" => Ok(Command::Status),
        "run" => run_args(&rest),
        "actions" => actions_args(&rest).map(Command::Actions),
        "audit" => match rest.as_str() {
            "" => Ok(Command::Audit { incident: None }),
            r => incident_id(r).map(|id| Command::Audit { incident: Some(id) }),
        },
        other => Err(ParseError(format!(
            "{} is not a Sentinel command.",
            Mrkdwn::code(&crate::text::truncate_chars(other, 40))
        ))),
    }
}

/// `ACTION_ID [key=value ...] [#INCIDENT]`.
fn run_args(rest: &str) -> Result<Command, ParseError> {
    let mut words = rest.split_whitespace();
    let usage = "Use `/sentinel run ACTION_ID [key=value ...] [#INCIDENT]`; `/sentinel actions` lists the catalog.";
    let Some(action_id) = words.next() else {
        return Err(ParseError(format!("Which action? {usage}")));
    };
    let valid_id = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    };
    if !valid_id(action_id) {
        return Err(ParseError(format!(
            "{} is not an action id. {usage}",
            Mrkdwn::code(&crate::text::truncate_chars(action_id, 40))
        )));
    }
    let mut params = BTreeMap::new();
    let mut incident = None;
    for w in words {
        if w.starts_with('#') {
            if incident.is_some() {
                return Err(ParseError("Name at most one incident.".into()));
            }
            incident = Some(incident_id(w)?);
        } else if let Some((k, v)) = w.split_once('=') {
            let key_ok = !k.is_empty()
                && k.len() <= 63
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !key_ok || v.is_empty() {
                return Err(ParseError(format!(
                    "{} is not a `key=value` parameter. {usage}",
                    Mrkdwn::code(&crate::text::truncate_chars(w, 40))
                )));
            }
            if params.insert(k.to_string(), v.to_string()).is_some() {
                return Err(ParseError(format!("{} is given twice.", Mrkdwn::code(k))));
            }
        } else {
            return Err(ParseError(format!(
                "{} is neither `key=value` nor `#INCIDENT`. {usage}",
                Mrkdwn::code(&crate::text::truncate_chars(w, 40))
            )));
        }
    }
    Ok(Command::Run {
        action_id: action_id.to_string(),
        params,
        incident,
    })
}

fn actions_args(rest: &str) -> Result<ActionsCommand, ParseError> {
    let words: Vec<&str> = rest.split_whitespace().collect();
    match words.as_slice() {
        [] | ["list"] => Ok(ActionsCommand::List),
        ["pause"] => Ok(ActionsCommand::Pause),
        ["resume"] => Ok(ActionsCommand::Resume { action_id: None }),
        ["resume", id] if id.len() <= 63 => Ok(ActionsCommand::Resume {
            action_id: Some(id.to_string()),
        }),
        _ => Err(ParseError(
            "Use `/sentinel actions`, `/sentinel actions pause` or `/sentinel actions resume [ACTION_ID]`.".into(),
        )),
    }
}

/// `12` or `#12`: a positive incident number.
fn incident_id(arg: &str) -> Result<i64, ParseError> {
    let Some(arg) = arg.split_whitespace().next() else {
        return Err(ParseError(
            "Which incident? Use `/sentinel incident ID`, e.g. `/sentinel incident 12`.".into(),
        ));
    };
    arg.trim_start_matches('#')
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            ParseError(format!(
                "{} is not an incident number; try `/sentinel incidents` to list them.",
                Mrkdwn::code(&crate::text::truncate_chars(arg, 40))
            ))
        })
}

/// A button Sentinel rendered, as its click comes back: ids and values are made by
/// [`ButtonAction::action_id`] and [`ButtonAction::value`] and parsed back here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ButtonAction {
    /// "👍 Helpful" under a runbook answer; the value is the best section's chunk id.
    Helpful { chunk_id: String },
    /// "🔎 Search again": opens the search form with the question filled in.
    SearchAgain { query: String },
    /// A proposal's Approve / Reject / Dry run / Roll back / Stop; the value is signed
    /// (`actions::value`) and checked by the actions service.
    Action { kind: ClickKind, value: String },
}

/// Action ids of Sentinel's buttons.
const ACTION_HELPFUL: &str = "kb_helpful";
const ACTION_SEARCH_AGAIN: &str = "kb_search_open";

impl ButtonAction {
    pub fn action_id(&self) -> &'static str {
        match self {
            ButtonAction::Helpful { .. } => ACTION_HELPFUL,
            ButtonAction::SearchAgain { .. } => ACTION_SEARCH_AGAIN,
            ButtonAction::Action { kind, .. } => kind.action_id(),
        }
    }

    pub fn value(&self) -> &str {
        match self {
            ButtonAction::Helpful { chunk_id } => chunk_id,
            ButtonAction::SearchAgain { query } => query,
            ButtonAction::Action { value, .. } => value,
        }
    }

    /// `None` for a button Sentinel does not know (an old message, another app's id).
    pub fn parse(action_id: &str, value: Option<&str>) -> Option<Self> {
        let value = value.unwrap_or_default().to_string();
        match action_id {
            ACTION_HELPFUL => Some(ButtonAction::Helpful { chunk_id: value }),
            ACTION_SEARCH_AGAIN => Some(ButtonAction::SearchAgain { query: value }),
            other => {
                ClickKind::from_action_id(other).map(|kind| ButtonAction::Action { kind, value })
            }
        }
    }
}

/// The help text; `command` is the slash command as Slack sent it (`/sentinel`).
pub fn help_text(command: &Mrkdwn) -> Mrkdwn {
    let mut out = format!("*Sentinel commands* (`{command} <command>`)\n");
    for (usage, what) in SUBCOMMANDS {
        out.push_str(&format!("• `{command} {usage}`: {what}\n"));
    }
    out.push_str("Mention me with a question to get the best runbook sections in a thread.");
    Mrkdwn::own(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incident_commands() {
        assert_eq!(parse("incidents"), Ok(Command::Incidents));
        assert_eq!(parse("  Incident #12 "), Ok(Command::Incident { id: 12 }));
        assert_eq!(parse("incident 7"), Ok(Command::Incident { id: 7 }));
        assert!(parse("incident").unwrap_err().0.contains("Which incident?"));
        assert!(parse("incident abc")
            .unwrap_err()
            .0
            .contains("`abc` is not an incident number"));
        assert!(parse("incident -3").is_err());
        assert!(parse("incident 0").is_err());
    }

    proptest::proptest! {
        #[test]
        fn no_text_or_click_makes_the_parsers_panic(text in "\\PC{0,80}", id in "\\PC{0,20}") {
            let _ = parse(&text);
            let _ = ButtonAction::parse(&id, Some(&text));
            let _ = parse(&format!("run {text}"));
            let _ = parse(&format!("run a {id} {text}"));
            let _ = parse(&format!("actions {text}"));
            let _ = parse(&format!("audit {text}"));
            if let Ok(Command::Incident { id }) = parse(&format!("incident {text}")) {
                proptest::prop_assert!(id > 0);
            }
        }
    }

    #[test]
    fn buttons_round_trip() {
        for b in [
            ButtonAction::Helpful {
                chunk_id: "c-1".into(),
            },
            ButtonAction::SearchAgain {
                query: "disk full".into(),
            },
        ] {
            assert_eq!(ButtonAction::parse(b.action_id(), Some(b.value())), Some(b));
        }
        assert_eq!(ButtonAction::parse("other_app", Some("x")), None);
        assert_eq!(
            ButtonAction::parse("kb_search_open", None),
            Some(ButtonAction::SearchAgain {
                query: String::new()
            })
        );
    }

    #[test]
    fn run_takes_an_action_parameters_and_an_incident() {
        let Ok(Command::Run {
            action_id,
            params,
            incident,
        }) = parse("run restart-pod namespace=shop pod=api-7 #12")
        else {
            panic!("not a run");
        };
        assert_eq!(action_id, "restart-pod");
        assert_eq!(params["namespace"], "shop");
        assert_eq!(params["pod"], "api-7");
        assert_eq!(incident, Some(12));
        assert!(parse("run").unwrap_err().0.contains("Which action?"));
        assert!(parse("run Restart!")
            .unwrap_err()
            .0
            .contains("not an action id"));
        assert!(parse("run a x=1 x=2")
            .unwrap_err()
            .0
            .contains("given twice"));
        assert!(parse("run a novalue").unwrap_err().0.contains("neither"));
        assert!(parse("run a k=").is_err());
        assert!(parse("run a #1 #2").is_err());
        // Values stay one word each; the action's patterns validate them later.
        assert!(matches!(parse("run a k=$HOME"), Ok(Command::Run { .. })));
    }

    #[test]
    fn actions_and_audit_commands() {
        assert_eq!(parse("actions"), Ok(Command::Actions(ActionsCommand::List)));
        assert_eq!(
            parse("actions pause"),
            Ok(Command::Actions(ActionsCommand::Pause))
        );
        assert_eq!(
            parse("actions resume restart-pod"),
            Ok(Command::Actions(ActionsCommand::Resume {
                action_id: Some("restart-pod".into())
            }))
        );
        assert!(parse("actions delete").is_err());
        assert_eq!(parse("audit"), Ok(Command::Audit { incident: None }));
        assert_eq!(parse("audit #4"), Ok(Command::Audit { incident: Some(4) }));
        assert!(parse("audit x").is_err());
    }

    #[test]
    fn empty_and_help_mean_help() {
        for t in ["", "   ", "help", "HELP", "--help", "?", "help me"] {
            assert_eq!(parse(t), Ok(Command::Help), "{t:?}");
        }
    }

    #[test]
    fn search_takes_the_rest_with_whitespace_folded() {
        assert_eq!(
            parse("search  disk \t full\non node"),
            Ok(Command::Search {
                query: "disk full on node".into()
            })
        );
        assert_eq!(
            parse("s etcd"),
            Ok(Command::Search {
                query: "etcd".into()
            })
        );
    }

    #[test]
    fn search_without_a_question_is_a_user_error() {
        let e = parse("search   ").unwrap_err();
        assert!(e.0.contains("needs a question"));
    }

    #[test]
    fn other_subcommands() {
        assert_eq!(parse("find"), Ok(Command::Find));
        assert_eq!(parse(" status "), Ok(Command::Status));
        assert_eq!(parse("version"), Ok(Command::Status));
    }

    #[test]
    fn ask_and_incident_commands() {
        assert_eq!(
            parse("ask  why is etcd slow?"),
            Ok(Command::Ask {
                question: "why is etcd slow?".into()
            })
        );
        assert!(parse("ask").unwrap_err().0.contains("needs a question"));
        assert_eq!(parse("incidents"), Ok(Command::Incidents));
        assert_eq!(parse("INCIDENT #12"), Ok(Command::Incident { id: 12 }));
        let e = parse("incident twelve").unwrap_err();
        assert!(
            e.0.contains("`twelve` is not an incident number"),
            "{}",
            e.0
        );
        assert!(parse("incident").unwrap_err().0.contains("Which incident?"));
    }

    #[test]
    fn unknown_is_named_and_cut() {
        let e = parse("restart prod").unwrap_err();
        assert_eq!(e.0, "`restart` is not a Sentinel command.");
        let e = parse(&"x".repeat(100)).unwrap_err();
        assert!(e.0.chars().count() < 70);
    }

    #[test]
    fn help_lists_every_subcommand() {
        let h = help_text(&Mrkdwn::own("/sentinel")).as_str().to_string();
        for (usage, _) in SUBCOMMANDS {
            assert!(h.contains(&format!("/sentinel {usage}")), "{usage}");
        }
    }
}
