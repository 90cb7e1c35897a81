//! The measurements, one module each; each returns its raw results as JSON and renders
//! them as Markdown.

pub mod bulk;
pub mod connect;
pub mod footprint;
pub mod webhooks;
