//! The subsidy service (being written).
