//! The registry service (being written).
