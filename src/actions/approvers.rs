//! Who may approve: an action's `approvers` are Slack user ids (`U…`, `W…`) and user-group
//! handles (`@checkout-oncall`). A handle is looked up with `usergroups.list`, its members
//! with `usergroups.users.list`, and cached briefly. User groups need a paid Slack plan, so
//! plain user ids never depend on them: a lookup that fails only loses the group.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::json;

use crate::slack::SlackClient;

/// Where group members and display names come from (Slack's Web API).
#[async_trait]
pub trait Directory: Send + Sync {
    /// Members of the user group with this handle (without `@`); `None` if no such group.
    async fn group_members(&self, handle: &str) -> anyhow::Result<Option<Vec<String>>>;
    /// A person's display name, for the audit log.
    async fn user_name(&self, user_id: &str) -> anyhow::Result<Option<String>>;
}

#[async_trait]
impl Directory for SlackClient {
    async fn group_members(&self, handle: &str) -> anyhow::Result<Option<Vec<String>>> {
        let groups = self.call("usergroups.list", json!({})).await?;
        let id = groups["usergroups"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|g| g["handle"].as_str() == Some(handle))
            .and_then(|g| g["id"].as_str().map(str::to_string));
        let Some(id) = id else {
            return Ok(None);
        };
        let users = self
            .call("usergroups.users.list", json!({ "usergroup": id }))
            .await?;
        Ok(Some(
            users["users"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|u| u.as_str().map(str::to_string))
                .collect(),
        ))
    }

    async fn user_name(&self, user_id: &str) -> anyhow::Result<Option<String>> {
        let u = self.call("users.info", json!({ "user": user_id })).await?;
        Ok(u["user"]["profile"]["display_name"]
            .as_str()
            .filter(|s| !s.is_empty())
            .or_else(|| u["user"]["name"].as_str())
            .map(str::to_string))
    }
}

/// How long a group's members (and a person's display name) are trusted.
const CACHE_TTL: Duration = Duration::from_secs(60);

/// What the directory said, kept for [`CACHE_TTL`]: group members by handle, and display
/// names by user id (a click's audit entry names its person without a Slack round trip).
#[derive(Default)]
pub struct DirectoryCache {
    groups: Mutex<HashMap<String, (Instant, Vec<String>)>>,
    names: Mutex<HashMap<String, (Instant, String)>>,
}

type Entries<V> = Mutex<HashMap<String, (Instant, V)>>;

fn fresh<V: Clone>(map: &Entries<V>, key: &str) -> Option<V> {
    let m = map.lock().ok()?;
    m.get(key)
        .filter(|(at, _)| at.elapsed() < CACHE_TTL)
        .map(|(_, v)| v.clone())
}

fn remember<V>(map: &Entries<V>, key: &str, v: V) {
    if let Ok(mut m) = map.lock() {
        m.insert(key.to_string(), (Instant::now(), v));
    }
}

/// Whether an approvers entry is a user id.
pub fn is_user_id(entry: &str) -> bool {
    (entry.starts_with('U') || entry.starts_with('W'))
        && entry.len() >= 3
        && entry.len() <= 20
        && entry
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

impl DirectoryCache {
    /// Whether `user` is one of `approvers` (directly, or through a group).
    pub async fn allows(
        &self,
        dir: Option<&dyn Directory>,
        approvers: &[String],
        user: &str,
    ) -> bool {
        if approvers.iter().any(|a| a == user) {
            return true;
        }
        let Some(dir) = dir else {
            return false;
        };
        for handle in approvers.iter().filter_map(|a| a.strip_prefix('@')) {
            if self.members(dir, handle).await.iter().any(|m| m == user) {
                return true;
            }
        }
        false
    }

    /// `user_id`'s display name, if the directory knows one.
    pub async fn name(&self, dir: &dyn Directory, user_id: &str) -> Option<String> {
        if let Some(n) = fresh(&self.names, user_id) {
            return Some(n);
        }
        let n = dir.user_name(user_id).await.ok().flatten()?;
        remember(&self.names, user_id, n.clone());
        Some(n)
    }

    async fn members(&self, dir: &dyn Directory, handle: &str) -> Vec<String> {
        if let Some(m) = fresh(&self.groups, handle) {
            return m;
        }
        match dir.group_members(handle).await {
            Ok(m) => {
                let m = m.unwrap_or_default();
                remember(&self.groups, handle, m.clone());
                m
            }
            Err(e) => {
                tracing::warn!(group = handle, error = %format!("{e:#}"), "cannot look up a user group");
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct Fake {
        lookups: AtomicUsize,
    }

    #[async_trait]
    impl Directory for Fake {
        async fn group_members(&self, handle: &str) -> anyhow::Result<Option<Vec<String>>> {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            match handle {
                "oncall" => Ok(Some(vec!["U0ALICE".into(), "U0BOB".into()])),
                "broken" => anyhow::bail!("missing_scope"),
                _ => Ok(None),
            }
        }
        async fn user_name(&self, user_id: &str) -> anyhow::Result<Option<String>> {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            match user_id {
                "U0ALICE" => Ok(Some("alice".into())),
                "U0BROKEN" => anyhow::bail!("timeout"),
                _ => Ok(None),
            }
        }
    }

    #[tokio::test]
    async fn display_names_are_looked_up_once_and_failures_not_kept() {
        let (c, d) = (DirectoryCache::default(), Fake::default());
        assert_eq!(c.name(&d, "U0ALICE").await.as_deref(), Some("alice"));
        assert_eq!(c.name(&d, "U0ALICE").await.as_deref(), Some("alice"));
        assert_eq!(
            d.lookups.load(Ordering::SeqCst),
            1,
            "the second from the cache"
        );
        assert_eq!(c.name(&d, "U0BROKEN").await, None);
        assert_eq!(c.name(&d, "U0BROKEN").await, None);
        assert_eq!(
            d.lookups.load(Ordering::SeqCst),
            3,
            "a failure is asked again"
        );
    }

    fn list(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn ids_and_group_members_are_allowed_and_others_not() {
        let (c, d) = (DirectoryCache::default(), Fake::default());
        let approvers = list(&["U0CAROL", "@oncall"]);
        assert!(c.allows(Some(&d), &approvers, "U0CAROL").await);
        assert!(c.allows(Some(&d), &approvers, "U0ALICE").await);
        assert!(!c.allows(Some(&d), &approvers, "U0MALLORY").await);
        assert!(c.allows(Some(&d), &approvers, "U0BOB").await);
        assert_eq!(d.lookups.load(Ordering::SeqCst), 1, "cached");
    }

    #[tokio::test]
    async fn without_groups_user_ids_still_work() {
        let (c, d) = (DirectoryCache::default(), Fake::default());
        let approvers = list(&["@broken", "@missing", "U0CAROL"]);
        assert!(c.allows(Some(&d), &approvers, "U0CAROL").await);
        assert!(!c.allows(Some(&d), &approvers, "U0ALICE").await);
        assert!(c.allows(None, &approvers, "U0CAROL").await);
        assert!(is_user_id("U0CAROL") && !is_user_id("@oncall") && !is_user_id("u1"));
    }
}
