//! Service Indication (WAP-167): a message with a URL the phone offers to open.

use crate::date::WapDate;
use crate::wbxml::{self, Element, Node, SI};
use crate::{Layer, WapError, xml};

/// `action` of an indication (WAP-167 §5.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SiAction {
    SignalNone,
    SignalLow,
    #[default]
    SignalMedium,
    SignalHigh,
    Delete,
}

impl SiAction {
    fn as_str(self) -> &'static str {
        match self {
            SiAction::SignalNone => "signal-none",
            SiAction::SignalLow => "signal-low",
            SiAction::SignalMedium => "signal-medium",
            SiAction::SignalHigh => "signal-high",
            SiAction::Delete => "delete",
        }
    }
    fn parse(s: &str) -> Option<SiAction> {
        [
            SiAction::SignalNone,
            SiAction::SignalLow,
            SiAction::SignalMedium,
            SiAction::SignalHigh,
            SiAction::Delete,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }
}

/// An SI document with one `indication` (the `info` block is not used by vshare and refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceIndication {
    pub href: Option<String>,
    pub si_id: Option<String>,
    pub created: Option<WapDate>,
    pub expires: Option<WapDate>,
    pub action: SiAction,
    pub class: Option<String>,
    /// The text the phone shows.
    pub text: String,
}

impl ServiceIndication {
    /// An indication with `href`, `text` and the default action (signal-medium).
    pub fn new(href: &str, text: &str) -> ServiceIndication {
        ServiceIndication {
            href: Some(href.into()),
            si_id: None,
            created: None,
            expires: None,
            action: SiAction::default(),
            class: None,
            text: text.into(),
        }
    }

    /// The element tree, attributes in the order of WAP-167 §5.2.1.
    pub fn to_element(&self) -> Element {
        let mut ind = Element::new("indication");
        if let Some(h) = &self.href {
            ind.attributes.push(("href".into(), h.clone()));
        }
        if let Some(id) = &self.si_id {
            ind.attributes.push(("si-id".into(), id.clone()));
        }
        if let Some(c) = self.created {
            ind.attributes.push(("created".into(), c.to_string()));
        }
        if let Some(e) = self.expires {
            ind.attributes.push(("si-expires".into(), e.to_string()));
        }
        // signal-medium is the default (WAP-167 §5.2.1) and is left out.
        if self.action != SiAction::SignalMedium {
            ind.attributes
                .push(("action".into(), self.action.as_str().into()));
        }
        if let Some(c) = &self.class {
            ind.attributes.push(("class".into(), c.clone()));
        }
        if !self.text.is_empty() {
            ind.children.push(Node::Text(self.text.clone()));
        }
        let mut si = Element::new("si");
        si.children.push(Node::Element(ind));
        si
    }

    pub fn from_element(root: &Element) -> Result<ServiceIndication, WapError> {
        let bad = |reason: String| WapError::Invalid {
            layer: Layer::Si,
            offset: 0,
            reason,
        };
        if root.name != "si" {
            return Err(bad(format!("root element is <{}>, not <si>", root.name)));
        }
        let mut ind = None;
        for c in &root.children {
            match c {
                Node::Element(e) if e.name == "indication" && ind.is_none() => ind = Some(e),
                Node::Element(e) => return Err(bad(format!("unexpected <{}> in <si>", e.name))),
                Node::Text(t) if t.trim().is_empty() => {}
                Node::Text(_) => return Err(bad("text directly in <si>".into())),
            }
        }
        let ind = ind.ok_or_else(|| bad("no <indication>".into()))?;
        let mut si = ServiceIndication {
            href: None,
            si_id: None,
            created: None,
            expires: None,
            action: SiAction::default(),
            class: None,
            text: String::new(),
        };
        for (k, v) in &ind.attributes {
            let date = || {
                WapDate::parse(v)
                    .ok_or_else(|| bad(format!("{k}={v:?} is not YYYY-MM-DDThh:mm:ssZ")))
            };
            match k.as_str() {
                "href" => si.href = Some(v.clone()),
                "si-id" => si.si_id = Some(v.clone()),
                "created" => si.created = Some(date()?),
                "si-expires" => si.expires = Some(date()?),
                "action" => {
                    si.action = SiAction::parse(v).ok_or_else(|| bad(format!("action {v:?}")))?
                }
                "class" => si.class = Some(v.clone()),
                other => return Err(bad(format!("unknown attribute {other} on <indication>"))),
            }
        }
        for c in &ind.children {
            match c {
                Node::Text(t) => si.text.push_str(t),
                Node::Element(e) => {
                    return Err(bad(format!("unexpected <{}> in <indication>", e.name)));
                }
            }
        }
        Ok(si)
    }

    pub fn to_xml(&self) -> String {
        xml::to_xml(&self.to_element(), &SI)
    }

    pub fn from_xml(text: &str) -> Result<ServiceIndication, WapError> {
        Self::from_element(&xml::from_xml(text)?)
    }

    pub fn to_wbxml(&self) -> Result<Vec<u8>, WapError> {
        wbxml::encode(&self.to_element(), &SI)
    }

    pub fn from_wbxml(bytes: &[u8]) -> Result<ServiceIndication, WapError> {
        let (vocab, root) = wbxml::decode(bytes)?;
        if !std::ptr::eq(vocab, &SI) {
            return Err(WapError::Invalid {
                layer: Layer::Si,
                offset: 1,
                reason: "public id is not SI".into(),
            });
        }
        Self::from_element(&root)
    }
}
