//! From raw samples to a ranked profile: which function of which object a
//! sample's instruction pointer lies in, how the samples add up per function,
//! and the flame graph of that.

pub mod aggregate;
pub mod flamegraph;
pub mod symbolizer;

pub use aggregate::{FunctionShare, Profile, ProfileBuilder};
pub use symbolizer::{Location, Symbolizer};
