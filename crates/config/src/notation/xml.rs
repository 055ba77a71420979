//! xml, as `core/xmlconf.c` reads it: a `<uwsgi>` root (or a `<uwsgi>` child of the root), one
//! element per option, the text of its first child as the value, an empty element as `1`.
//! With `file.xml:id`, elements and `<uwsgi>` blocks whose `id` differs are skipped.

use super::{Parsed, RawEntry, SyntaxError, line_of};

pub(super) fn parse(text: &str, section: &str) -> Result<Parsed, SyntaxError> {
    let opts = roxmltree::ParsingOptions {
        allow_dtd: false,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(text, opts)
        .map_err(|e| SyntaxError::new(e.pos().row, format!("invalid xml: {e}")))?;
    let line = |node: roxmltree::Node<'_, '_>| line_of(text, node.range().start);
    // uWSGI's default section is "uwsgi"; for xml it means "no id asked".
    let id = (section != "uwsgi").then_some(section);
    let root = doc.root_element();
    let block = if root.has_tag_name("uwsgi") {
        Some(root)
    } else {
        root.children()
            .filter(|n| n.is_element() && n.has_tag_name("uwsgi"))
            .find(|n| match (id, n.attribute("id")) {
                (Some(want), Some(have)) => want == have,
                _ => true,
            })
    };
    let Some(block) = block else {
        return Err(SyntaxError::new(
            line(root),
            "invalid xml root element, `<uwsgi>` expected",
        ));
    };
    let mut parsed = Parsed {
        found_section: true,
        ..Parsed::default()
    };
    for node in block.children() {
        if let (Some(want), Some(have)) = (id, node.attribute("id"))
            && want != have
        {
            continue;
        }
        if node.is_text() {
            // libxml2 tells CDATA from text; uWSGI takes a CDATA section as `eval` code.
            // roxmltree merges CDATA into the text node but its range ends at the first
            // piece: look at the source up to the next sibling.
            let start = node.range().start;
            let end = node
                .next_sibling()
                .map_or(block.range().end, |n| n.range().start);
            let raw = &text[start..end];
            let mut rest = raw;
            while let Some(offset) = rest.find("<![CDATA[") {
                let body = &rest[offset + 9..];
                let end = body.find("]]>").unwrap_or(body.len());
                let at = line_of(text, node.range().start + (raw.len() - rest.len()) + offset);
                parsed.entries.push(RawEntry {
                    key: "eval".into(),
                    value: body[..end].to_owned(),
                    line: at,
                });
                rest = &body[end..];
            }
            continue;
        }
        if !node.is_element() {
            continue;
        }
        let name = node.tag_name().name();
        let at = line(node);
        let value = match node.first_child() {
            None => "1".to_owned(),
            // libxml2's first child: text, or a comment's own text when a comment comes first.
            Some(child) if child.is_text() || child.is_comment() => {
                child.text().unwrap_or_default().to_owned()
            }
            Some(_) => {
                return Err(SyntaxError::new(
                    at,
                    format!("`<{name}>` holds an element: an option's value is text"),
                ));
            }
        };
        if name == "app" {
            // uWSGI's old <app mountpoint="/x">file</app> form becomes `mount` and `app`.
            if node.first_child().is_some() {
                let value = match (node.attribute("mountpoint"), node.attribute("domain")) {
                    (Some(m), _) => format!("{m}={value}"),
                    (None, Some(d)) => format!("{d}|={value}"),
                    (None, None) => value,
                };
                parsed.entries.push(RawEntry {
                    key: "mount".into(),
                    value,
                    line: at,
                });
            }
            parsed.entries.push(RawEntry {
                key: "app".into(),
                value: String::new(),
                line: at,
            });
            continue;
        }
        parsed.entries.push(RawEntry {
            key: name.to_owned(),
            value,
            line: at,
        });
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(text: &str, section: &str) -> Vec<(String, String, u32)> {
        parse(text, section)
            .unwrap()
            .entries
            .into_iter()
            .map(|e| (e.key, e.value, e.line))
            .collect()
    }

    #[test]
    fn elements_repeat_and_empty_ones_are_one() {
        let text =
            "<uwsgi>\n  <socket>a</socket>\n  <master/>\n  <socket>b &amp; c</socket>\n</uwsgi>\n";
        assert_eq!(
            kv(text, "uwsgi"),
            [
                ("socket".into(), "a".into(), 2),
                ("master".into(), "1".into(), 3),
                ("socket".into(), "b & c".into(), 4),
            ]
        );
    }

    #[test]
    fn id_selects_a_block_and_filters_elements() {
        let text = "<all>\n<uwsgi id=\"a\"><x>1</x></uwsgi>\n<uwsgi id=\"b\"><x>2</x><y id=\"a\">no</y></uwsgi>\n</all>";
        assert_eq!(kv(text, "b"), [("x".into(), "2".into(), 3)]);
        assert_eq!(kv(text, "uwsgi"), [("x".into(), "1".into(), 2)]);
    }

    #[test]
    fn broken_xml_names_its_line() {
        let err = parse("<uwsgi>\n<a>1</a>\n<b>\n</uwsgi>\n", "uwsgi").unwrap_err();
        assert_eq!(err.line, 4);
        assert!(err.message.starts_with("invalid xml"), "{}", err.message);
        let err = parse("<other><a/></other>", "uwsgi").unwrap_err();
        assert_eq!(err.message, "invalid xml root element, `<uwsgi>` expected");
    }
}
