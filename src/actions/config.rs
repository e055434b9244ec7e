//! Action settings from the environment: the mode, the signing keys, who administers, the
//! process environment allow-list, the blast-radius caps and the proposal lifetime.

use std::time::Duration;

use super::value::Keys;
use crate::config::{parse_or, Env};
use crate::error::UserError;

/// `SENTINEL_ACTIONS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Nothing is proposed or run.
    Off,
    /// Everything but the process: runs are described, labelled dry run.
    DryRun,
    On,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::DryRun => "dry-run",
            Mode::On => "on",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ActionsConfig {
    pub mode: Mode,
    /// `SENTINEL_ACTION_SIGNING_KEY`; without it no action is proposed.
    pub keys: Option<Keys>,
    /// `SENTINEL_ACTION_ADMINS`: Slack user ids who may pause and resume.
    pub admins: Vec<String>,
    /// `SENTINEL_ACTION_APPROVERS`: approvers of actions that declare none.
    pub default_approvers: Vec<String>,
    /// `SENTINEL_ACTION_ENV`: variables passed to actions (all others are cleared).
    pub env_allow: Vec<String>,
    /// `SENTINEL_ACTION_MAX_RUNS_PER_HOUR` (all actions) and `..._PER_ACTION_PER_HOUR`.
    pub max_runs_per_hour: i64,
    pub max_runs_per_action_per_hour: i64,
    /// `SENTINEL_ACTION_TTL_MINS`: proposals expire after this long.
    pub ttl: Duration,
    /// `SENTINEL_ACTION_OUTPUT_BYTES`: output kept per run (the rest is cut).
    pub output_cap: usize,
    /// `SENTINEL_AUTO_APPROVE=on`: low-risk actions marked `auto_approve` run without a click.
    pub auto_approve: bool,
    /// When set, only actions whose program (`argv[0]`) is listed really run; the others
    /// run as a dry run (described, labelled). The demo and the playground set `["echo"]`,
    /// so trying Sentinel never touches whatever a `kubectl` on the machine points at.
    pub live_programs: Option<Vec<String>>,
}

impl Default for ActionsConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Off,
            keys: None,
            admins: Vec::new(),
            default_approvers: Vec::new(),
            env_allow: vec!["PATH".into(), "KUBECONFIG".into()],
            max_runs_per_hour: 20,
            max_runs_per_action_per_hour: 5,
            ttl: Duration::from_secs(30 * 60),
            output_cap: 8 * 1024,
            auto_approve: false,
            live_programs: None,
        }
    }
}

fn list(env: &dyn Env, key: &str) -> Option<Vec<String>> {
    env.get(key).map(|v| {
        v.split([',', ' '])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    })
}

impl ActionsConfig {
    /// Whether an action is only described: dry-run mode, or one of its commands (`argvs`:
    /// the command, its verification, its rollback) runs a program outside
    /// [`ActionsConfig::live_programs`]. All of an action's commands run, or none.
    pub fn dry<'a>(&self, argvs: impl IntoIterator<Item = &'a Vec<String>>) -> bool {
        self.mode == Mode::DryRun
            || self.live_programs.as_ref().is_some_and(|live| {
                argvs
                    .into_iter()
                    .any(|argv| !argv.first().is_some_and(|prog| live.contains(prog)))
            })
    }

    pub fn from_env(env: &dyn Env) -> Result<Self, UserError> {
        let d = Self::default();
        let mode = match env.get("SENTINEL_ACTIONS").as_deref().map(str::trim) {
            None | Some("off") | Some("") => Mode::Off,
            Some("dry-run") | Some("dry_run") => Mode::DryRun,
            Some("on") => Mode::On,
            Some(other) => {
                return Err(UserError::new(format!(
                    "SENTINEL_ACTIONS must be off, dry-run or on, not `{}`",
                    crate::text::truncate_chars(other, 20)
                )))
            }
        };
        let keys = match env.get("SENTINEL_ACTION_SIGNING_KEY") {
            Some(spec) => Some(Keys::parse(&spec).map_err(UserError::new)?),
            None => None,
        };
        if mode != Mode::Off && keys.is_none() {
            return Err(UserError::new(format!(
                "SENTINEL_ACTIONS={} needs SENTINEL_ACTION_SIGNING_KEY (at least 32 random characters) to sign buttons",
                mode.name()
            )));
        }
        let auto_approve = match env.get("SENTINEL_AUTO_APPROVE").as_deref().map(str::trim) {
            None | Some("off") | Some("") => false,
            Some("on") => true,
            Some(other) => {
                return Err(UserError::new(format!(
                    "SENTINEL_AUTO_APPROVE must be on or off, not `{}`",
                    crate::text::truncate_chars(other, 20)
                )))
            }
        };
        let ttl_mins: u64 = parse_or(env, "SENTINEL_ACTION_TTL_MINS", 30)?;
        Ok(Self {
            mode,
            keys,
            admins: list(env, "SENTINEL_ACTION_ADMINS").unwrap_or_default(),
            default_approvers: list(env, "SENTINEL_ACTION_APPROVERS").unwrap_or_default(),
            env_allow: list(env, "SENTINEL_ACTION_ENV").unwrap_or(d.env_allow),
            max_runs_per_hour: parse_or(
                env,
                "SENTINEL_ACTION_MAX_RUNS_PER_HOUR",
                d.max_runs_per_hour,
            )?,
            max_runs_per_action_per_hour: parse_or(
                env,
                "SENTINEL_ACTION_MAX_RUNS_PER_ACTION_PER_HOUR",
                d.max_runs_per_action_per_hour,
            )?,
            ttl: Duration::from_secs(ttl_mins.clamp(1, 24 * 60) * 60),
            output_cap: parse_or(env, "SENTINEL_ACTION_OUTPUT_BYTES", d.output_cap)?
                .clamp(256, 64 * 1024),
            auto_approve,
            live_programs: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_env as env;

    #[test]
    fn off_by_default_and_on_needs_a_key() {
        let c = ActionsConfig::from_env(&env(&[])).unwrap();
        assert_eq!(c.mode, Mode::Off);
        let e = ActionsConfig::from_env(&env(&[("SENTINEL_ACTIONS", "on")])).unwrap_err();
        assert!(e.to_string().contains("SENTINEL_ACTION_SIGNING_KEY"), "{e}");
        let c = ActionsConfig::from_env(&env(&[
            ("SENTINEL_ACTIONS", "dry-run"),
            (
                "SENTINEL_ACTION_SIGNING_KEY",
                "k1:0123456789abcdef0123456789abcdef",
            ),
            ("SENTINEL_ACTION_ADMINS", "U1, U2"),
        ]))
        .unwrap();
        assert_eq!(c.mode, Mode::DryRun);
        assert_eq!(c.admins, vec!["U1", "U2"]);
        assert!(ActionsConfig::from_env(&env(&[("SENTINEL_ACTIONS", "yes")])).is_err());
    }

    #[test]
    fn only_listed_programs_really_run_when_a_list_is_set() {
        let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut cfg = ActionsConfig {
            mode: Mode::On,
            ..ActionsConfig::default()
        };
        let kubectl = argv(&["kubectl", "rollout", "restart"]);
        let echo = argv(&["echo", "restarted"]);
        assert!(!cfg.dry([&kubectl]));
        cfg.live_programs = Some(vec!["echo".into()]);
        assert!(!cfg.dry([&echo]));
        assert!(!cfg.dry([&echo, &argv(&["echo", "ok"])]));
        assert!(cfg.dry([&kubectl]));
        assert!(
            cfg.dry([&echo, &kubectl]),
            "an echo whose verification or rollback is kubectl runs nothing"
        );
        assert!(
            cfg.dry([&argv(&["/bin/echo", "x"])]),
            "the program as declared"
        );
        assert!(cfg.dry([&Vec::new()]));
        cfg.mode = Mode::DryRun;
        assert!(cfg.dry([&echo]));
    }
}
