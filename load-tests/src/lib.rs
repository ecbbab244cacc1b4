//! Load tests for pingpost: a mock buyer fleet, a load generator, the bare fan-out ceiling
//! measured in the same run, and the scenarios of `load-tests/RESULTS.md`.

pub mod exchange;
pub mod fleet;
pub mod generator;
pub mod histograms;
pub mod market;
pub mod report;
pub mod timer;
