//! The supervision service (being written).
