//! Helpers shared by the unit tests (compiled only for tests).

pub mod der;
