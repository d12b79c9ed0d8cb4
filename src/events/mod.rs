//! AWS change events: the queue and rules that carry them (setup) and the operator's consumer.

pub mod change;
pub mod consumer;
pub mod index;
pub mod setup;

pub use change::{ChangeEvent, Service};
pub use consumer::Feed;
