//! AF_XDP sockets, their UMEM, and the low-level memory helpers the data
//! path needs — the only module allowed `unsafe`.
//!
//! Today it holds [`mem`]: huge-page advice for the large per-worker
//! tables. The sockets themselves come with the AF_XDP data plane.

#![allow(unsafe_code)]

pub mod mem;
