//! PAP (WAP-247): the push-message control entity and the multipart/related body a Push
//! Initiator POSTs to a Push Proxy Gateway, and reading the gateway's push-response.

use crate::{Layer, WapError};

/// The boundary of the multipart body.
pub const BOUNDARY: &str = "vshare-pap-boundary";

/// A PAP submission: one push to one or more phones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushMessage {
    pub push_id: String,
    /// Phone numbers, `+8613800138000`.
    pub recipients: Vec<String>,
    /// The content type of the content entity: `text/vnd.wap.si` or `text/vnd.wap.sl`.
    pub content_type: String,
    /// The SI or SL XML.
    pub content: String,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('"', "&quot;")
}

impl PushMessage {
    /// The `Content-Type` header value of the HTTP POST.
    pub fn http_content_type(&self) -> String {
        format!("multipart/related; boundary={BOUNDARY}; type=\"application/xml\"")
    }

    /// The PAP control entity (WAP-247 §9.1).
    pub fn control_entity(&self) -> String {
        let mut x = String::from(
            "<?xml version=\"1.0\"?>\n<!DOCTYPE pap PUBLIC \"-//WAPFORUM//DTD PAP 1.0//EN\" \
             \"http://www.wapforum.org/DTD/pap_1.0.dtd\">\n<pap>\n",
        );
        x.push_str(&format!(
            "<push-message push-id=\"{}\">\n",
            esc(&self.push_id)
        ));
        for r in &self.recipients {
            x.push_str(&format!(
                "<address address-value=\"WAPPUSH={}/TYPE=PLMN@ppg.vshare\"/>\n",
                esc(r)
            ));
        }
        x.push_str(
            "<quality-of-service delivery-method=\"unconfirmed\"/>\n</push-message>\n</pap>\n",
        );
        x
    }

    /// The multipart/related HTTP body.
    pub fn body(&self) -> String {
        format!(
            "--{b}\r\nContent-Type: application/xml\r\n\r\n{}\r\n--{b}\r\nContent-Type: {}\r\n\r\n{}\r\n--{b}--\r\n",
            self.control_entity(),
            self.content_type,
            self.content,
            b = BOUNDARY
        )
    }
}

/// A PPG's answer (WAP-247 §9.2): the result code and its description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushResponse {
    pub code: u32,
    pub desc: String,
}

impl PushResponse {
    /// 1000–1999 are success codes (WAP-247 §9.13).
    pub fn accepted(&self) -> bool {
        (1000..2000).contains(&self.code)
    }

    /// Reads the `response-result` of a push-response (or badmessage-response).
    pub fn parse(xml: &str) -> Result<PushResponse, WapError> {
        let root = crate::xml::from_xml(xml)?;
        fn find<'a>(e: &'a crate::wbxml::Element, name: &str) -> Option<&'a crate::wbxml::Element> {
            if e.name == name {
                return Some(e);
            }
            e.children.iter().find_map(|c| match c {
                crate::wbxml::Node::Element(c) => find(c, name),
                _ => None,
            })
        }
        let r = find(&root, "response-result")
            .or_else(|| find(&root, "badmessage-response"))
            .ok_or(WapError::Invalid {
                layer: Layer::Pap,
                offset: 0,
                reason: "no response-result".into(),
            })?;
        let code = r
            .attr("code")
            .and_then(|c| c.parse().ok())
            .ok_or(WapError::Invalid {
                layer: Layer::Pap,
                offset: 0,
                reason: "response-result without a numeric code".into(),
            })?;
        Ok(PushResponse {
            code,
            desc: r.attr("desc").unwrap_or_default().to_string(),
        })
    }
}
