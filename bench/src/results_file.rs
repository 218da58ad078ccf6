//! Merging a run of some scenarios into an existing `bench/RESULTS.md`: the sections of the
//! scenarios that ran replace theirs, every other section keeps the figures of its own run, and a
//! line under the title says which scenarios were measured again, when.

/// A `## ` section: its key and its text (heading line included, up to the next section).
struct Section {
    key: String,
    text: String,
}

/// `## G: …` is keyed `G`, any other heading by its whole line.
fn key(heading: &str) -> String {
    let title = heading.trim_start_matches('#').trim();
    match title.split_once(':') {
        Some((letter, _))
            if letter.len() == 1 && letter.chars().all(|c| c.is_ascii_uppercase()) =>
        {
            letter.to_string()
        }
        _ => title.to_string(),
    }
}

/// The text before the first section, and the sections in order.
fn split(text: &str) -> (String, Vec<Section>) {
    let mut preamble = String::new();
    let mut sections: Vec<Section> = Vec::new();
    for line in text.split_inclusive('\n') {
        if line.starts_with("## ") {
            sections.push(Section {
                key: key(line),
                text: String::new(),
            });
        }
        match sections.last_mut() {
            Some(section) => section.text.push_str(line),
            None => preamble.push_str(line),
        }
    }
    (preamble, sections)
}

const LAST: &str = "How the figures are taken";

/// `old` with the sections of `new` in place of theirs (new ones before the closing "How the
/// figures are taken") and `note` as a line after the "Produced by" paragraph; an earlier note
/// starting with the same `note_key` goes.
pub fn merge(old: &str, new: &str, note_key: &str, note: &str) -> String {
    let (preamble, old_sections) = split(old);
    let (_, new_sections) = split(new);
    let mut out = String::new();
    let mut noted = false;
    let mut dropped = false;
    for line in preamble.split_inclusive('\n') {
        if line.starts_with(note_key) || (dropped && line == "\n") {
            dropped = !dropped;
            continue;
        }
        dropped = false;
        out.push_str(line);
        if !noted && line.starts_with("Produced by ") {
            out.push('\n');
            out.push_str(note);
            out.push('\n');
            noted = true;
        }
    }
    if !noted {
        out.push_str(note);
        out.push_str("\n\n");
    }
    let replaced = |key: &str| new_sections.iter().find(|n| n.key == key);
    let added: Vec<&Section> = new_sections
        .iter()
        .filter(|n| !old_sections.iter().any(|o| o.key == n.key))
        .collect();
    let mut added_done = false;
    let push = |out: &mut String, text: &str| {
        if !out.ends_with("\n\n") {
            out.push('\n');
        }
        out.push_str(text.trim_end_matches('\n'));
        out.push('\n');
    };
    for section in &old_sections {
        if section.key == LAST && !added_done {
            for n in &added {
                push(&mut out, &n.text);
            }
            added_done = true;
        }
        let text = replaced(&section.key).map_or(section.text.as_str(), |n| n.text.as_str());
        push(&mut out, text);
    }
    if !added_done {
        for n in &added {
            push(&mut out, &n.text);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "# results\n\nProduced by `make bench` on day 1.\n\n- Machine: m\n\n## Goals\n\ngoals 1\n\n## D: a fleet\n\nd 1\n\n## How the figures are taken\n\nhow 1\n";

    #[test]
    fn headings_of_scenarios_are_keyed_by_letter() {
        assert_eq!(key("## G: one fleet run over 500 clusters\n"), "G");
        assert_eq!(key("## Lower bound\n"), "Lower bound");
        assert_eq!(key("## C ÷ A: x"), "C ÷ A: x");
    }

    #[test]
    fn a_new_scenario_goes_before_how_and_the_rest_stays() {
        let new = "# results\n\nProduced by `x` on day 2.\n\n## G: fleet\n\ng 2\n\n## How the figures are taken\n\nhow 2\n";
        let merged = merge(OLD, new, "Re-measured: G ", "Re-measured: G on day 2.");
        assert_eq!(
            merged,
            "# results\n\nProduced by `make bench` on day 1.\n\nRe-measured: G on day 2.\n\n- Machine: m\n\n## Goals\n\ngoals 1\n\n## D: a fleet\n\nd 1\n\n## G: fleet\n\ng 2\n\n## How the figures are taken\n\nhow 2\n"
        );
        // Measured again: the section and the note are replaced, not repeated.
        let again = new.replace("g 2", "g 3");
        let merged = merge(
            &merged,
            &again,
            "Re-measured: G ",
            "Re-measured: G on day 3.",
        );
        assert!(
            merged.contains("g 3") && !merged.contains("g 2"),
            "{merged}"
        );
        assert_eq!(merged.matches("Re-measured: G ").count(), 1, "{merged}");
        assert!(
            merged.contains("day 1.\n\nRe-measured: G on day 3.\n\n- Machine"),
            "{merged}"
        );
        assert!(
            merged.contains("goals 1") && merged.contains("d 1"),
            "{merged}"
        );
    }
}
