//! The stored forms are shared with every store adapter: see `trunkline_core::ports::store_codec`.

pub(crate) use trunkline_core::ports::store_codec::*;
