//! The message forms of an attribute record: TLV, XML and text (see docs/messages.md).
