//! The routing service (being written).
