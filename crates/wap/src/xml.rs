//! SI/SL documents as XML text: written by hand (small and canonical), read with quick-xml.
//! DOCTYPEs are skipped, never expanded; text is trimmed of surrounding white space.

use quick_xml::events::{BytesStart, Event};

use crate::wbxml::{Element, Node, Vocabulary};
use crate::{Layer, WapError};

fn escape(out: &mut String, s: &str, attr: bool) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attr => out.push_str("&quot;"),
            '\n' if attr => out.push_str("&#10;"),
            c => out.push(c),
        }
    }
}

fn write_element(out: &mut String, e: &Element) {
    out.push('<');
    out.push_str(&e.name);
    for (k, v) in &e.attributes {
        out.push(' ');
        out.push_str(k);
        out.push_str("=\"");
        escape(out, v, true);
        out.push('"');
    }
    if e.children.is_empty() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    for c in &e.children {
        match c {
            Node::Element(child) => write_element(out, child),
            Node::Text(t) => escape(out, t, false),
        }
    }
    out.push_str("</");
    out.push_str(&e.name);
    out.push('>');
}

/// Writes a document with its XML declaration and DOCTYPE.
pub fn to_xml(root: &Element, vocab: &Vocabulary) -> String {
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE {} PUBLIC \"{}\" \"{}\">\n",
        root.name, vocab.fpi, vocab.dtd
    );
    write_element(&mut out, root);
    out.push('\n');
    out
}

fn start(
    reader: &quick_xml::Reader<&[u8]>,
    e: &BytesStart<'_>,
    at: usize,
) -> Result<Element, WapError> {
    let err = |reason: String| WapError::Invalid {
        layer: Layer::Xml,
        offset: at,
        reason,
    };
    let mut el = Element::new(&String::from_utf8_lossy(e.name().as_ref()));
    for a in e.attributes() {
        let a = a.map_err(|x| err(x.to_string()))?;
        let v = a
            .decode_and_unescape_value(reader.decoder())
            .map_err(|x| err(x.to_string()))?;
        el.attributes.push((
            String::from_utf8_lossy(a.key.as_ref()).into_owned(),
            v.into_owned(),
        ));
    }
    Ok(el)
}

/// Reads a document into an element tree.
pub fn from_xml(text: &str) -> Result<Element, WapError> {
    let mut reader = quick_xml::Reader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root = None;
    loop {
        let at = reader.buffer_position() as usize;
        let err = |reason: String| WapError::Invalid {
            layer: Layer::Xml,
            offset: at,
            reason,
        };
        let ev = reader.read_event().map_err(|e| WapError::Invalid {
            layer: Layer::Xml,
            offset: reader.error_position() as usize,
            reason: e.to_string(),
        })?;
        match ev {
            Event::Decl(_) | Event::DocType(_) | Event::Comment(_) | Event::PI(_) => {}
            Event::Start(e) => {
                if root.is_some() {
                    return Err(err("a second root element".into()));
                }
                stack.push(start(&reader, &e, at)?);
            }
            Event::Empty(e) => {
                let el = start(&reader, &e, at)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(Node::Element(el)),
                    None if root.is_none() => root = Some(el),
                    None => return Err(err("a second root element".into())),
                }
            }
            Event::End(_) => {
                let mut el = stack
                    .pop()
                    .ok_or_else(|| err("end tag without a start".into()))?;
                tidy(&mut el);
                match stack.last_mut() {
                    Some(parent) => parent.children.push(Node::Element(el)),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                let s = t.decode().map_err(|e| err(e.to_string()))?;
                let s = quick_xml::escape::unescape(&s).map_err(|e| err(e.to_string()))?;
                push_text(&mut stack, &s, at)?;
            }
            Event::GeneralRef(r) => {
                let name = r.decode().map_err(|e| err(e.to_string()))?;
                let s = match r.resolve_char_ref().map_err(|e| err(e.to_string()))? {
                    Some(c) => c.to_string(),
                    None => quick_xml::escape::resolve_predefined_entity(&name)
                        .ok_or_else(|| err(format!("entity &{name}; is not defined")))?
                        .to_string(),
                };
                push_text(&mut stack, &s, at)?;
            }
            Event::CData(c) => {
                let s = String::from_utf8(c.into_inner().into_owned())
                    .map_err(|e| err(e.to_string()))?;
                push_text(&mut stack, &s, at)?;
            }
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(WapError::Truncated {
            layer: Layer::Xml,
            offset: text.len(),
            what: "element",
        });
    }
    root.ok_or(WapError::Truncated {
        layer: Layer::Xml,
        offset: text.len(),
        what: "document",
    })
}

fn push_text(stack: &mut [Element], s: &str, at: usize) -> Result<(), WapError> {
    if stack.is_empty() && s.trim().is_empty() {
        return Ok(());
    }
    let parent = stack.last_mut().ok_or_else(|| WapError::Invalid {
        layer: Layer::Xml,
        offset: at,
        reason: "text outside the root element".into(),
    })?;
    match parent.children.last_mut() {
        Some(Node::Text(prev)) => prev.push_str(s),
        _ => parent.children.push(Node::Text(s.to_string())),
    }
    Ok(())
}

/// Drops white space between elements and trims text at the edges of an element's content.
fn tidy(e: &mut Element) {
    e.children
        .retain(|n| !matches!(n, Node::Text(t) if t.trim().is_empty()));
    if let Some(Node::Text(t)) = e.children.first_mut() {
        *t = t.trim_start().to_string();
    }
    if let Some(Node::Text(t)) = e.children.last_mut() {
        *t = t.trim_end().to_string();
    }
}
