//! Messages waiting to go on the wire, already serialised (once per
//! message, by the transaction layer's `Wire`).

use std::collections::VecDeque;

use bytes::Bytes;

use crate::sip::Peer;

#[derive(Debug, Default)]
pub struct Queue {
    items: VecDeque<(Peer, Bytes)>,
}

impl Queue {
    pub fn push_bytes(&mut self, to: Peer, bytes: Bytes) {
        self.items.push_back((to, bytes));
    }

    pub fn pop(&mut self) -> Option<(Peer, Bytes)> {
        self.items.pop_front()
    }
}
