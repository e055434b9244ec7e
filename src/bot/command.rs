//! `/sentinel` subcommands: text in, `Command` out, without I/O.

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
];

/// A user mistake, answered with a sentence and the help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

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
        "incidents" | "incident" => match crate::incidents::commands::parse(text) {
            Ok(Some(crate::incidents::commands::IncidentCommand::Show(id))) => {
                Ok(Command::Incident { id })
            }
            Ok(_) => Ok(Command::Incidents),
            Err(e) => Err(ParseError(e.to_string())),
        },
        "status" | "version" => Ok(Command::Status),
        other => Err(ParseError(format!(
            "`{}` is not a Sentinel command.",
            crate::text::truncate_chars(other, 40)
        ))),
    }
}

/// The help text (Slack mrkdwn).
pub fn help_text(command: &str) -> String {
    let mut out = format!("*Sentinel commands* (`{command} <command>`)\n");
    for (usage, what) in SUBCOMMANDS {
        out.push_str(&format!("• `{command} {usage}`: {what}\n"));
    }
    out.push_str("Mention me with a question to get the best runbook sections in a thread.");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let h = help_text("/sentinel");
        for (usage, _) in SUBCOMMANDS {
            assert!(h.contains(&format!("/sentinel {usage}")), "{usage}");
        }
    }
}
