//! CLI types.
