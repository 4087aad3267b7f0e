//! Routing out of another port: after the pipeline, a frame whose verdict
//! names another port than the one it arrived on (a two-armed director)
//! is copied into this worker's socket on that port when it has one — one
//! copy, same core, no queue — else handed to a worker that has.

use arrayvec::ArrayVec;

use super::handover::Chain;
use super::io::FrameIo;
use super::shared::Shared;
use crate::frame::{Frame, MAX_BATCH, Verdict};

/// The sockets of a worker other than the one being served.
pub(super) struct Others<'s, S> {
    before: &'s mut [(u8, S)],
    after: &'s mut [(u8, S)],
}

impl<S> Others<'_, S> {
    fn iter_mut(&mut self) -> impl Iterator<Item = &mut (u8, S)> {
        self.before.iter_mut().chain(self.after.iter_mut())
    }
}

/// Splits `socks` into socket `i` and the others.
pub(super) fn split<S>(socks: &mut [(u8, S)], i: usize) -> (&mut (u8, S), Others<'_, S>) {
    let (before, rest) = socks.split_at_mut(i);
    let (me, after) = rest.split_first_mut().expect("socket index in range");
    (me, Others { before, after })
}

/// What a round moved, counted outside the borrow of the sockets.
#[derive(Default)]
pub(super) struct RoundCounts {
    /// Frames given a TX verdict on their own socket, or placed on
    /// another socket's ring.
    pub tx: u64,
    pub sent: u64,
    pub dropped: u64,
    pub no_tx_port: u64,
    /// Of `sent`, those along an owner chain.
    pub chained: u64,
}

/// For the frames of socket `my_port` after the pipeline: each frame for
/// another port goes into this worker's socket there, or to the inbox of
/// a worker with a socket there (always the same one for this worker, so
/// a flow, which has one owner, keeps one path and its order); either way
/// this frame is recycled (`Handed`).
pub(super) fn route_out<S: FrameIo>(
    shared: &Shared,
    (me, my_port): (usize, u8),
    others: &mut Others<'_, S>,
    frames: &[Frame<'_>],
    verdicts: &mut [Verdict],
    counts: &mut RoundCounts,
) {
    let mut elsewhere = false;
    for v in verdicts.iter() {
        match *v {
            Verdict::Tx { port, .. } if port == my_port => counts.tx += 1,
            Verdict::Tx { .. } => elsewhere = true,
            _ => {}
        }
    }
    if !elsewhere {
        return;
    }
    // One batch for each of this worker's other sockets.
    for (port, io) in others.iter_mut() {
        let port = *port;
        let batch: ArrayVec<&[u8], MAX_BATCH> = frames
            .iter()
            .zip(verdicts.iter_mut())
            .filter_map(|(f, v)| match *v {
                Verdict::Tx { port: p, len } if p == port => {
                    *v = Verdict::Handed;
                    Some(&f.data()[..len])
                }
                _ => None,
            })
            .collect();
        if batch.is_empty() {
            continue;
        }
        let sent = io.inject_batch(&batch, |frames, verdicts| {
            for (f, v) in frames.iter().zip(verdicts.iter_mut()) {
                *v = Verdict::Tx { port, len: f.len() };
            }
        });
        counts.tx += sent as u64;
        counts.dropped += (batch.len() - sent) as u64;
    }
    // The rest leave by ports this worker has no socket on.
    for (f, v) in frames.iter().zip(verdicts.iter_mut()) {
        let Verdict::Tx { port, len } = *v else {
            continue;
        };
        if port == my_port {
            continue;
        }
        *v = Verdict::Handed;
        let Some(w) = shared.transmitter_for(me, port) else {
            counts.no_tx_port += 1;
            continue;
        };
        if shared
            .mailbox(w)
            .send(&f.data()[..len], port, true, Chain::received(me))
        {
            counts.sent += 1;
        } else {
            counts.dropped += 1;
        }
    }
}
