//! One element of an event: its names and attributes from the start tag, and XML entities
//! resolved (an unknown one kept as written).

use std::borrow::Cow;

use quick_xml::events::BytesStart;

/// One element of the event being read.
#[derive(Debug, Default)]
pub(super) struct Element {
    /// The local name (without a namespace prefix).
    pub(super) name: String,
    /// The name as written, to match the end tag against.
    pub(super) qname: Vec<u8>,
    pub(super) attributes: Vec<(String, String)>,
    pub(super) text: String,
    pub(super) children: Vec<Element>,
}

/// An element from its start tag: names and attributes, unescaped.
pub(super) fn element(start: &BytesStart<'_>) -> Result<Element, String> {
    let qname = start.name().as_ref().to_vec();
    let name = std::str::from_utf8(start.local_name().as_ref())
        .map_err(|_| "invalid UTF-8 in an element name".to_owned())?
        .to_owned();
    let mut attributes = Vec::new();
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|e| format!("malformed attribute in <{name}>: {e}"))?;
        let key = attribute.key;
        // Namespace declarations keep their full name; other attributes their local one.
        let key = if key.as_ref().starts_with(b"xmlns") {
            key.as_ref()
        } else {
            key.local_name().into_inner()
        };
        let key = std::str::from_utf8(key)
            .map_err(|_| format!("invalid UTF-8 in an attribute name of <{name}>"))?;
        let value = std::str::from_utf8(&attribute.value)
            .map_err(|_| format!("invalid UTF-8 in attribute {key} of <{name}>"))?;
        attributes.push((key.to_owned(), unescape(value).into_owned()));
    }
    Ok(Element {
        name,
        qname,
        attributes,
        text: String::new(),
        children: Vec::new(),
    })
}

/// Resolves the predefined and character entities; an unknown entity is kept as written.
pub(super) fn unescape(raw: &str) -> Cow<'_, str> {
    if let Ok(text) = quick_xml::escape::unescape(raw) {
        return text;
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        match rest.find(';') {
            Some(end) if end <= 32 => {
                let entity = &rest[..=end];
                match quick_xml::escape::unescape(entity) {
                    Ok(text) => out.push_str(&text),
                    Err(_) => out.push_str(entity),
                }
                rest = &rest[end + 1..];
            }
            _ => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}
