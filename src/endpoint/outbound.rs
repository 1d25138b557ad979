//! Messages waiting to go on the wire. Serialising happens here, once per
//! message, so handlers deal only in typed messages.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::sip::message::serialize;
use crate::sip::Peer;

#[derive(Debug, Default)]
pub struct Queue {
    items: VecDeque<(Peer, Bytes)>,
}

impl Queue {
    pub fn push_msg(&mut self, to: Peer, msg: &rsip::SipMessage) {
        self.items.push_back((to, Bytes::from(serialize(msg))));
    }

    pub fn push_bytes(&mut self, to: Peer, bytes: Bytes) {
        self.items.push_back((to, bytes));
    }

    pub fn pop(&mut self) -> Option<(Peer, Bytes)> {
        self.items.pop_front()
    }
}
