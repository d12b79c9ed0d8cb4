//! AWS change events: the queue and rules that carry them (setup) and the operator's consumer.

pub mod setup;
