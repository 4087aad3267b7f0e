//! Health checks of the real servers, on the control side.
//!
//! [`via`]: the TCP check through the forwarding path
//! (`via = "forwarding"`).

pub mod via;
