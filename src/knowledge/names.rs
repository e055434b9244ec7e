//! Alert-name coverage: how much of a runbook's alert name the query text says.
//!
//! A runbook written for an alert is named after it (`NodeFilesystemAlmostOutOfSpace`),
//! and an alert's text usually paraphrases its name ("Filesystem has less than 5% space
//! left"). When the lists rank such a runbook about level with a topic runbook
//! (`filesystem_alerts.md`) or a sibling, the share of its name the query says breaks the
//! tie. Search multiplies a runbook's fused score by `1 + NAME_BOOST * coverage`, too
//! little to lift a runbook the other signals rank far down. Measured on the eval set:
//! recall@1 0.887 -> 0.925 (5 fixed, 1 broken), mostly against topic runbooks; among
//! alert-named siblings alone it is about neutral (README).
//!
//! Pure: words are compared as lexemes of the `sentinel_names` text search configuration
//! (English stems, stop words kept: in a name of a few words each one counts), which
//! ingest stores per name (`runbooks.name_lexemes`) and search reads for the query.

use std::collections::HashSet;

use super::query::camel_parts;
use super::runbook::{file_stem, Runbook};
use crate::text::words;

/// The most a full name match adds to a runbook's fused score, as a fraction of it.
/// Fused scores one rank apart differ by 1-2%; ten ranks apart by about 15%.
pub const NAME_BOOST: f64 = 0.1;

/// The alert names a runbook answers, each as its words separated by spaces: its
/// declared `alerts`, and its title and file name when they are alert-style identifiers
/// (`KubeAPIDown` -> `kube api down`). Prose titles and file names such as
/// `filesystem_alerts` name a topic, not an alert, and give none.
pub fn alert_name_words(r: &Runbook) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let declared = r.alerts.iter().map(|a| {
        let camel = camel_parts(a.trim());
        if camel.len() >= 2 {
            camel.join(" ")
        } else {
            words(a).join(" ")
        }
    });
    let identifiers = [r.title.trim(), file_stem(&r.path)]
        .into_iter()
        .map(camel_parts)
        .filter(|parts| parts.len() >= 2)
        .map(|parts| parts.join(" "));
    for name in declared.chain(identifiers) {
        if !name.is_empty() && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// The best share, over a runbook's names, of a name's lexemes found in the query's.
/// `names`: each name's lexemes separated by spaces (as stored). 0 without names.
pub fn coverage(names: &[String], query: &HashSet<String>) -> f64 {
    names
        .iter()
        .filter_map(|name| {
            let lexemes: Vec<&str> = name.split_whitespace().collect();
            if lexemes.is_empty() {
                return None;
            }
            let found = lexemes.iter().filter(|l| query.contains(**l)).count();
            Some(found as f64 / lexemes.len() as f64)
        })
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knowledge::runbook::parse;

    fn lexemes(words: &[&str]) -> HashSet<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn alert_style_titles_file_names_and_declared_alerts_are_names() {
        let hugo = parse(
            "node/NodeFilesystemSpaceFillingUp.md",
            "---\ntitle: Node Filesystem Space Filling Up\n---\n# Meaning\nDisk.\n",
        )
        .unwrap();
        assert_eq!(
            alert_name_words(&hugo),
            ["node filesystem space filling up"],
            "the file name is an identifier, the spaced title is not"
        );
        let ours = parse(
            "checkout.md",
            "---\ntitle: Checkout API is down\nalerts: [CheckoutApiDown, checkout_5xx_high]\n---\n# Checkout\nDown.\n",
        )
        .unwrap();
        assert_eq!(
            alert_name_words(&ours),
            ["checkout api down", "checkout 5xx high"]
        );
        let same = parse("KubeAPIDown.md", "---\ntitle: KubeAPIDown\n---\ntext\n").unwrap();
        assert_eq!(alert_name_words(&same), ["kube api down"], "no duplicates");
    }

    #[test]
    fn topic_named_runbooks_have_no_alert_name() {
        let gitlab = parse(
            "monitoring/filesystem_alerts.md",
            "# Filesystem alerts\ntext\n",
        )
        .unwrap();
        assert!(alert_name_words(&gitlab).is_empty());
        let readme = parse("README.md", "# Runbooks\ntext\n").unwrap();
        assert!(alert_name_words(&readme).is_empty());
    }

    #[test]
    fn coverage_is_the_best_share_of_a_name_the_query_says() {
        // "Filesystem ... out of space ... filling up": lexemes as Postgres stems them.
        let q = lexemes(&["filesystem", "predict", "run", "space", "fill", "mount"]);
        let space = ["node filesystem space fill".to_string()];
        let files = ["node filesystem file fill".to_string()];
        assert!((coverage(&space, &q) - 0.75).abs() < 1e-12);
        assert!((coverage(&files, &q) - 0.5).abs() < 1e-12);
        let two = ["kube job fail".to_string(), "filesystem space".to_string()];
        assert!(
            (coverage(&two, &q) - 1.0).abs() < 1e-12,
            "the best name counts"
        );
        assert_eq!(coverage(&[], &q), 0.0);
        assert_eq!(coverage(&[String::new()], &q), 0.0);
        assert_eq!(coverage(&space, &HashSet::new()), 0.0);
    }
}
