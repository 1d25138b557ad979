//! Writing a 16-bit PCM WAV file of any channel count at 8 kHz: a header
//! with placeholder sizes first, the samples as they come, and the sizes
//! patched in at checkpoints and at the end (a file cut off by a crash
//! plays up to its last checkpoint in strict players, and fully in those
//! that read to the end of the file).

use std::io::{self, Seek, SeekFrom, Write};

/// Sample rate of every recording: G.711's.
pub const RATE: u32 = 8000;

/// Bytes before the first sample.
pub const HEADER_LEN: u32 = 44;

/// The 44-byte header of a PCM file holding `data_len` bytes of samples.
pub fn header(channels: u16, data_len: u32) -> [u8; HEADER_LEN as usize] {
    let block = channels * 2;
    let mut h = [0u8; HEADER_LEN as usize];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&(36u32.saturating_add(data_len)).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&channels.to_le_bytes());
    h[24..28].copy_from_slice(&RATE.to_le_bytes());
    h[28..32].copy_from_slice(&(RATE * u32::from(block)).to_le_bytes());
    h[32..34].copy_from_slice(&block.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_len.to_le_bytes());
    h
}

/// A WAV file being written.
pub struct WavWriter<W: Write + Seek> {
    out: W,
    channels: u16,
    data_len: u32,
    buf: Vec<u8>,
}

impl<W: Write + Seek> WavWriter<W> {
    /// Writes the header (sizes still zero).
    pub fn new(mut out: W, channels: u16) -> io::Result<Self> {
        out.write_all(&header(channels, 0))?;
        Ok(WavWriter {
            out,
            channels,
            data_len: 0,
            buf: Vec::new(),
        })
    }

    /// Appends interleaved samples. Past 4 GiB of data (about 37 hours of
    /// stereo) further samples are refused rather than wrapping the sizes.
    pub fn write(&mut self, samples: &[i16]) -> io::Result<()> {
        let bytes = u32::try_from(samples.len() * 2).unwrap_or(u32::MAX);
        let Some(len) = self.data_len.checked_add(bytes) else {
            return Err(io::Error::other("recording longer than a WAV file holds"));
        };
        self.buf.clear();
        for s in samples {
            self.buf.extend_from_slice(&s.to_le_bytes());
        }
        self.out.write_all(&self.buf)?;
        self.data_len = len;
        Ok(())
    }

    /// Samples written so far, per channel.
    pub fn frames(&self) -> u64 {
        u64::from(self.data_len) / (2 * u64::from(self.channels))
    }

    /// Writes the sizes of what was written so far into the header.
    pub fn checkpoint(&mut self) -> io::Result<()> {
        self.out.flush()?;
        self.out.seek(SeekFrom::Start(0))?;
        self.out.write_all(&header(self.channels, self.data_len))?;
        self.out.seek(SeekFrom::End(0))?;
        self.out.flush()
    }

    /// Patches the sizes into the header and hands the writer back.
    pub fn finish(mut self) -> io::Result<W> {
        self.checkpoint()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::wav::{parse, WavFormat};
    use std::io::Cursor;

    #[test]
    fn a_finished_file_has_the_sizes_of_what_was_written() {
        let mut w = WavWriter::new(Cursor::new(Vec::new()), 2).expect("header");
        w.write(&[1, -1, 2, -2]).expect("write");
        w.write(&[i16::MAX, i16::MIN]).expect("write");
        assert_eq!(w.frames(), 3);
        let bytes = w.finish().expect("finish").into_inner();
        assert_eq!(bytes.len(), 44 + 12);
        assert_eq!(&bytes[0..4], b"RIFF");
        assert_eq!(
            u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
            36 + 12
        );
        assert_eq!(u16::from_le_bytes([bytes[22], bytes[23]]), 2);
        assert_eq!(
            u32::from_le_bytes([bytes[28], bytes[29], bytes[30], bytes[31]]),
            32000
        );
        assert_eq!(
            u32::from_le_bytes([bytes[40], bytes[41], bytes[42], bytes[43]]),
            12
        );
        assert_eq!(&bytes[44..48], &[1, 0, 0xFF, 0xFF]);
        assert_eq!(&bytes[52..56], &[0xFF, 0x7F, 0x00, 0x80]);
    }

    #[test]
    fn a_checkpoint_makes_what_was_written_so_far_a_whole_file() {
        let mut w = WavWriter::new(Cursor::new(Vec::new()), 1).expect("header");
        w.write(&[3; 160]).expect("write");
        w.checkpoint().expect("checkpoint");
        w.write(&[4; 80]).expect("write after");
        let bytes = w.out.get_ref().clone();
        // As a crash would leave it: the header says the first 160.
        assert_eq!(parse(&bytes).expect("valid wav").data_len, 320);
        assert_eq!(
            bytes.len(),
            44 + 480,
            "later samples appended, not overwritten"
        );
        let done = w.finish().expect("finish").into_inner();
        assert_eq!(parse(&done).expect("valid wav").data_len, 480);
    }

    #[test]
    fn the_prompt_reader_accepts_a_mono_file_we_write() {
        // The same reader `sipacd check` uses on prompts: a mono recording
        // written here is a valid prompt.
        let mut w = WavWriter::new(Cursor::new(Vec::new()), 1).expect("header");
        w.write(&[0; 160]).expect("write");
        let bytes = w.finish().expect("finish").into_inner();
        let info = parse(&bytes).expect("valid wav");
        assert_eq!(info.format, WavFormat::Pcm16);
        assert_eq!(info.data_len, 320);
    }
}
