//! Service Loading (WAP-168): a URL the phone loads (or caches) without asking.

use crate::wbxml::{self, Element, SL};
use crate::{Layer, WapError, xml};

/// `action` of an SL (WAP-168 §5.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SlAction {
    #[default]
    ExecuteLow,
    ExecuteHigh,
    Cache,
}

impl SlAction {
    fn as_str(self) -> &'static str {
        match self {
            SlAction::ExecuteLow => "execute-low",
            SlAction::ExecuteHigh => "execute-high",
            SlAction::Cache => "cache",
        }
    }
}

/// An SL document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceLoading {
    pub href: String,
    pub action: SlAction,
}

impl ServiceLoading {
    pub fn new(href: &str) -> ServiceLoading {
        ServiceLoading {
            href: href.into(),
            action: SlAction::default(),
        }
    }

    pub fn to_element(&self) -> Element {
        let mut sl = Element::new("sl");
        sl.attributes.push(("href".into(), self.href.clone()));
        sl.attributes
            .push(("action".into(), self.action.as_str().into()));
        sl
    }

    pub fn from_element(root: &Element) -> Result<ServiceLoading, WapError> {
        let bad = |reason: String| WapError::Invalid {
            layer: Layer::Sl,
            offset: 0,
            reason,
        };
        if root.name != "sl" {
            return Err(bad(format!("root element is <{}>, not <sl>", root.name)));
        }
        if !root.children.is_empty() {
            return Err(bad("<sl> must be empty".into()));
        }
        let mut href = None;
        let mut action = SlAction::default();
        for (k, v) in &root.attributes {
            match k.as_str() {
                "href" => href = Some(v.clone()),
                "action" => {
                    action = [SlAction::ExecuteLow, SlAction::ExecuteHigh, SlAction::Cache]
                        .into_iter()
                        .find(|a| a.as_str() == v)
                        .ok_or_else(|| bad(format!("action {v:?}")))?
                }
                other => return Err(bad(format!("unknown attribute {other} on <sl>"))),
            }
        }
        Ok(ServiceLoading {
            href: href.ok_or_else(|| bad("<sl> without href".into()))?,
            action,
        })
    }

    pub fn to_xml(&self) -> String {
        xml::to_xml(&self.to_element(), &SL)
    }

    pub fn from_xml(text: &str) -> Result<ServiceLoading, WapError> {
        Self::from_element(&xml::from_xml(text)?)
    }

    pub fn to_wbxml(&self) -> Result<Vec<u8>, WapError> {
        wbxml::encode(&self.to_element(), &SL)
    }

    pub fn from_wbxml(bytes: &[u8]) -> Result<ServiceLoading, WapError> {
        let (vocab, root) = wbxml::decode(bytes)?;
        if !std::ptr::eq(vocab, &SL) {
            return Err(WapError::Invalid {
                layer: Layer::Sl,
                offset: 1,
                reason: "public id is not SL".into(),
            });
        }
        Self::from_element(&root)
    }
}
