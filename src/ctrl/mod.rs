//! Control side: what `xdpvsadm` asks for and how the answers are shown.
//!
//! [`listing`] renders the ipvsadm output formats from a plain data model;
//! the control socket that carries that model comes later.

pub mod listing;
