//! The communication proxy (stub).
pub mod dispatcher;
pub mod store;
