//! What a proposal looks like in Slack, in each of its states: one message, updated in place
//! (`chat.update`), with the buttons its state allows; and the thread reply of a run.

use super::runner::Exit;
use super::store::{state, Proposal};
use super::value::{Click, ClickKind, Keys};
use crate::mrkdwn;
use crate::slack::blocks::{self, Confirm, Style};
use crate::slack::{Message, Mrkdwn, Plain};

/// What rendering needs besides the row.
pub struct View<'a> {
    pub keys: &'a Keys,
    /// Which actions are only described (`ActionsConfig::dry`).
    pub cfg: &'a super::ActionsConfig,
    /// Unix seconds; Rollback and Stop buttons are valid for `button_ttl` from here.
    pub now: i64,
    pub button_ttl: i64,
}

/// An argv as a reader should see it: each item quoted when it has spaces or quotes.
pub fn argv_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if a.is_empty()
                || a.chars()
                    .any(|c| c.is_whitespace() || "'\"\\$`".contains(c))
            {
                format!("'{}'", a.replace('\'', "'\\''"))
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn who(ids: &[String]) -> Mrkdwn {
    if ids.is_empty() {
        return Mrkdwn::own("nobody (no approvers configured)");
    }
    Mrkdwn::own(
        ids.iter()
            .map(|a| Mrkdwn::code(a).to_string())
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// The line that says where the proposal stands.
fn status(p: &Proposal) -> Mrkdwn {
    let by = Mrkdwn::code(p.decided_by.as_deref().unwrap_or("sentinel"));
    let approved = who(&p.approved_by);
    match p.state.as_str() {
        state::PROPOSED if p.approvals_needed > 1 => Mrkdwn::own(format!(
            "⏸ Waiting for {} distinct approvers (two-person rule).",
            p.approvals_needed
        )),
        state::PROPOSED => Mrkdwn::own("⏸ Waiting for approval."),
        state::AWAITING_SECOND => mrkdwn!("☝️ Approved by {}; waiting for a second, different approver.", approved),
        state::APPROVED if p.auto => Mrkdwn::own("🤖 Auto-approved; starting."),
        state::APPROVED => mrkdwn!("👍 Approved by {}; starting.", approved),
        state::RUNNING => mrkdwn!("⏳ Running (approved by {}).", approved),
        state::VERIFYING => mrkdwn!("🔎 Ran ({}); verifying.", exit_text(p)),
        state::SUCCEEDED => mrkdwn!("✅ Done: {} (no verification declared).", exit_text(p)),
        state::VERIFIED => mrkdwn!("✅ Verified: the action ran ({}) and its check passed.", exit_text(p)),
        state::FAILED => mrkdwn!("❌ Failed: {}.", exit_text(p)),
        state::VERIFY_FAILED => mrkdwn!("❌ Ran ({}), but its check never passed.", exit_text(p)),
        state::OUTCOME_UNKNOWN => Mrkdwn::own(
            "⚠️ Outcome unknown: the replica running it stopped before the run ended. It was not re-run; check by hand.",
        ),
        state::REJECTED => mrkdwn!("🚫 Rejected by {}. Nothing ran.", by),
        state::EXPIRED => Mrkdwn::own("⌛ Expired before it was approved. Nothing ran."),
        state::STOPPED => mrkdwn!("🛑 Stopped by {}.", by),
        state::ROLLING_BACK => mrkdwn!("↩️ Rolling back (asked by {}).", by),
        state::ROLLED_BACK => Mrkdwn::own("↩️ Rolled back."),
        state::ROLLBACK_FAILED => Mrkdwn::own("❌ The rollback failed too; check by hand."),
        other => Mrkdwn::code(other),
    }
}

fn exit_text(p: &Proposal) -> Mrkdwn {
    match p.exit_code {
        Some(c) => mrkdwn!("exit status {}", c),
        None => Mrkdwn::own("no exit status"),
    }
}

fn button(view: &View, p: &Proposal, kind: ClickKind, expires: i64) -> serde_json::Value {
    let value = view.keys.sign(Click {
        proposal: p.id,
        kind,
        expires,
    });
    let (label, style) = match kind {
        ClickKind::Approve => ("Approve", Some(Style::Primary)),
        ClickKind::Reject => ("Reject", None),
        ClickKind::DryRun => ("Dry run", None),
        ClickKind::Rollback => ("Roll back", Some(Style::Danger)),
        ClickKind::Stop => ("Stop", Some(Style::Danger)),
    };
    let confirm = (kind == ClickKind::Approve && p.risk != "low").then(|| Confirm {
        title: Plain::own("Run this action?"),
        text: Plain::untrusted(&format!(
            "{} ({} risk) runs: {}",
            p.title,
            p.risk,
            crate::text::truncate_chars(&argv_line(&p.argv), 200)
        )),
        confirm: Plain::own("Approve and run"),
        deny: Plain::own("Cancel"),
    });
    blocks::styled_button(
        &Plain::own(label),
        kind.action_id(),
        &value,
        style,
        confirm.as_ref(),
    )
}

/// The proposal message in its current state.
pub fn proposal(p: &Proposal, view: &View) -> Message {
    let risk = match p.risk.as_str() {
        "high" => "🔴 high",
        "medium" => "🟠 medium",
        _ => "🟢 low",
    };
    let dry = if view.cfg.dry(p.commands()) {
        " · *dry run: nothing really runs*"
    } else {
        ""
    };
    let head = mrkdwn!(
        "🛠 *{}* · risk {}{}",
        Mrkdwn::untrusted(&p.title),
        Mrkdwn::own(risk),
        Mrkdwn::own(dry)
    );
    let mut lines = vec![mrkdwn!("Runs: {}", Mrkdwn::code(&argv_line(&p.argv)))];
    if let Some(v) = &p.verify_argv {
        lines.push(mrkdwn!("Then checks: {}", Mrkdwn::code(&argv_line(v))));
    }
    if let Some(r) = &p.rollback_argv {
        let how = if p.rollback_auto {
            " (by itself if the check fails)"
        } else {
            ""
        };
        lines.push(mrkdwn!(
            "Rollback: {}{}",
            Mrkdwn::code(&argv_line(r)),
            Mrkdwn::own(how)
        ));
    }
    let mut approvers = mrkdwn!("Who may approve: {}", who(&p.approvers));
    if let Some(r) = &p.requested_by {
        approvers = mrkdwn!(
            "{} · requested by {} (who cannot approve it)",
            approvers,
            Mrkdwn::code(r)
        );
    }
    lines.push(approvers);
    let expires = p.expires_at.timestamp();
    if state::OPEN.contains(&p.state.as_str()) {
        lines.push(Mrkdwn::own(format!(
            "Expires <!date^{expires}^{{date_short_pretty}} {{time}}|{}>",
            p.expires_at.format("%Y-%m-%d %H:%M UTC")
        )));
    }
    let body = Mrkdwn::own(
        lines
            .iter()
            .map(Mrkdwn::as_str)
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let status = status(p);
    let mut blocks = vec![
        blocks::section(&head),
        blocks::section(&body),
        blocks::section(&status),
    ];
    let later = view.now + view.button_ttl;
    let buttons: Vec<serde_json::Value> = match p.state.as_str() {
        s if state::OPEN.contains(&s) => [ClickKind::Approve, ClickKind::Reject, ClickKind::DryRun]
            .into_iter()
            .map(|k| button(view, p, k, expires))
            .collect(),
        s if state::ROLLBACKABLE.contains(&s) && p.rollback_argv.is_some() && !p.rollback_auto => {
            vec![button(view, p, ClickKind::Rollback, later)]
        }
        state::RUNNING | state::APPROVED if p.auto => vec![button(view, p, ClickKind::Stop, later)],
        _ => Vec::new(),
    };
    if !buttons.is_empty() {
        blocks.push(blocks::actions(&format!("proposal-{}", p.id), buttons));
    }
    let mut context = mrkdwn!(
        "Proposal #{} · from {}",
        p.id,
        Mrkdwn::code(&p.runbook_path)
    );
    if let Some(i) = p.incident_id {
        context = mrkdwn!("{} · incident #{}", context, i);
    }
    blocks.push(blocks::context(&[context]));
    let text = mrkdwn!(
        "Proposed action: {} — {}",
        Mrkdwn::untrusted(&p.title),
        status
    );
    Message::new(&text, blocks)
}

/// The thread reply after a run (or its verification, or rollback): what happened and the
/// captured (already redacted) output.
pub fn outcome(
    p: &Proposal,
    what: &str,
    exit: &Exit,
    timeout_secs: u64,
    output: &str,
    dry_run: bool,
) -> Message {
    let icon = if exit.success() { "✅" } else { "❌" };
    let label = if dry_run {
        " (dry run: nothing ran)"
    } else {
        ""
    };
    let head = mrkdwn!(
        "{} *{}* {}: {}{}",
        Mrkdwn::own(icon),
        Mrkdwn::untrusted(&p.title),
        Mrkdwn::own(what.to_string()),
        Mrkdwn::own(exit.describe(std::time::Duration::from_secs(timeout_secs))),
        Mrkdwn::own(label)
    );
    let mut blocks = vec![blocks::section(&head)];
    let out = output.trim();
    if !out.is_empty() {
        let cut = crate::text::truncate_chars(out, 2800);
        blocks.push(blocks::section(&Mrkdwn::own(format!(
            "```{}```",
            Mrkdwn::untrusted(&cut)
        ))));
    }
    Message::new(&head, blocks)
}

/// A short thread line (not offered, auto-approval switched off, ...).
pub fn note(text: Mrkdwn) -> Message {
    Message::new(&text, vec![blocks::section(&text)])
}
