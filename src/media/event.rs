//! What the media engine tells the call logic (IVR, queue, bridge).

use crate::media::dtmf::DtmfEvent;

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaEvent {
    /// A non-looping prompt sent its last frame; the leg now sends silence.
    PromptEnded,
    /// A key press, by whichever method the phone used.
    Digit(DtmfEvent),
}
