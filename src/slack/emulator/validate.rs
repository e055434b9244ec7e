//! Block Kit validation as Slack does it, written independently of `slack::blocks` so the
//! builder is checked against a second reading of the limits. Pure.

use serde_json::Value;

/// Checks a `blocks` array; `Err` lists what Slack would name in `invalid_blocks`.
pub fn blocks(blocks: &Value, max_blocks: usize) -> Result<(), Vec<String>> {
    let mut errs = Vec::new();
    let Some(list) = blocks.as_array() else {
        return Err(vec!["blocks must be an array".into()]);
    };
    if list.len() > max_blocks {
        errs.push(format!(
            "no more than {max_blocks} items allowed [json-pointer:/blocks]"
        ));
    }
    for (i, b) in list.iter().enumerate() {
        let at = format!("/blocks/{i}");
        if let Some(id) = b["block_id"].as_str() {
            max_len(&mut errs, id, 255, &format!("{at}/block_id"));
        }
        match b["type"].as_str().unwrap_or_default() {
            "section" => {
                let has_text = !b["text"].is_null();
                let fields = b["fields"].as_array();
                if !has_text && fields.is_none() {
                    errs.push(format!("section needs text or fields [json-pointer:{at}]"));
                }
                if has_text {
                    text_obj(&mut errs, &b["text"], 3000, &format!("{at}/text"));
                }
                if let Some(f) = fields {
                    if f.len() > 10 {
                        errs.push(format!(
                            "no more than 10 items allowed [json-pointer:{at}/fields]"
                        ));
                    }
                    for (j, t) in f.iter().enumerate() {
                        text_obj(&mut errs, t, 2000, &format!("{at}/fields/{j}"));
                    }
                }
                if !b["accessory"].is_null() {
                    element(&mut errs, &b["accessory"], &format!("{at}/accessory"));
                }
            }
            "header" => {
                text_obj(&mut errs, &b["text"], 150, &format!("{at}/text"));
                if b["text"]["type"] != "plain_text" {
                    errs.push(format!("must be plain_text [json-pointer:{at}/text/type]"));
                }
            }
            "context" => match b["elements"].as_array() {
                Some(e) if !e.is_empty() && e.len() <= 10 => {
                    for (j, t) in e.iter().enumerate() {
                        if t["type"] != "image" {
                            text_obj(&mut errs, t, 3000, &format!("{at}/elements/{j}"));
                        }
                    }
                }
                _ => errs.push(format!(
                    "1 to 10 elements required [json-pointer:{at}/elements]"
                )),
            },
            "actions" => match b["elements"].as_array() {
                Some(e) if !e.is_empty() && e.len() <= 25 => {
                    for (j, el) in e.iter().enumerate() {
                        element(&mut errs, el, &format!("{at}/elements/{j}"));
                    }
                }
                _ => errs.push(format!(
                    "1 to 25 elements required [json-pointer:{at}/elements]"
                )),
            },
            "input" => {
                text_obj(&mut errs, &b["label"], 2000, &format!("{at}/label"));
                if b["element"].is_null() {
                    errs.push(format!("missing element [json-pointer:{at}/element]"));
                }
            }
            "divider" => {}
            "image" => {
                max_len(
                    &mut errs,
                    b["image_url"].as_str().unwrap_or_default(),
                    3000,
                    &format!("{at}/image_url"),
                );
            }
            "rich_text" => {}
            other => errs.push(format!(
                "unsupported block type `{other}` [json-pointer:{at}/type]"
            )),
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

/// A modal view (title/submit/close 24, private_metadata 3000, 100 blocks).
pub fn view(v: &Value) -> Result<(), Vec<String>> {
    let mut errs = Vec::new();
    if v["type"] != "modal" && v["type"] != "home" {
        errs.push("view type must be modal or home [json-pointer:/view/type]".into());
    }
    for k in ["title", "submit", "close"] {
        if !v[k].is_null() {
            text_obj(&mut errs, &v[k], 24, &format!("/view/{k}"));
        }
    }
    if v["title"].is_null() && v["type"] == "modal" {
        errs.push("missing title [json-pointer:/view/title]".into());
    }
    if let Some(m) = v["private_metadata"].as_str() {
        max_len(&mut errs, m, 3000, "/view/private_metadata");
    }
    if let Some(c) = v["callback_id"].as_str() {
        max_len(&mut errs, c, 255, "/view/callback_id");
    }
    if let Err(e) = blocks(&v["blocks"], 100) {
        errs.extend(e);
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

fn element(errs: &mut Vec<String>, el: &Value, at: &str) {
    if let Some(id) = el["action_id"].as_str() {
        max_len(errs, id, 255, &format!("{at}/action_id"));
    }
    if el["type"] == "button" {
        text_obj(errs, &el["text"], 75, &format!("{at}/text"));
        if let Some(v) = el["value"].as_str() {
            max_len(errs, v, 2000, &format!("{at}/value"));
        }
        if let Some(u) = el["url"].as_str() {
            max_len(errs, u, 3000, &format!("{at}/url"));
        }
    }
}

fn text_obj(errs: &mut Vec<String>, t: &Value, max: usize, at: &str) {
    match (t["type"].as_str(), t["text"].as_str()) {
        (Some("plain_text" | "mrkdwn"), Some(s)) => {
            if s.is_empty() {
                errs.push(format!(
                    "must be more than 0 characters [json-pointer:{at}/text]"
                ));
            }
            max_len(errs, s, max, &format!("{at}/text"));
        }
        _ => errs.push(format!("must be a text object [json-pointer:{at}]")),
    }
}

fn max_len(errs: &mut Vec<String>, s: &str, max: usize, at: &str) {
    if s.chars().count() > max {
        errs.push(format!(
            "must be less than {} characters [json-pointer:{at}]",
            max + 1
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_what_the_builder_makes() {
        use crate::slack::blocks as b;
        use crate::slack::{Mrkdwn, Plain};
        let m = |s: String| Mrkdwn::own(s);
        let built = vec![
            b::header(&Plain::own("h".repeat(500))),
            b::section(&m("s".repeat(9000))),
            b::fields(&vec![m("f".repeat(3000)); 15]),
            b::context(&vec![m("c".to_string()); 20]),
            b::actions(
                "a",
                (0..30)
                    .map(|i| {
                        b::button(
                            &Plain::own("t".repeat(100)),
                            &format!("x{i}"),
                            &"v".repeat(3000),
                        )
                    })
                    .collect(),
            ),
            b::divider(),
        ];
        let blocks = json!(built
            .into_iter()
            .map(b::Block::into_value)
            .collect::<Vec<_>>());
        assert_eq!(super::blocks(&blocks, 50), Ok(()));
        let m = b::modal(
            "cb",
            &"T".repeat(40),
            "Go",
            vec![b::text_input("q", "q", "Query", "")],
            &"m".repeat(4000),
        );
        assert_eq!(view(&m), Ok(()));
    }

    #[test]
    fn rejects_each_limit() {
        let cases = [
            json!([{"type": "section", "text": {"type": "mrkdwn", "text": "x".repeat(3001)}}]),
            json!([{"type": "header", "text": {"type": "plain_text", "text": "x".repeat(151)}}]),
            json!([{"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "x".repeat(76)}, "action_id": "a"}]}]),
            json!([{"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "ok"}, "value": "v".repeat(2001)}]}]),
            json!([{"type": "section", "text": {"type": "mrkdwn", "text": ""}}]),
            json!([{"type": "carousel"}]),
            json!({"not": "an array"}),
            json!((0..51)
                .map(|_| json!({"type": "divider"}))
                .collect::<Vec<_>>()),
        ];
        for c in cases {
            assert!(blocks(&c, 50).is_err(), "{c}");
        }
    }
}
