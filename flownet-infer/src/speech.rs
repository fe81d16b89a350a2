//! Text to speech with a Piper (VITS) voice: eSpeak NG turns the text into IPA
//! phonemes, the voice's phoneme map turns those into ids, and the model makes the
//! waveform, one sentence at a time.
//!
//! The text ([`flownet_core::speech::text_of`]) is split into clauses at `, ; : . ! ?`
//! followed by a space or the end; each clause is phonemized by its own `espeak-ng -q
//! --ipa -v <voice>` run (its lines joined by spaces), and the clause's punctuation is
//! kept as a phoneme, as Piper's own phonemizer keeps it. Sentences end at `. ! ?`.
//! Each sentence's phonemes become `^ _ (id _)* $` (unknown phonemes skipped) and one
//! model run; its samples are scaled so that the loudest is 32767, and sentences are
//! joined by 0.2 s of silence. VITS samples noise inside the model, so the same text
//! sounds the same but its samples differ from run to run unless `noise_scale` and
//! `noise_w` are 0.

use std::{
    collections::HashMap,
    io::Write,
    process::{Command, Stdio},
    sync::{Mutex, PoisonError},
};

use flownet_core::{InferenceOutput, InferenceRequest};
use ndarray::{Array1, Array2};
use ort::{session::Session, value::TensorRef};
use serde::Deserialize;
use serde_json::json;

use crate::{Error, Result, manifest::ModelManifest, params};

/// The environment variable naming the espeak-ng binary (default: `espeak-ng` on the
/// `PATH`).
pub const ESPEAK_ENV: &str = "FLOWNET_ESPEAK";
/// Silence between sentences.
const SENTENCE_SILENCE_S: f32 = 0.2;
/// The output formats: a WAV file, or its samples alone (16-bit little-endian mono).
pub const FORMATS: [&str; 2] = ["wav", "pcm"];

/// The parts of a Piper voice's `.onnx.json` the pipeline reads.
#[derive(Debug, Clone, Deserialize)]
struct VoiceConfig {
    audio: AudioConfig,
    espeak: EspeakConfig,
    inference: InferenceConfig,
    phoneme_id_map: HashMap<String, Vec<i64>>,
}

#[derive(Debug, Clone, Deserialize)]
struct AudioConfig {
    sample_rate: u32,
}

#[derive(Debug, Clone, Deserialize)]
struct EspeakConfig {
    voice: String,
}

#[derive(Debug, Clone, Deserialize)]
struct InferenceConfig {
    noise_scale: f32,
    length_scale: f32,
    noise_w: f32,
}

/// A loaded Piper voice's fixed parts.
#[derive(Debug)]
pub(crate) struct Speaker {
    sample_rate: u32,
    espeak_voice: String,
    noise_scale: f32,
    length_scale: f32,
    noise_w: f32,
    /// Each phoneme (one character) to its ids.
    ids: HashMap<char, Vec<i64>>,
    pad: Vec<i64>,
    bos: Vec<i64>,
    eos: Vec<i64>,
}

impl Speaker {
    /// The pipeline for `manifest`: its `files.voice` (Piper's `.onnx.json`, checked
    /// against `file_sha256.voice`) and the inputs `input`, `input_lengths`, `scales`.
    pub(crate) fn for_manifest(manifest: &ModelManifest) -> Result<Self> {
        let unsupported = |reason: String| Error::Unsupported {
            id: manifest.id.clone(),
            reason,
        };
        let mut names: Vec<&str> = manifest.inputs.iter().map(|t| t.name.as_str()).collect();
        names.sort_unstable();
        if names != ["input", "input_lengths", "scales"] {
            return Err(unsupported(format!(
                "a Piper voice takes input, input_lengths and scales, not {names:?}"
            )));
        }
        // Without the phonemizer the voice cannot say anything: skip it at load time
        // (with the reason) rather than fail every task.
        espeak_version().map_err(|e| unsupported(e.to_string()))?;
        let bytes = manifest.verify_file("voice")?;
        let path = manifest.file_path("voice").unwrap_or_default();
        let config: VoiceConfig = serde_json::from_slice(&bytes)
            .map_err(|e| Error::manifest(&path, format!("not a Piper voice config: {e}")))?;
        let mut ids = HashMap::new();
        for (phoneme, v) in &config.phoneme_id_map {
            let mut chars = phoneme.chars();
            if let (Some(c), None) = (chars.next(), chars.next()) {
                ids.insert(c, v.clone());
            }
        }
        let special = |c: char| {
            ids.get(&c)
                .cloned()
                .ok_or_else(|| Error::manifest(&path, format!("the phoneme map lacks {c:?}")))
        };
        Ok(Self {
            sample_rate: config.audio.sample_rate,
            espeak_voice: config.espeak.voice.clone(),
            noise_scale: config.inference.noise_scale,
            length_scale: config.inference.length_scale,
            noise_w: config.inference.noise_w,
            pad: special('_')?,
            bos: special('^')?,
            eos: special('$')?,
            ids,
        })
    }

    /// Speaks `request`'s text (its input blob, else its prompt). Params: `speed`
    /// (0.25 to 4, default 1), `format` (`wav` or `pcm`), `noise_scale` and `noise_w`
    /// (0 to 2; the voice's own by default).
    pub(crate) fn infer(
        &self,
        model_id: &str,
        session: &Mutex<Session>,
        request: &InferenceRequest,
    ) -> Result<InferenceOutput> {
        let source = crate::params::text_input(request, "a speech model")?;
        let text = flownet_core::speech::text_of(source)
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
        let speed = params::float(&request.params, "speed", 0.25..=4.0)?.unwrap_or(1.0);
        let format = params::choice(&request.params, "format", &FORMATS)?.unwrap_or("wav");
        let noise_scale = params::float(&request.params, "noise_scale", 0.0..=2.0)?
            .map_or(self.noise_scale, |v| v as f32);
        let noise_w = params::float(&request.params, "noise_w", 0.0..=2.0)?
            .map_or(self.noise_w, |v| v as f32);
        let scales = [noise_scale, self.length_scale / speed as f32, noise_w];

        let started = std::time::Instant::now();
        let sentences = phonemize(&text, &self.espeak_voice)?;
        let silence = (SENTENCE_SILENCE_S * self.sample_rate as f32) as usize;
        let mut pcm: Vec<i16> = Vec::new();
        let mut phoneme_count = 0usize;
        for (n, sentence) in sentences.iter().enumerate() {
            let ids = self.phoneme_ids(sentence);
            phoneme_count += ids.len();
            let audio = self.run(model_id, session, &ids, scales)?;
            if n > 0 {
                pcm.extend(std::iter::repeat_n(0, silence));
            }
            pcm.extend(to_i16(&audio));
        }
        let seconds = pcm.len() as f64 / f64::from(self.sample_rate);
        let (bytes, mime) = match format {
            "pcm" => (
                pcm.iter().flat_map(|s| s.to_le_bytes()).collect(),
                "audio/pcm".to_owned(),
            ),
            _ => (wav(&pcm, self.sample_rate), "audio/wav".to_owned()),
        };
        let elapsed = started.elapsed().as_secs_f64();
        Ok(InferenceOutput {
            bytes,
            mime,
            metadata: json!({
                "sample_rate": self.sample_rate,
                "seconds": seconds,
                "sentences": sentences.len(),
                "phoneme_ids": phoneme_count,
                "real_time_factor": if seconds > 0.0 { elapsed / seconds } else { 0.0 },
                "format": format,
            }),
        })
    }

    /// `^ _ (ids _)* $` for a sentence's phonemes; phonemes the voice lacks are skipped.
    fn phoneme_ids(&self, phonemes: &str) -> Vec<i64> {
        let mut ids = self.bos.clone();
        ids.extend(&self.pad);
        for c in phonemes.chars() {
            if let Some(v) = self.ids.get(&c) {
                ids.extend(v);
                ids.extend(&self.pad);
            }
        }
        ids.extend(&self.eos);
        ids
    }

    fn run(
        &self,
        model_id: &str,
        session: &Mutex<Session>,
        ids: &[i64],
        scales: [f32; 3],
    ) -> Result<Vec<f32>> {
        let input = Array2::from_shape_vec((1, ids.len()), ids.to_vec())
            .map_err(|e| Error::Output(e.to_string()))?;
        let lengths = Array1::from_vec(vec![ids.len() as i64]);
        let scales = Array1::from_vec(scales.to_vec());
        let mut session = session.lock().unwrap_or_else(PoisonError::into_inner);
        let outputs = session
            .run(ort::inputs![
                "input" => TensorRef::from_array_view(&input).map_err(Error::ort("preparing the phonemes"))?,
                "input_lengths" => TensorRef::from_array_view(&lengths).map_err(Error::ort("preparing the length"))?,
                "scales" => TensorRef::from_array_view(&scales).map_err(Error::ort("preparing the scales"))?,
            ])
            .map_err(Error::ort(format!("running {model_id}")))?;
        let (_, audio) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(Error::ort("reading the audio"))?;
        Ok(audio.to_vec())
    }
}

/// The text's sentences as IPA phonemes (see the module's docs).
pub fn phonemize(text: &str, voice: &str) -> Result<Vec<String>> {
    let mut sentences = Vec::new();
    let mut current = String::new();
    for (clause, end) in clauses(text) {
        let ipa = espeak(&clause, voice)?;
        if !current.is_empty() && !ipa.is_empty() {
            current.push(' ');
        }
        current.push_str(&ipa);
        if let Some(p) = end {
            current.push(p);
            if matches!(p, '.' | '!' | '?') {
                sentences.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.trim().is_empty() {
        sentences.push(current);
    }
    sentences.retain(|s| !s.trim().is_empty());
    if sentences.is_empty() {
        return Err(Error::InvalidInput(
            "the text has nothing to say aloud".into(),
        ));
    }
    Ok(sentences)
}

/// The text's clauses and the punctuation that ends each (none for the last, if it
/// ends without): a clause ends at `, ; : . ! ?` followed by whitespace or the end.
pub fn clauses(text: &str) -> Vec<(String, Option<char>)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut start = 0;
    for i in 0..chars.len() {
        let c = chars[i];
        let at_end = chars.get(i + 1).is_none_or(|n| n.is_whitespace());
        if matches!(c, ',' | ';' | ':' | '.' | '!' | '?') && at_end {
            let clause: String = chars[start..i].iter().collect();
            out.push((clause.trim().to_owned(), Some(c)));
            start = i + 1;
        }
    }
    let rest: String = chars[start..].iter().collect();
    if !rest.trim().is_empty() {
        out.push((rest.trim().to_owned(), None));
    }
    out
}

/// The espeak-ng binary's version line, or why it cannot be run.
pub fn espeak_version() -> Result<String> {
    let binary = espeak_binary();
    let out = Command::new(&binary)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            Error::Phonemizer(format!(
                "{} cannot be run ({e}): install Debian's espeak-ng (scripts/setup.sh does) or set {ESPEAK_ENV}",
                binary.to_string_lossy()
            ))
        })?;
    if !out.status.success() {
        return Err(Error::Phonemizer(format!(
            "{} --version failed: {}",
            binary.to_string_lossy(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn espeak_binary() -> std::ffi::OsString {
    std::env::var_os(ESPEAK_ENV)
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "espeak-ng".into())
}

/// One clause's IPA from `espeak-ng -q --ipa -v <voice>` (the text on its stdin), its
/// lines joined by spaces.
fn espeak(clause: &str, voice: &str) -> Result<String> {
    if clause.trim().is_empty() {
        return Ok(String::new());
    }
    let binary = espeak_binary();
    let mut child = Command::new(&binary)
        .args(["-q", "--ipa", "-v", voice])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            Error::Phonemizer(format!(
                "running {} for the phonemes: {e} (install Debian's espeak-ng: scripts/setup.sh)",
                binary.to_string_lossy()
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(clause.as_bytes())
            .map_err(|e| Error::Phonemizer(format!("writing to espeak-ng: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Phonemizer(format!("reading espeak-ng: {e}")))?;
    if !out.status.success() {
        return Err(Error::Phonemizer(format!(
            "espeak-ng failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" "))
}

/// Samples scaled so that the loudest is 32767 (at most ×3276.7 for near silence).
fn to_i16(audio: &[f32]) -> Vec<i16> {
    let peak = audio.iter().fold(0.0f32, |m, s| m.max(s.abs())).max(0.01);
    let scale = 32767.0 / peak;
    audio
        .iter()
        .map(|s| (s * scale).clamp(-32768.0, 32767.0) as i16)
        .collect()
}

/// A 16-bit mono WAV file.
pub fn wav(pcm: &[i16], sample_rate: u32) -> Vec<u8> {
    let data = (pcm.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + data as usize);
    out.extend(b"RIFF");
    out.extend((36 + data).to_le_bytes());
    out.extend(b"WAVEfmt ");
    out.extend(16u32.to_le_bytes());
    out.extend(1u16.to_le_bytes()); // PCM
    out.extend(1u16.to_le_bytes()); // mono
    out.extend(sample_rate.to_le_bytes());
    out.extend((sample_rate * 2).to_le_bytes());
    out.extend(2u16.to_le_bytes());
    out.extend(16u16.to_le_bytes());
    out.extend(b"data");
    out.extend(data.to_le_bytes());
    for s in pcm {
        out.extend(s.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clauses_end_at_punctuation_before_a_space() {
        assert_eq!(
            clauses("Hello, world. It costs 4.60 euros; ok? yes"),
            [
                ("Hello".into(), Some(',')),
                ("world".into(), Some('.')),
                ("It costs 4.60 euros".into(), Some(';')),
                ("ok".into(), Some('?')),
                ("yes".into(), None),
            ]
        );
        assert_eq!(
            clauses("e.g. this"),
            [("e.g".into(), Some('.')), ("this".into(), None)]
        );
        assert!(clauses("").is_empty());
    }

    #[test]
    fn a_wav_header_describes_its_samples() {
        let bytes = wav(&[0, 1, -1, 32767], 22_050);
        assert_eq!(bytes.len(), 44 + 8);
        assert_eq!(&bytes[0..4], b"RIFF");
        assert_eq!(u32::from_le_bytes(bytes[4..8].try_into().unwrap()), 36 + 8);
        assert_eq!(
            u32::from_le_bytes(bytes[24..28].try_into().unwrap()),
            22_050
        );
        assert_eq!(u32::from_le_bytes(bytes[40..44].try_into().unwrap()), 8);
        assert_eq!(&bytes[50..52], &32767i16.to_le_bytes());
    }

    #[test]
    fn samples_are_scaled_to_the_loudest() {
        assert_eq!(to_i16(&[0.5, -0.25, 0.0]), [32767, -16383, 0]);
        // Near silence is scaled by at most 32767 / 0.01, not up to full scale.
        assert_eq!(to_i16(&[0.001]), [3276]);
    }
}
