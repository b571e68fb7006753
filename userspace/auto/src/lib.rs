//! The decisions of `adaptctl auto`, kept apart from the I/O so they can be
//! tested: which hot functions are opportunities and in what order, whether
//! an injection helped, and the log of every decision.

pub mod decision_log;
pub mod opportunity;
pub mod per_call;
pub mod policy_file;
pub mod verdict;

pub use decision_log::{DecisionKind, DecisionLog, DecisionRecord, Subject};
pub use opportunity::{rank, Candidate, Opportunity};
pub use per_call::{judge_per_call, CallWindow, PerCall, PerCallCriterion, PerCallVerdict};
pub use verdict::{judge, Verdict, Window};
