//! Sound the output's container cannot carry, encoded again as AAC instead of dropped.
//!
//! Why: a clip whose container bystander reads but does not write goes out as MP4 (see
//! `READ_ONLY_EXTENSIONS`), and MP4 takes neither the G.711 of a Dahua DAV export (what most IP
//! cameras and doorbells record) nor Windows Media's WMA nor the plain PCM of program and
//! transport streams, and MPEG-TS (`live`'s default output) none of them. Such sound was dropped,
//! and the operator lost what a doorbell heard.
//! Copying stays the rule wherever the container takes the codec: the packets go out bit for
//! bit. `--no-audio` drops the sound either way.
//!
//! The samples keep their rate and channels (AAC takes every rate such sources use; one it does
//! not take is dropped as before, with the reason), and their timing: the first sample keeps the
//! time of the first decoded frame and every later one follows it sample by sample, with
//! silence where sound is missing (a lost or damaged packet), so that it stays in time with the
//! picture.

use ff::codec::{self, decoder, encoder};
use ff::format::{self, Sample};
use ff::{frame, ChannelLayout, Packet, Rational, Rescale};
use ffmpeg_next as ff;

/// Sample rates the AAC encoder takes.
const AAC_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// One input sound stream, decoded and encoded again as AAC into its output stream.
pub(super) struct Reencoder {
    decoder: decoder::Audio,
    encoder: encoder::Audio,
    /// The input stream's time base.
    from: Rational,
    rate: u32,
    channels: usize,
    /// Samples waiting for a whole encoder frame, channel by channel.
    waiting: Vec<Vec<f32>>,
    /// Samples an encoder frame takes (the last one may take fewer).
    frame_size: usize,
    /// Time of the next sample handed to the encoder, in samples; set by the first frame.
    next: Option<i64>,
    decoded: frame::Audio,
    /// Whether the encoder writes its setup once, in the output's header (MP4, Matroska).
    global_header: bool,
    /// Packets or frames the decoder refused; the sound goes on after them.
    pub errors: usize,
}

impl Reencoder {
    /// Adds an AAC stream to `octx` for the sound stream `ist` and returns its encoder, or why
    /// it cannot be done (the stream is then dropped with that reason).
    pub fn add(
        octx: &mut format::context::Output,
        ist: &format::stream::Stream,
    ) -> std::result::Result<Reencoder, String> {
        let global_header = octx.format().flags().contains(format::Flags::GLOBAL_HEADER);
        let made = Reencoder::open(ist, global_header)?;
        // The stream is added only once its encoder is open: a stream added and left without
        // parameters would fail the output's header, and the whole clip with it.
        let mut ost = octx
            .add_stream(encoder::find(codec::Id::AAC))
            .map_err(|e| format!("cannot add its stream ({e})"))?;
        ost.set_parameters(&made.encoder);
        ost.set_time_base(made.time_base());
        Ok(made)
    }

    /// A fresh decoder and encoder for `ist`, a reconnected input's sound stream, into the
    /// output stream this one writes: `None` where its rate or channels differ from this one's,
    /// which the output stream's header fixed.
    pub fn again(&self, ist: &format::stream::Stream) -> Option<Reencoder> {
        Reencoder::open(ist, self.global_header)
            .ok()
            .filter(|r| (r.rate, r.channels) == (self.rate, self.channels))
    }

    /// Opens the decoder of `ist` and an AAC encoder at its rate and channels.
    fn open(
        ist: &format::stream::Stream,
        global_header: bool,
    ) -> std::result::Result<Reencoder, String> {
        let decoder = codec::context::Context::from_parameters(ist.parameters())
            .and_then(|c| c.decoder().audio())
            .map_err(|e| format!("FFmpeg cannot decode it to encode it again ({e})"))?;
        let (rate, channels) = (decoder.rate(), usize::from(decoder.channels()));
        if !AAC_RATES.contains(&rate) {
            return Err(format!(
                "the output container cannot carry this codec, and AAC does not take its rate \
                 ({rate} Hz)"
            ));
        }
        if !(1..=8).contains(&channels) {
            return Err(format!(
                "the output container cannot carry this codec, and AAC does not take its \
                 {channels} channels"
            ));
        }
        let codec = encoder::find(codec::Id::AAC)
            .ok_or_else(|| "no AAC encoder in this FFmpeg to encode it again".to_string())?;
        let mut enc = codec::context::Context::new_with_codec(codec)
            .encoder()
            .audio()
            .map_err(|e| format!("cannot set up the AAC encoder ({e})"))?;
        let layout = ChannelLayout::default(channels as i32);
        enc.set_rate(rate as i32);
        enc.set_channel_layout(layout);
        enc.set_channels(channels as i32);
        enc.set_format(Sample::F32(format::sample::Type::Planar));
        // 64 kbit/s a channel, or what a frame at a low rate can hold (AAC's limit is 6144
        // bits a channel a frame of 1024 samples).
        enc.set_bit_rate(channels * 64_000.min(rate as usize * 6));
        enc.set_time_base(Rational(1, rate as i32));
        if global_header {
            enc.set_flags(codec::Flags::GLOBAL_HEADER);
        }
        let encoder = enc
            .open_as(codec)
            .map_err(|e| format!("cannot open the AAC encoder ({e})"))?;
        let frame_size = (encoder.frame_size() as usize).max(1);
        Ok(Reencoder {
            decoder,
            encoder,
            from: ist.time_base(),
            rate,
            channels,
            waiting: vec![Vec::new(); channels],
            frame_size,
            next: None,
            decoded: frame::Audio::empty(),
            global_header,
            errors: 0,
        })
    }

    /// The time base of the packets this gives back: one sample.
    pub fn time_base(&self) -> Rational {
        Rational(1, self.rate as i32)
    }

    /// Decodes `packet` of the input stream and appends the AAC packets ready to `out`.
    pub fn push(&mut self, packet: &Packet, out: &mut Vec<Packet>) {
        if self.decoder.send_packet(packet).is_err() {
            self.errors += 1;
            return;
        }
        self.decode(out);
    }

    /// Flushes the decoder and the encoder, appending the last packets to `out`.
    pub fn finish(&mut self, out: &mut Vec<Packet>) {
        let _ = self.decoder.send_eof();
        self.decode(out);
        self.encode(true, out);
        let _ = self.encoder.send_eof();
        self.receive(out);
    }

    fn decode(&mut self, out: &mut Vec<Packet>) {
        while self.decoder.receive_frame(&mut self.decoded).is_ok() {
            let at = self
                .decoded
                .pts()
                .or(self.decoded.timestamp())
                .map(|t| t.rescale(self.from, self.time_base()));
            match (self.next, at) {
                (None, at) => self.next = Some(at.unwrap_or(0)),
                // Sound missing (a packet lost or refused): silence in its place, so that what
                // follows stays in time with the picture; up to 10 s of it (30 MB at 96 kHz in
                // 8 channels).
                (Some(next), Some(at)) => {
                    let expected = next.saturating_add(self.waiting[0].len() as i64);
                    let gap = at.saturating_sub(expected);
                    if gap > i64::from(self.rate) / 10 && gap <= 10 * i64::from(self.rate) {
                        for samples in &mut self.waiting {
                            samples.resize(samples.len() + gap as usize, 0.0);
                        }
                    }
                }
                (Some(_), None) => {}
            }
            if !append_planar(&self.decoded, self.channels, &mut self.waiting) {
                self.errors += 1;
                continue;
            }
            self.encode(false, out);
        }
    }

    /// Hands the encoder every whole frame waiting, and with `last` what is left too.
    fn encode(&mut self, last: bool, out: &mut Vec<Packet>) {
        loop {
            let n = self.waiting[0].len().min(self.frame_size);
            if n == 0 || (n < self.frame_size && !last) {
                return;
            }
            let Some(mut f) = planar_frame(n, self.channels, self.rate) else {
                self.errors += 1;
                return;
            };
            for (c, samples) in self.waiting.iter_mut().enumerate() {
                f.plane_mut::<f32>(c)[..n].copy_from_slice(&samples[..n]);
                samples.drain(..n);
            }
            let pts = self.next.unwrap_or(0);
            f.set_pts(Some(pts));
            self.next = Some(pts.saturating_add(n as i64));
            if self.encoder.send_frame(&f).is_err() {
                self.errors += 1;
            }
            self.receive(out);
        }
    }

    fn receive(&mut self, out: &mut Vec<Packet>) {
        let mut p = Packet::empty();
        while self.encoder.receive_packet(&mut p).is_ok() {
            out.push(std::mem::replace(&mut p, Packet::empty()));
        }
    }
}

/// A frame of `n` samples of planar 32-bit floats in `channels` channels at `rate`, its planes
/// allocated; `None` when they cannot be.
fn planar_frame(n: usize, channels: usize, rate: u32) -> Option<frame::Audio> {
    let mut f = frame::Audio::empty();
    f.set_format(Sample::F32(format::sample::Type::Planar));
    f.set_samples(n);
    f.set_channel_layout(ChannelLayout::default(channels as i32));
    f.set_channels(channels as u16);
    f.set_rate(rate);
    // SAFETY: `f` is a frame of its own, without buffers, its format, sample count and channels
    // set; av_frame_get_buffer allocates its planes, or fails and leaves them unset, which the
    // check sees before any plane is touched.
    let made = unsafe { ff::ffi::av_frame_get_buffer(f.as_mut_ptr(), 0) };
    (made >= 0 && f.planes() == channels).then_some(f)
}

/// Appends the samples of `f` to `planes` (one per channel) as 32-bit floats from -1 to 1,
/// whatever the decoder's sample format; false for a format this does not read or a frame
/// with another channel count.
fn append_planar(f: &frame::Audio, channels: usize, planes: &mut [Vec<f32>]) -> bool {
    let n = f.samples();
    if usize::from(f.channels()) != channels || planes.len() != channels {
        return false;
    }
    let (bytes, read): (usize, fn(&[u8]) -> f32) = match f.format() {
        Sample::U8(_) => (1, |b| (f32::from(b[0]) - 128.0) / 128.0),
        Sample::I16(_) => (2, |b| f32::from(i16::from_ne_bytes([b[0], b[1]])) / 32768.0),
        Sample::I32(_) => (4, |b| {
            (i32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as f64 / 2_147_483_648.0) as f32
        }),
        Sample::F32(_) => (4, |b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]])),
        Sample::F64(_) => (8, |b| {
            f64::from_ne_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
        }),
        _ => return false,
    };
    if f.is_planar() {
        for (c, plane) in planes.iter_mut().enumerate() {
            let Some(data) = f.data(c).get(..n * bytes) else {
                return false;
            };
            plane.extend(data.chunks_exact(bytes).map(read));
        }
    } else {
        let Some(data) = f.data(0).get(..n * bytes * channels) else {
            return false;
        };
        for (i, sample) in data.chunks_exact(bytes).enumerate() {
            planes[i % channels].push(read(sample));
        }
    }
    true
}
