//! Restreaming ("relay push"): every live publish sent on, as it comes, to other RTMP and
//! RTMPS servers.
//!
//! [`target`]: where a stream is pushed, as `relay.push` names it.

pub mod target;
