//! `sentinel audit verify`: walks the chain in `seq` order, in batches (never the whole log
//! in memory), and names the first row that was changed, removed, inserted or moved.
//!
//! [`Walker`] is the pure part: fed rows in order, it checks that `seq` follows on, that
//! `prev_hash` is the hash of the row before, and that `hash` is the keyed hash of the
//! row's canonical bytes.

use serde_json::json;
use sqlx::PgPool;

use super::chain::{self, GENESIS};
use super::store::batch_after;
use super::{AuditKey, Head, StoredEvent};

/// Rows per read. Big enough that round trips do not count, small enough to stay a few MB.
const BATCH: i64 = 10_000;

/// The result of a walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Rows read: all of them when intact, up to and including the first bad one otherwise.
    pub events: i64,
    /// The head reached (`(0, GENESIS)` for an empty log), or the first break.
    pub result: Result<Head, Break>,
}

/// Where and how the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// The first sequence number whose row is not what the chain says.
    pub first_bad_seq: i64,
    pub problem: Problem,
    /// What the chain expected there and what the table holds (see [`Problem`]).
    pub expected_hash: String,
    pub found_hash: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// The row's contents (or the key) differ from what was hashed: expected is the hash
    /// recomputed from the row, found the stored `hash`.
    Altered,
    /// The row does not link to the row before it (rows reordered or inserted): expected is
    /// the previous row's hash, found the row's `prev_hash`.
    BrokenLink,
    /// Sequence numbers skip `first_bad_seq` (rows removed): expected is the previous
    /// row's hash, found the `prev_hash` of the next row present.
    Missing,
    /// The log ends before the anchored head given to `verify_with`: expected is the
    /// anchored hash, found the last hash in the table.
    Truncated,
    /// The anchored head's row exists but carries another hash.
    AnchorMismatch,
}

impl Problem {
    pub fn code(self) -> &'static str {
        match self {
            Problem::Altered => "altered",
            Problem::BrokenLink => "broken_link",
            Problem::Missing => "missing",
            Problem::Truncated => "truncated",
            Problem::AnchorMismatch => "anchor_mismatch",
        }
    }
}

impl Break {
    /// One sentence for people.
    pub fn reason(&self) -> String {
        let s = self.first_bad_seq;
        match self.problem {
            Problem::Altered => format!("row {s} was changed after it was written (or the key is wrong): its hash does not match its contents"),
            Problem::BrokenLink => format!("row {s} does not follow row {}: its prev_hash is not that row's hash (rows inserted or reordered)", s - 1),
            Problem::Missing => format!("row {s} is missing: sequence numbers skip it (rows deleted)"),
            Problem::Truncated => format!("the log ends before the anchored head: row {s} and later are missing"),
            Problem::AnchorMismatch => format!("row {s} does not carry the anchored hash"),
        }
    }
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.result.is_ok()
    }

    /// The documented `--json` line (docs/audit.md).
    pub fn to_json(&self) -> serde_json::Value {
        match &self.result {
            Ok(h) => {
                json!({"events": self.events, "ok": true, "head_seq": h.seq, "head_hash": h.hash})
            }
            Err(b) => json!({
                "events": self.events,
                "ok": false,
                "first_bad_seq": b.first_bad_seq,
                "expected_hash": b.expected_hash,
                "found_hash": b.found_hash,
                "problem": b.problem.code(),
                "reason": b.reason(),
            }),
        }
    }

    /// The human form: one line.
    pub fn summary(&self) -> String {
        match &self.result {
            Ok(h) => format!(
                "audit log intact: {} events, head seq {} hash {}",
                self.events, h.seq, h.hash
            ),
            Err(b) => format!(
                "audit log BROKEN at seq {}: {} (expected {}, found {})",
                b.first_bad_seq,
                b.reason(),
                b.expected_hash,
                b.found_hash
            ),
        }
    }
}

/// The chain check, fed one row at a time in `seq` order.
pub struct Walker<'k> {
    key: &'k AuditKey,
    seq: i64,
    prev: [u8; 32],
    prev_hex: String,
    events: i64,
}

impl<'k> Walker<'k> {
    pub fn new(key: &'k AuditKey) -> Self {
        Self {
            key,
            seq: 0,
            prev: [0; 32],
            prev_hex: GENESIS.to_string(),
            events: 0,
        }
    }

    /// Checks the next row; the first break ends the walk.
    pub fn feed(&mut self, row: &StoredEvent) -> Result<(), Break> {
        self.events += 1;
        let want = self.seq + 1;
        let link = |problem| Break {
            first_bad_seq: want,
            problem,
            expected_hash: self.prev_hex.clone(),
            found_hash: row.prev_hash.clone(),
        };
        if row.seq != want {
            return Err(link(if row.seq > want {
                Problem::Missing
            } else {
                Problem::BrokenLink
            }));
        }
        if row.prev_hash != self.prev_hex {
            return Err(link(Problem::BrokenLink));
        }
        let expected = chain::expected_hash(self.key, &self.prev, row);
        let expected_hex = hex::encode(expected);
        if row.hash != expected_hex {
            return Err(Break {
                first_bad_seq: want,
                problem: Problem::Altered,
                expected_hash: expected_hex,
                found_hash: row.hash.clone(),
            });
        }
        self.seq = want;
        self.prev = expected;
        self.prev_hex = expected_hex;
        Ok(())
    }

    /// The head reached, checked against an anchored head if one is given.
    pub fn finish(self, anchor: Option<&Head>, anchor_hash_at: Option<&str>) -> VerifyReport {
        let head = Head {
            seq: self.seq,
            hash: self.prev_hex,
        };
        let result = match anchor {
            Some(a) if a.seq > head.seq => Err(Break {
                first_bad_seq: head.seq + 1,
                problem: Problem::Truncated,
                expected_hash: a.hash.clone(),
                found_hash: head.hash.clone(),
            }),
            Some(a) if a.seq > 0 && anchor_hash_at != Some(a.hash.as_str()) => Err(Break {
                first_bad_seq: a.seq,
                problem: Problem::AnchorMismatch,
                expected_hash: a.hash.clone(),
                found_hash: anchor_hash_at.unwrap_or_default().to_string(),
            }),
            _ => Ok(head),
        };
        VerifyReport {
            events: self.events,
            result,
        }
    }

    fn broken(self, b: Break) -> VerifyReport {
        VerifyReport {
            events: self.events,
            result: Err(b),
        }
    }
}

/// Walks the whole log with `key`.
pub async fn verify(pool: &PgPool, key: &AuditKey) -> anyhow::Result<VerifyReport> {
    verify_with(pool, key, None).await
}

/// As [`verify`]; with `anchor` (a head published earlier, e.g. in the audit channel), the
/// log must also reach it and hold its hash there, which catches rows cut off the end.
/// The next batch is read while the current one is checked.
pub async fn verify_with(
    pool: &PgPool,
    key: &AuditKey,
    anchor: Option<&Head>,
) -> anyhow::Result<VerifyReport> {
    let mut walker = Walker::new(key);
    let mut anchor_hash_at = None;
    let mut next = tokio::spawn(read(pool.clone(), 0));
    loop {
        let batch = next.await??;
        let Some(last) = batch.last() else { break };
        next = tokio::spawn(read(pool.clone(), last.seq));
        for row in &batch {
            if let Err(b) = walker.feed(row) {
                next.abort();
                return Ok(walker.broken(b));
            }
            if anchor.is_some_and(|a| a.seq == row.seq) {
                anchor_hash_at = Some(row.hash.clone());
            }
        }
    }
    Ok(walker.finish(anchor, anchor_hash_at.as_deref()))
}

/// Parses `--anchor SEQ:HASH` (as the anchor message shows them).
pub fn parse_anchor(s: &str) -> Result<Head, String> {
    let bad = || format!("`{s}` is not SEQ:HASH (e.g. 1234:9f86d0...; 64 hex digits)");
    let (seq, hash) = s.trim().split_once(':').ok_or_else(bad)?;
    let seq: i64 = seq.trim().parse().map_err(|_| bad())?;
    let hash = hash.trim().to_ascii_lowercase();
    if seq < 0 || chain::decode_hash(&hash).is_none() {
        return Err(bad());
    }
    Ok(Head { seq, hash })
}

async fn read(pool: PgPool, after: i64) -> anyhow::Result<Vec<StoredEvent>> {
    batch_after(&pool, after, BATCH, None, None).await
}

#[cfg(test)]
mod tests {
    use super::super::{Actor, Kind};
    use super::*;
    use chrono::{TimeZone, Utc};

    fn chain_of(key: &AuditKey, n: i64) -> Vec<StoredEvent> {
        let mut prev = [0u8; 32];
        let mut out = Vec::new();
        for seq in 1..=n {
            let mut r = StoredEvent {
                seq,
                at: Utc.timestamp_opt(1_800_000_000 + seq, 0).unwrap(),
                actor: Actor::Sentinel,
                kind: Kind::RunStarted.as_str().into(),
                incident_id: Some(1),
                proposal_id: Some(seq),
                action: None,
                argv: None,
                outcome: None,
                detail: "{}".into(),
                prev_hash: hex::encode(prev),
                hash: String::new(),
            };
            prev = chain::expected_hash(key, &prev, &r);
            r.hash = hex::encode(prev);
            out.push(r);
        }
        out
    }

    fn walk(key: &AuditKey, rows: &[StoredEvent], anchor: Option<&Head>) -> VerifyReport {
        let mut w = Walker::new(key);
        let mut at = None;
        for r in rows {
            if let Err(b) = w.feed(r) {
                return w.broken(b);
            }
            if anchor.is_some_and(|a| a.seq == r.seq) {
                at = Some(r.hash.clone());
            }
        }
        w.finish(anchor, at.as_deref())
    }

    fn bad(r: &VerifyReport) -> (i64, Problem) {
        let b = r.result.as_ref().unwrap_err();
        (b.first_bad_seq, b.problem)
    }

    #[test]
    fn intact_chain_and_empty_log() {
        let key = AuditKey::from_config("k");
        let rows = chain_of(&key, 5);
        let r = walk(&key, &rows, None);
        assert_eq!(
            r.result,
            Ok(Head {
                seq: 5,
                hash: rows[4].hash.clone()
            })
        );
        assert_eq!(r.events, 5);
        let empty = walk(&key, &[], None);
        assert_eq!(
            empty.to_json(),
            json!({"events": 0, "ok": true, "head_seq": 0, "head_hash": GENESIS})
        );
    }

    #[test]
    fn changed_removed_inserted_and_reordered_rows() {
        let key = AuditKey::from_config("k");
        let rows = chain_of(&key, 6);

        let mut changed = rows.clone();
        changed[2].outcome = Some("exit 0".into());
        assert_eq!(bad(&walk(&key, &changed, None)), (3, Problem::Altered));

        let mut removed = rows.clone();
        removed.remove(2);
        assert_eq!(bad(&walk(&key, &removed, None)), (3, Problem::Missing));

        let mut inserted = rows.clone();
        let mut fake = rows[2].clone();
        fake.hash = "f".repeat(64);
        inserted.insert(2, fake);
        for (i, r) in inserted.iter_mut().enumerate() {
            r.seq = i as i64 + 1;
        }
        assert_eq!(bad(&walk(&key, &inserted, None)), (3, Problem::Altered));

        let mut reordered = rows.clone();
        reordered.swap(1, 2);
        reordered[1].seq = 2;
        reordered[2].seq = 3;
        let r = walk(&key, &reordered, None);
        assert_eq!(bad(&r), (2, Problem::BrokenLink));
        assert_eq!(r.to_json()["expected_hash"], rows[0].hash.as_str());
        assert_eq!(r.to_json()["found_hash"], rows[1].hash.as_str());
    }

    #[test]
    fn wrong_key_fails_at_the_first_row() {
        let rows = chain_of(&AuditKey::from_config("k"), 3);
        let r = walk(&AuditKey::from_config("not k"), &rows, None);
        assert_eq!(bad(&r), (1, Problem::Altered));
        assert_eq!(r.events, 1);
        let j = r.to_json();
        assert_eq!(j["ok"], false);
        assert_eq!(j["first_bad_seq"], 1);
        assert_eq!(j["found_hash"], rows[0].hash.as_str());
        assert!(j["reason"].as_str().unwrap().contains("row 1"));
    }

    #[test]
    fn parses_anchors() {
        let h = "A".repeat(64);
        assert_eq!(
            parse_anchor(&format!("12:{h}")),
            Ok(Head {
                seq: 12,
                hash: "a".repeat(64)
            })
        );
        assert!(parse_anchor("12").is_err());
        assert!(parse_anchor("x:00").is_err());
        assert!(parse_anchor(&format!("-1:{h}")).is_err());
    }

    #[test]
    fn an_anchor_catches_a_cut_tail() {
        let key = AuditKey::from_config("k");
        let rows = chain_of(&key, 5);
        let anchor = Head {
            seq: 5,
            hash: rows[4].hash.clone(),
        };
        assert!(walk(&key, &rows, Some(&anchor)).ok());
        assert_eq!(
            bad(&walk(&key, &rows[..3], Some(&anchor))),
            (4, Problem::Truncated)
        );
        let wrong = Head {
            seq: 4,
            hash: rows[4].hash.clone(),
        };
        assert_eq!(
            bad(&walk(&key, &rows, Some(&wrong))),
            (4, Problem::AnchorMismatch)
        );
    }
}
