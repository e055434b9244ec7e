//! The action catalog and source links for the runbooks behind a set of search hits.
//!
//! Actions live as JSONB in `runbooks.actions`; only the runbooks of retrieved hits
//! contribute, so the model can only pick actions those runbooks declare.

use std::collections::{BTreeMap, HashMap};

use anyhow::Context;
use sqlx::PgPool;

use super::Source;
use crate::knowledge::actions::Action;
use crate::knowledge::Hit;

/// An action the matched runbooks declare.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogEntry {
    pub action: Action,
    pub runbook_path: String,
}

/// Actions by id (first runbook in hit order wins a clash) plus each runbook's declared URLs.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub actions: BTreeMap<String, CatalogEntry>,
    pub runbook_urls: HashMap<String, Vec<String>>,
}

impl Catalog {
    /// Loads the catalog of the runbooks behind `hits`, in hit order.
    pub async fn load(pool: &PgPool, hits: &[Hit]) -> anyhow::Result<Self> {
        let mut paths: Vec<String> = Vec::new();
        for h in hits {
            if !paths.contains(&h.runbook_path) {
                paths.push(h.runbook_path.clone());
            }
        }
        if paths.is_empty() {
            return Ok(Self::default());
        }
        let rows: Vec<(String, Vec<String>, serde_json::Value)> =
            sqlx::query_as("SELECT path, urls, actions FROM runbooks WHERE path = ANY($1)")
                .bind(&paths)
                .fetch_all(pool)
                .await
                .context("Failed to load the runbooks' action catalog")?;
        let mut by_path: HashMap<String, (Vec<String>, serde_json::Value)> =
            rows.into_iter().map(|(p, u, a)| (p, (u, a))).collect();
        let mut out = Self::default();
        for path in paths {
            let Some((urls, actions)) = by_path.remove(&path) else {
                continue;
            };
            out.add(&path, urls, actions);
        }
        Ok(out)
    }

    /// Adds one runbook's declared actions; invalid declarations are skipped and logged.
    pub fn add(&mut self, path: &str, urls: Vec<String>, actions: serde_json::Value) {
        let list: Vec<Action> = match serde_json::from_value(actions) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(runbook = path, error = %e, "runbook actions are not a valid catalog");
                Vec::new()
            }
        };
        for a in list {
            if let Err(problems) = a.validate() {
                tracing::warn!(runbook = path, action = %a.id, ?problems, "skipping invalid action");
                continue;
            }
            self.actions
                .entry(a.id.clone())
                .or_insert_with(|| CatalogEntry {
                    action: a,
                    runbook_path: path.to_string(),
                });
        }
        self.runbook_urls.insert(path.to_string(), urls);
    }

    /// A browsable link to a section: `{base}/{path}#{anchor}`, else the runbook's first URL.
    pub fn link(&self, base: Option<&str>, path: &str, anchor: &str) -> Option<String> {
        if let Some(url) = crate::slack::message::section_url(base, path, anchor) {
            return Some(url);
        }
        let frag = if anchor.is_empty() {
            String::new()
        } else {
            format!("#{anchor}")
        };
        self.runbook_urls
            .get(path)
            .and_then(|u| u.first())
            .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
            .map(|u| format!("{u}{frag}"))
    }

    /// The hits as numbered sources with links.
    pub fn sources(&self, hits: &[Hit], base: Option<&str>) -> Vec<Source> {
        hits.iter()
            .enumerate()
            .map(|(i, h)| Source {
                id: format!("S{}", i + 1),
                chunk_id: h.chunk_id.clone(),
                runbook_path: h.runbook_path.clone(),
                runbook_title: h.runbook_title.clone(),
                heading: h.heading(),
                anchor: h.anchor.clone(),
                body: h.body.clone(),
                url: self.link(base, &h.runbook_path, &h.anchor),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn invalid_actions_are_skipped_and_first_runbook_wins() {
        let mut c = Catalog::default();
        c.add(
            "a.md",
            vec!["https://wiki.example/a".into()],
            json!([
                {"id": "restart", "title": "Restart", "command": ["kubectl", "rollout", "restart"]},
                {"id": "shell", "title": "Shell", "command": ["bash", "-c", "x"]}
            ]),
        );
        c.add(
            "b.md",
            vec![],
            json!([{"id": "restart", "title": "Other", "command": ["true"]}]),
        );
        assert_eq!(c.actions.len(), 1);
        assert_eq!(c.actions["restart"].runbook_path, "a.md");
        assert_eq!(
            c.link(None, "a.md", "meaning").as_deref(),
            Some("https://wiki.example/a#meaning")
        );
        assert_eq!(c.link(None, "b.md", "x"), None);
        assert_eq!(
            c.link(Some("https://git.example/rb/blob/main"), "b.md", "x")
                .as_deref(),
            Some("https://git.example/rb/blob/main/b.md#x")
        );
    }
}
