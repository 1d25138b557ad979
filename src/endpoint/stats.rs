//! Endpoint counters, read by logs now and by /metrics later.

#[derive(Debug, Default, Clone)]
pub struct EndpointStats {
    pub messages_in: u64,
    pub parse_errors: u64,
    pub calls_answered: u64,
    pub calls_rejected: u64,
    /// Responses whose top Via was not ours (RFC 3261 §18.1.2).
    pub responses_dropped: u64,
}

impl EndpointStats {
    pub(super) fn count_in(&mut self) {
        self.messages_in += 1;
    }

    pub(super) fn count_parse_error(&mut self) {
        self.parse_errors += 1;
    }
}
