//! `--selector`: a tag selector written as kubectl writes label selectors (`env=prod`,
//! `tier!=frozen`, `region in (eu,us)`, `team notin (x)`, `owner`, `!legacy`, joined by commas),
//! turned into a RemoteCommandSet's `matchTags` and `matchExpressions`.

use crate::api::remote_command_set::{ArmSelector, TagOperator, TagRequirement};

/// The longest tag name ARM takes.
const MAX_KEY: usize = 512;

/// Fills `selector`'s `matchTags` and `matchExpressions` from `text`. Every requirement must hold
/// (as in kubectl); an empty selector is refused, since it would select every resource of the
/// scope by accident (`--all` says so on purpose).
pub fn parse(text: &str, selector: &mut ArmSelector) -> Result<(), String> {
    let parts = split(text)?;
    if parts.iter().all(|p| p.trim().is_empty()) {
        return Err(
            "--selector is empty; give requirements such as env=prod, or --all for every resource of the scope"
                .into(),
        );
    }
    for part in parts {
        let part = part.trim();
        if part.is_empty() {
            return Err(format!(
                "--selector {text:?}: an empty requirement between commas"
            ));
        }
        requirement(part, selector).map_err(|e| format!("--selector {part:?}: {e}"))?;
    }
    Ok(())
}

/// Splits at the commas outside parentheses.
fn split(text: &str) -> Result<Vec<&str>, String> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0usize, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' if depth == 0 => depth = 1,
            '(' => return Err(format!("--selector {text:?}: nested parentheses")),
            ')' if depth == 1 => depth = 0,
            ')' => return Err(format!("--selector {text:?}: a ')' without its '('")),
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(format!("--selector {text:?}: a '(' without its ')'"));
    }
    parts.push(&text[start..]);
    Ok(parts)
}

/// One requirement: `!k`, `k`, `k=v`, `k==v`, `k!=v`, `k in (…)`, `k notin (…)`.
fn requirement(part: &str, selector: &mut ArmSelector) -> Result<(), String> {
    let expression = |key: &str, operator, values: Vec<String>| TagRequirement {
        key: key.to_string(),
        operator,
        values,
    };
    if let Some(key) = part.strip_prefix('!') {
        let key = key.trim();
        check_key(key)?;
        selector
            .match_expressions
            .push(expression(key, TagOperator::DoesNotExist, Vec::new()));
        return Ok(());
    }
    let end = part
        .find(|c: char| c.is_whitespace() || matches!(c, '=' | '!' | '(' | ')'))
        .unwrap_or(part.len());
    let (key, rest) = (&part[..end], part[end..].trim_start());
    check_key(key)?;
    if rest.is_empty() {
        selector
            .match_expressions
            .push(expression(key, TagOperator::Exists, Vec::new()));
        return Ok(());
    }
    if let Some(value) = rest.strip_prefix("!=") {
        let value = check_value(value)?;
        selector
            .match_expressions
            .push(expression(key, TagOperator::NotIn, vec![value]));
        return Ok(());
    }
    if let Some(value) = rest.strip_prefix("==").or_else(|| rest.strip_prefix('=')) {
        let value = check_value(value)?;
        // The same tag twice with `=`: both must hold, so the second is an expression.
        if selector.match_tags.contains_key(key) {
            selector
                .match_expressions
                .push(expression(key, TagOperator::In, vec![value]));
        } else {
            selector.match_tags.insert(key.to_string(), value);
        }
        return Ok(());
    }
    let (operator, list) = if let Some(list) = word(rest, "notin") {
        (TagOperator::NotIn, list)
    } else if let Some(list) = word(rest, "in") {
        (TagOperator::In, list)
    } else {
        return Err(
            "expected =, ==, !=, in (…) or notin (…) after the tag name (or nothing: the tag exists)"
                .into(),
        );
    };
    let inner = list
        .trim()
        .strip_prefix('(')
        .and_then(|l| l.strip_suffix(')'))
        .ok_or("the values of in / notin go in parentheses: in (a,b)")?;
    let values: Vec<String> = inner
        .split(',')
        .map(check_value)
        .collect::<Result<_, _>>()?;
    if values.iter().all(String::is_empty) {
        return Err("in / notin needs at least one value".into());
    }
    selector
        .match_expressions
        .push(expression(key, operator, values));
    Ok(())
}

/// `rest` without the operator word `name`, when it starts with that word as a whole.
fn word<'a>(rest: &'a str, name: &str) -> Option<&'a str> {
    let after = rest.strip_prefix(name)?;
    (after.starts_with(|c: char| c.is_whitespace() || c == '(')).then_some(after)
}

fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("a tag name is missing".into());
    }
    if key.len() > MAX_KEY {
        return Err(format!("a tag name is at most {MAX_KEY} characters"));
    }
    if key.contains(|c: char| c.is_whitespace() || matches!(c, '=' | '!' | '(' | ')' | ',')) {
        return Err(format!("{key:?} is not a tag name"));
    }
    Ok(())
}

/// A value, without the blanks around it (ARM compares values exactly).
fn check_value(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.contains(['(', ')', '=', '!']) {
        return Err(format!("{value:?} is not a tag value"));
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn parsed(text: &str) -> Result<ArmSelector, String> {
        let mut s = ArmSelector::default();
        parse(text, &mut s).map(|()| s)
    }

    fn req(key: &str, operator: TagOperator, values: &[&str]) -> TagRequirement {
        TagRequirement {
            key: key.into(),
            operator,
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn every_kubectl_form_maps_to_tags_or_expressions() {
        let s =
            parsed("env=prod, tier!=frozen,region in (eu, us),team notin(x),owner,!legacy,a==b")
                .unwrap();
        assert_eq!(
            s.match_tags,
            BTreeMap::from([("env".into(), "prod".into()), ("a".into(), "b".into())])
        );
        assert_eq!(
            s.match_expressions,
            [
                req("tier", TagOperator::NotIn, &["frozen"]),
                req("region", TagOperator::In, &["eu", "us"]),
                req("team", TagOperator::NotIn, &["x"]),
                req("owner", TagOperator::Exists, &[]),
                req("legacy", TagOperator::DoesNotExist, &[]),
            ]
        );
    }

    #[test]
    fn a_tag_named_twice_must_hold_both_ways() {
        let s = parsed("env=prod,env=dev").unwrap();
        assert_eq!(s.match_tags["env"], "prod");
        assert_eq!(s.match_expressions, [req("env", TagOperator::In, &["dev"])]);
        // Operator words are whole words: a tag may start with them.
        let s = parsed("index=1,notinuse").unwrap();
        assert_eq!(s.match_tags["index"], "1");
        assert_eq!(
            s.match_expressions,
            [req("notinuse", TagOperator::Exists, &[])]
        );
        assert_eq!(parsed("empty=").unwrap().match_tags["empty"], "");
    }

    #[test]
    fn malformed_selectors_are_refused_with_the_part_at_fault() {
        for bad in [
            "",
            " ",
            "env=prod,",
            ",env=prod",
            "=prod",
            "!",
            "env in eu",
            "env in ()",
            "env in (a,(b))",
            "env in (a",
            "env)",
            "env ~ prod",
            "env=a=b",
            "env!=(x)",
            "my tag=x",
        ] {
            assert!(parsed(bad).is_err(), "{bad:?} was accepted");
        }
        let e = parsed("env=prod,tier ~ x").unwrap_err();
        assert!(e.contains("tier ~ x"), "{e}");
        assert!(parsed("").unwrap_err().contains("--all"));
        assert!(parsed(&format!("{}=x", "k".repeat(513))).is_err());
    }
}
