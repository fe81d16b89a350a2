//! Reading text in images with PP-OCR: a text detector (DB: a probability map of
//! "text here"), an angle classifier (upright or upside down) and a recogniser (CTC
//! over a character set), each an ONNX model.
//!
//! The image is scaled so that its shorter side is [`DET_MIN_SIDE`] pixels (its longer
//! side at most [`DET_MAX_SIDE`]), both rounded to multiples of 32, and the detector's
//! map is thresholded at [`BIN_THRESHOLD`], dilated by 2×2 and split into connected
//! regions. Each region scoring at least [`BOX_THRESHOLD`] becomes a box, grown by
//! DB's unclip distance (area × 1.6 / perimeter) and mapped back to the image; boxes of
//! one line that touch are merged. Each box is cropped with a margin (turned a quarter
//! if it is much taller than wide), turned upside down
//! where the classifier is sure it is, and read by the recogniser; boxes read with
//! less than [`TEXT_THRESHOLD`] confidence are dropped, and the rest are gathered into
//! lines, top to bottom, left to right. Boxes are axis-aligned: rotated text is read
//! within its bounding box.

use std::sync::{Mutex, PoisonError};

use flownet_core::{
    InferenceOutput, InferenceRequest,
    ocr::{self, Line, Reading},
};
use image::{RgbImage, imageops::FilterType};
use ndarray::Array4;
use ort::{session::Session, value::TensorRef};
use serde_json::json;

use crate::{Error, Result, classify, manifest::ModelManifest};

/// The detector's input: the shorter side scaled to this many pixels...
pub const DET_MIN_SIDE: u32 = 736;
/// ...unless the longer side would pass this many.
pub const DET_MAX_SIDE: u32 = 2048;
/// A pixel of the detector's map is text above this probability.
pub const BIN_THRESHOLD: f32 = 0.3;
/// A region is a text box if its mean probability is at least this.
pub const BOX_THRESHOLD: f32 = 0.5;
/// DB's unclip ratio: how far a region grows back to the text's extent.
const UNCLIP_RATIO: f32 = 1.6;
/// Regions smaller than this (pixels of the map, either side) are noise.
const MIN_SIZE: f32 = 3.0;
/// Most regions one image yields.
const MAX_CANDIDATES: usize = 1000;
/// A read box is kept if its recogniser confidence is at least this.
pub const TEXT_THRESHOLD: f32 = 0.5;
/// The recogniser's input height, and its narrowest width (320 for 48).
const REC_HEIGHT: u32 = 48;
const REC_MIN_WIDTH: u32 = 320;
/// The angle classifier's input size.
const CLS_HEIGHT: u32 = 48;
const CLS_WIDTH: u32 = 192;
/// The classifier turns a crop only when it says "180°" with at least this probability.
const CLS_THRESHOLD: f32 = 0.9;
/// Crops per recogniser or classifier run.
const BATCH: usize = 6;
/// Each crop reaches this fraction of its box's height beyond the box, above and
/// below and to either side: a crop as tight as the detector's box loses the spaces
/// between small words.
const CROP_PAD_Y: f64 = 0.15;
const CROP_PAD_X: f64 = 0.05;
/// Two boxes are one line's (a word or line the detector split) if they overlap
/// vertically by this fraction of the lower one and lie at most this fraction of the
/// taller one's height apart.
const MERGE_OVERLAP: f64 = 0.5;
const MERGE_GAP: f64 = 0.2;

/// A loaded PP-OCR model's other two sessions and its character set. The detector's
/// session is the model's own (the manifest's weights).
pub(crate) struct Reader {
    det_input: String,
    det_output: String,
    rec: Mutex<Session>,
    rec_input: String,
    rec_output: String,
    cls: Option<(Mutex<Session>, String, String)>,
    /// The recogniser's classes: index 0 is CTC's blank.
    charset: Vec<String>,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("det", &(&self.det_input, &self.det_output))
            .field("rec", &(&self.rec_input, &self.rec_output))
            .field("cls", &self.cls.is_some())
            .field("characters", &self.charset.len())
            .finish()
    }
}

/// The single input and output names of a session.
fn io_names(session: &Session, what: &str, id: &str) -> Result<(String, String)> {
    match (session.inputs(), session.outputs()) {
        ([input], [output, ..]) => Ok((input.name().to_owned(), output.name().to_owned())),
        _ => Err(Error::Unsupported {
            id: id.to_owned(),
            reason: format!("the {what} model must take one input tensor"),
        }),
    }
}

impl Reader {
    /// The pipeline for `manifest`, whose weights are the detector and whose
    /// `files.rec` (and optional `files.cls`) are the recogniser and angle classifier;
    /// `session` builds the session of a file role. The character set is the
    /// recogniser's `character` metadata, one per line, with a space appended (as
    /// PaddleOCR's `use_space_char`) and CTC's blank first.
    pub(crate) fn for_manifest(
        manifest: &ModelManifest,
        session: &dyn Fn(&str) -> Result<Session>,
    ) -> Result<Self> {
        let id = manifest.id.as_str();
        let unsupported = |reason: String| Error::Unsupported {
            id: id.to_owned(),
            reason,
        };
        let (det_input, det_output) = match (manifest.inputs.as_slice(), manifest.outputs.first()) {
            ([input], Some(output)) if input.shape.len() == 4 && input.shape[1] == 3 => {
                (input.name.clone(), output.name.clone())
            }
            _ => {
                return Err(unsupported(
                    "an OCR detector takes one [N, 3, H, W] image and returns a [N, 1, H, W] map"
                        .into(),
                ));
            }
        };
        if !manifest.files.contains_key("rec") {
            return Err(unsupported(
                "the manifest names no recogniser (files.rec)".into(),
            ));
        }
        let rec = session("rec")?;
        let (rec_input, rec_output) = io_names(&rec, "recogniser", id)?;
        let dictionary = rec
            .metadata()
            .ok()
            .and_then(|m| m.custom("character"))
            .ok_or_else(|| unsupported("the recogniser carries no `character` metadata".into()))?;
        let mut charset = vec![String::new()];
        charset.extend(dictionary.lines().map(str::to_owned));
        charset.push(" ".into());
        let cls = match manifest.files.contains_key("cls") {
            true => {
                let cls = session("cls")?;
                let (i, o) = io_names(&cls, "angle classifier", id)?;
                Some((Mutex::new(cls), i, o))
            }
            false => None,
        };
        Ok(Self {
            det_input,
            det_output,
            rec: Mutex::new(rec),
            rec_input,
            rec_output,
            cls,
            charset,
        })
    }

    /// Reads the text in `request`'s input image and returns the [`Reading`] JSON.
    /// An image in which no text is found is [`Error::InvalidInput`], so that the
    /// task is declined and refunded rather than paid for nothing.
    pub(crate) fn infer(
        &self,
        model_id: &str,
        det: &Mutex<Session>,
        request: &InferenceRequest,
    ) -> Result<InferenceOutput> {
        let bytes = request.input.as_deref().ok_or_else(|| {
            Error::InvalidInput(format!(
                "model {model_id} needs an input image (PNG or JPEG bytes)"
            ))
        })?;
        let image = classify::decode(bytes)?;
        let (width, height) = image.dimensions();
        let started = std::time::Instant::now();
        let boxes = merge_touching(self.detect(model_id, det, &image)?);
        let detected = boxes.len();
        let mut crops: Vec<RgbImage> = boxes.iter().map(|b| crop(&image, b)).collect();
        self.upright(model_id, &mut crops)?;
        let reads = self.recognise(model_id, &crops)?;
        let words: Vec<Word> = boxes
            .into_iter()
            .zip(reads)
            .filter(|(_, (text, score))| *score >= TEXT_THRESHOLD && !text.trim().is_empty())
            .map(|(b, (text, score))| (b, text.trim().to_owned(), score))
            .collect();
        if words.is_empty() {
            return Err(Error::InvalidInput(format!(
                "no text found in the {width}×{height} image"
            )));
        }
        let lines = into_lines(words);
        let reading = Reading::new(model_id, width, height, lines);
        let bytes = serde_json::to_vec(&reading)
            .map_err(|e| Error::Output(format!("encoding the result: {e}")))?;
        Ok(InferenceOutput {
            bytes,
            mime: ocr::MIME.into(),
            metadata: json!({
                "input_width": width,
                "input_height": height,
                "boxes": detected,
                "lines": reading.lines.len(),
                "millis": started.elapsed().as_millis() as u64,
            }),
        })
    }

    /// The text boxes in `image`, in its pixels.
    fn detect(&self, model_id: &str, det: &Mutex<Session>, image: &RgbImage) -> Result<Vec<Rect>> {
        let (w, h) = image.dimensions();
        let (dw, dh) = det_size(w, h);
        let resized = image::imageops::resize(image, dw, dh, FilterType::Triangle);
        // BGR, as PaddleOCR reads images (OpenCV's order), scaled to [-1, 1].
        let tensor = bgr_tensor(&resized, dw as usize);
        let (shape, map) = {
            let mut session = det.lock().unwrap_or_else(PoisonError::into_inner);
            let input = TensorRef::from_array_view(&tensor)
                .map_err(Error::ort("preparing the detector's input"))?;
            let outputs = session
                .run(ort::inputs![self.det_input.as_str() => input])
                .map_err(Error::ort(format!("running {model_id}'s detector")))?;
            let output = outputs.get(&self.det_output).ok_or_else(|| {
                Error::Output(format!("the detector returned no {:?}", self.det_output))
            })?;
            let (shape, data) = output
                .try_extract_tensor::<f32>()
                .map_err(Error::ort("reading the detector's map"))?;
            (shape.to_vec(), data.to_vec())
        };
        let (mh, mw) = match shape.as_slice() {
            [1, 1, mh, mw] if (*mh * *mw) as usize == map.len() => (*mh as usize, *mw as usize),
            s => return Err(Error::Output(format!("the detector's map has shape {s:?}"))),
        };
        let sx = w as f32 / mw as f32;
        let sy = h as f32 / mh as f32;
        Ok(regions(&map, mw, mh)
            .into_iter()
            .filter_map(|r| {
                let b = r.unclipped();
                let rect = Rect {
                    x0: (b.0 * sx).round().clamp(0.0, (w - 1) as f32) as u32,
                    y0: (b.1 * sy).round().clamp(0.0, (h - 1) as f32) as u32,
                    x1: (b.2 * sx).round().clamp(0.0, (w - 1) as f32) as u32,
                    y1: (b.3 * sy).round().clamp(0.0, (h - 1) as f32) as u32,
                };
                (rect.width() > 3 && rect.height() > 3).then_some(rect)
            })
            .collect())
    }

    /// Turns each crop the angle classifier is sure is upside down.
    fn upright(&self, model_id: &str, crops: &mut [RgbImage]) -> Result<()> {
        let Some((session, input, output)) = &self.cls else {
            return Ok(());
        };
        let order = by_aspect(crops);
        for chunk in order.chunks(BATCH) {
            let batch: Vec<&RgbImage> = chunk.iter().map(|&i| &crops[i]).collect();
            let tensor = line_batch(&batch, CLS_HEIGHT, CLS_WIDTH, CLS_WIDTH);
            let probs = run_one(
                session,
                input,
                output,
                &tensor,
                model_id,
                "angle classifier",
            )?;
            let classes = probs.len() / chunk.len().max(1);
            if classes != 2 {
                return Err(Error::Output(format!(
                    "the angle classifier returned {classes} classes, not 2"
                )));
            }
            for (k, &i) in chunk.iter().enumerate() {
                let p180 = probs[k * 2 + 1];
                if p180 > probs[k * 2] && p180 >= CLS_THRESHOLD {
                    image::imageops::rotate180_in_place(&mut crops[i]);
                }
            }
        }
        Ok(())
    }

    /// The text and confidence of each crop, in order.
    fn recognise(&self, model_id: &str, crops: &[RgbImage]) -> Result<Vec<(String, f32)>> {
        let mut out = vec![(String::new(), 0.0); crops.len()];
        let order = by_aspect(crops);
        for chunk in order.chunks(BATCH) {
            let batch: Vec<&RgbImage> = chunk.iter().map(|&i| &crops[i]).collect();
            // Every crop in the batch is padded to the widest one's width at height 48
            // (at least 320).
            let widest = batch
                .iter()
                .map(|c| aspect(c))
                .fold(REC_MIN_WIDTH as f32 / REC_HEIGHT as f32, f32::max);
            let width = ((REC_HEIGHT as f32 * widest) as u32).max(1);
            let tensor = line_batch(&batch, REC_HEIGHT, width, width);
            let probs = run_one(
                &self.rec,
                &self.rec_input,
                &self.rec_output,
                &tensor,
                model_id,
                "recogniser",
            )?;
            let classes = self.charset.len();
            let per = probs.len() / chunk.len().max(1);
            if per == 0 || per % classes != 0 {
                return Err(Error::Output(format!(
                    "the recogniser returned {} values for {} crops of {classes} classes",
                    probs.len(),
                    chunk.len()
                )));
            }
            for (k, &i) in chunk.iter().enumerate() {
                out[i] = self.decode(&probs[k * per..(k + 1) * per]);
            }
        }
        Ok(out)
    }

    /// CTC's greedy decoding of one crop's `[T, classes]` probabilities: the most
    /// likely class at each step, repeats merged, blanks dropped; the confidence is the
    /// mean probability of the characters kept.
    fn decode(&self, probs: &[f32]) -> (String, f32) {
        let classes = self.charset.len();
        let mut text = String::new();
        let (mut sum, mut kept) = (0.0f64, 0usize);
        let mut previous = usize::MAX;
        for step in probs.chunks_exact(classes) {
            let (best, p) = step
                .iter()
                .copied()
                .enumerate()
                .fold((0, f32::MIN), |a, (i, p)| if p > a.1 { (i, p) } else { a });
            if best != 0 && best != previous {
                text.push_str(&self.charset[best]);
                sum += f64::from(p);
                kept += 1;
            }
            previous = best;
        }
        let score = if kept == 0 {
            0.0
        } else {
            (sum / kept as f64) as f32
        };
        (text, score.clamp(0.0, 1.0))
    }
}

/// Runs a one-input, one-output session and returns its output's values.
fn run_one(
    session: &Mutex<Session>,
    input: &str,
    output: &str,
    tensor: &Array4<f32>,
    model_id: &str,
    what: &str,
) -> Result<Vec<f32>> {
    let mut session = session.lock().unwrap_or_else(PoisonError::into_inner);
    let value = TensorRef::from_array_view(tensor)
        .map_err(Error::ort(format!("preparing the {what}'s input")))?;
    let outputs = session
        .run(ort::inputs![input => value])
        .map_err(Error::ort(format!("running {model_id}'s {what}")))?;
    let value = outputs
        .get(output)
        .ok_or_else(|| Error::Output(format!("the {what} returned no {output:?}")))?;
    let (_, data) = value
        .try_extract_tensor::<f32>()
        .map_err(Error::ort(format!("reading the {what}'s output")))?;
    Ok(data.to_vec())
}

/// The detector's input size for a `w`×`h` image: the shorter side to
/// [`DET_MIN_SIDE`] (smaller images are enlarged, larger ones kept), the longer side at
/// most [`DET_MAX_SIDE`], each rounded to a multiple of 32 (at least 32).
pub fn det_size(w: u32, h: u32) -> (u32, u32) {
    let (w, h) = (w.max(1) as f64, h.max(1) as f64);
    let mut ratio = if w.min(h) < f64::from(DET_MIN_SIDE) {
        f64::from(DET_MIN_SIDE) / w.min(h)
    } else {
        1.0
    };
    ratio = ratio.min(f64::from(DET_MAX_SIDE) / w.max(h));
    let side = |v: f64| (((v * ratio).floor() / 32.0).round() as u32 * 32).max(32);
    (side(w), side(h))
}

/// `image` as a `[1, 3, H, W]` tensor in BGR order scaled to [-1, 1].
fn bgr_tensor(image: &RgbImage, width: usize) -> Array4<f32> {
    let height = image.height() as usize;
    let mut tensor = Array4::<f32>::zeros((1, 3, height, width));
    if let Some(out) = tensor.as_slice_mut() {
        write_bgr(image, out, width, height);
    }
    tensor
}

/// Writes `image` into `out`, one `[3, height, row]` plane set (BGR, [-1, 1]), from
/// its top left; the rest of each row is left as it is (the zero padding).
fn write_bgr(image: &RgbImage, out: &mut [f32], row: usize, height: usize) {
    let plane = height * row;
    let w = image.width() as usize;
    for (y, line) in image.as_raw().chunks_exact(w * 3).enumerate().take(height) {
        for (x, p) in line.chunks_exact(3).enumerate().take(row) {
            let at = y * row + x;
            out[at] = f32::from(p[2]) / 127.5 - 1.0;
            out[plane + at] = f32::from(p[1]) / 127.5 - 1.0;
            out[2 * plane + at] = f32::from(p[0]) / 127.5 - 1.0;
        }
    }
}

/// Crops resized to `height` keeping their aspect (at most `max_width` wide), in BGR
/// scaled to [-1, 1], padded with zeros on the right to `width`.
fn line_batch(crops: &[&RgbImage], height: u32, width: u32, max_width: u32) -> Array4<f32> {
    let (h, w) = (height as usize, width as usize);
    let mut tensor = Array4::<f32>::zeros((crops.len(), 3, h, w));
    if let Some(out) = tensor.as_slice_mut() {
        for (n, crop) in crops.iter().enumerate() {
            let cw = ((height as f32 * aspect(crop)).ceil() as u32).clamp(1, max_width);
            let resized = image::imageops::resize(*crop, cw, height, FilterType::Triangle);
            write_bgr(&resized, &mut out[n * 3 * h * w..(n + 1) * 3 * h * w], w, h);
        }
    }
    tensor
}

fn aspect(image: &RgbImage) -> f32 {
    image.width() as f32 / image.height().max(1) as f32
}

/// Indices of `crops`, narrowest first, so that each batch pads little.
fn by_aspect(crops: &[RgbImage]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..crops.len()).collect();
    order.sort_by(|&a, &b| aspect(&crops[a]).total_cmp(&aspect(&crops[b])));
    order
}

/// An axis-aligned box in image pixels, corners included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rect {
    x0: u32,
    y0: u32,
    x1: u32,
    y1: u32,
}

impl Rect {
    fn width(&self) -> u32 {
        self.x1 - self.x0
    }
    fn height(&self) -> u32 {
        self.y1 - self.y0
    }
    fn union(&self, o: &Rect) -> Rect {
        Rect {
            x0: self.x0.min(o.x0),
            y0: self.y0.min(o.y0),
            x1: self.x1.max(o.x1),
            y1: self.y1.max(o.y1),
        }
    }
    fn corners(&self) -> [[u32; 2]; 4] {
        [
            [self.x0, self.y0],
            [self.x1, self.y0],
            [self.x1, self.y1],
            [self.x0, self.y1],
        ]
    }
}

/// Merges the boxes of one line that overlap or nearly touch ([`MERGE_OVERLAP`],
/// [`MERGE_GAP`]), one pair at a time, until none do.
fn merge_touching(mut boxes: Vec<Rect>) -> Vec<Rect> {
    'again: loop {
        for i in 0..boxes.len() {
            for j in i + 1..boxes.len() {
                let (a, b) = (boxes[i], boxes[j]);
                let (ha, hb) = (f64::from(a.height()), f64::from(b.height()));
                let overlap_y = f64::from(a.y1.min(b.y1)) - f64::from(a.y0.max(b.y0));
                let gap_x = f64::from(a.x0.max(b.x0)) - f64::from(a.x1.min(b.x1));
                if overlap_y >= MERGE_OVERLAP * ha.min(hb) && gap_x <= MERGE_GAP * ha.max(hb) {
                    boxes[i] = a.union(&b);
                    boxes.remove(j);
                    continue 'again;
                }
            }
        }
        return boxes;
    }
}

/// The part of `image` inside `rect` and a margin around it ([`CROP_PAD_Y`],
/// [`CROP_PAD_X`]), turned a quarter anticlockwise if it is at least 1.5 times as tall
/// as wide (a vertical line of text).
fn crop(image: &RgbImage, rect: &Rect) -> RgbImage {
    let h = f64::from(rect.height());
    let (py, px) = (
        (CROP_PAD_Y * h).round_ties_even() as u32,
        (CROP_PAD_X * h).round_ties_even() as u32,
    );
    let (x0, y0) = (rect.x0.saturating_sub(px), rect.y0.saturating_sub(py));
    let x1 = (rect.x1 + px).min(image.width());
    let y1 = (rect.y1 + py).min(image.height());
    let piece = image::imageops::crop_imm(image, x0, y0, x1 - x0, y1 - y0).to_image();
    if piece.height() as f32 >= 1.5 * piece.width() as f32 {
        image::imageops::rotate270(&piece)
    } else {
        piece
    }
}

/// One connected region of the binarised map: its bounding box in map pixels
/// (inclusive) and its mean probability over that box.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Region {
    x0: usize,
    y0: usize,
    x1: usize,
    y1: usize,
    score: f32,
}

impl Region {
    /// The box grown by DB's unclip distance, as `(x0, y0, x1, y1)` in map coordinates
    /// (edges, not pixel centres).
    fn unclipped(&self) -> (f32, f32, f32, f32) {
        let w = (self.x1 - self.x0 + 1) as f32;
        let h = (self.y1 - self.y0 + 1) as f32;
        let d = w * h * UNCLIP_RATIO / (2.0 * (w + h));
        (
            self.x0 as f32 - d,
            self.y0 as f32 - d,
            (self.x1 + 1) as f32 + d,
            (self.y1 + 1) as f32 + d,
        )
    }
}

/// The text regions of the detector's `w`×`h` probability map: pixels above
/// [`BIN_THRESHOLD`], dilated by a 2×2 square, split into 8-connected regions; each
/// kept if neither side is under [`MIN_SIZE`] and its box's mean probability is at
/// least [`BOX_THRESHOLD`]. At most [`MAX_CANDIDATES`] regions, largest first.
fn regions(map: &[f32], w: usize, h: usize) -> Vec<Region> {
    let on = |x: usize, y: usize| map[y * w + x] > BIN_THRESHOLD;
    // 2×2 dilation anchored at the bottom right, as OpenCV's for an even kernel.
    let mut mask = vec![false; w * h];
    for y in 0..h {
        for x in 0..w {
            mask[y * w + x] = on(x, y)
                || (x > 0 && on(x - 1, y))
                || (y > 0 && on(x, y - 1))
                || (x > 0 && y > 0 && on(x - 1, y - 1));
        }
    }
    let mut seen = vec![false; w * h];
    let mut stack = Vec::new();
    let mut found: Vec<(usize, Region)> = Vec::new();
    for start in 0..w * h {
        if !mask[start] || seen[start] {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let (mut x0, mut y0, mut x1, mut y1, mut count) = (w, h, 0, 0, 0usize);
        while let Some(i) = stack.pop() {
            let (x, y) = (i % w, i / w);
            count += 1;
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
            for ny in y.saturating_sub(1)..=(y + 1).min(h - 1) {
                for nx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                    let j = ny * w + nx;
                    if mask[j] && !seen[j] {
                        seen[j] = true;
                        stack.push(j);
                    }
                }
            }
        }
        if ((x1 - x0 + 1) as f32) < MIN_SIZE || ((y1 - y0 + 1) as f32) < MIN_SIZE {
            continue;
        }
        let mut sum = 0.0f64;
        for y in y0..=y1 {
            sum += map[y * w + x0..=y * w + x1]
                .iter()
                .map(|&p| f64::from(p))
                .sum::<f64>();
        }
        let score = (sum / ((x1 - x0 + 1) * (y1 - y0 + 1)) as f64) as f32;
        if score >= BOX_THRESHOLD {
            found.push((
                count,
                Region {
                    x0,
                    y0,
                    x1,
                    y1,
                    score,
                },
            ));
        }
    }
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    found.truncate(MAX_CANDIDATES);
    found.into_iter().map(|(_, r)| r).collect()
}

/// A read box: where, what, how sure.
type Word = (Rect, String, f32);

/// Gathers read boxes into lines: a box belongs to a line when its vertical middle
/// lies within the line's extent or the line's middle within the box's; lines go top
/// to bottom, boxes in a line left to right, joined by a space. A line's score is its
/// boxes' mean, weighted by their characters.
fn into_lines(mut words: Vec<Word>) -> Vec<Line> {
    words.sort_by_key(|(r, _, _)| (r.y0 + r.y1, r.x0));
    let mut lines: Vec<(Rect, Vec<Word>)> = Vec::new();
    for word in words {
        let mid = (word.0.y0 + word.0.y1) / 2;
        let found = lines.iter_mut().find(|(extent, _)| {
            let line_mid = (extent.y0 + extent.y1) / 2;
            (extent.y0..=extent.y1).contains(&mid) || (word.0.y0..=word.0.y1).contains(&line_mid)
        });
        match found {
            Some((extent, members)) => {
                *extent = extent.union(&word.0);
                members.push(word);
            }
            None => lines.push((word.0, vec![word])),
        }
    }
    lines.sort_by_key(|(extent, _)| (extent.y0 + extent.y1, extent.x0));
    lines
        .into_iter()
        .map(|(extent, mut members)| {
            members.sort_by_key(|(r, _, _)| r.x0);
            let chars: usize = members.iter().map(|(_, t, _)| t.chars().count()).sum();
            let score = members
                .iter()
                .map(|(_, t, s)| *s * t.chars().count() as f32)
                .sum::<f32>()
                / chars.max(1) as f32;
            Line {
                text: members
                    .iter()
                    .map(|(_, t, _)| t.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
                score: score.clamp(0.0, 1.0),
                corners: extent.corners(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensors_are_bgr_planes_scaled_to_plus_minus_one_and_padded() {
        let mut image = RgbImage::new(2, 1);
        image.put_pixel(0, 0, image::Rgb([255, 0, 51]));
        image.put_pixel(1, 0, image::Rgb([0, 255, 102]));
        let t = bgr_tensor(&image, 2);
        assert_eq!(t.shape(), [1, 3, 1, 2]);
        // Blue first: 51 -> -0.6, then green, then red.
        assert!((t[(0, 0, 0, 0)] + 0.6).abs() < 1e-6);
        assert_eq!(t[(0, 1, 0, 1)], 1.0);
        assert_eq!(t[(0, 2, 0, 0)], 1.0);
        assert_eq!(t[(0, 2, 0, 1)], -1.0);
        // A crop narrower than the batch is padded with zeros on the right.
        let b = line_batch(&[&image], 1, 4, 4);
        assert_eq!(b.shape(), [1, 3, 1, 4]);
        assert_eq!(b[(0, 0, 0, 3)], 0.0);
    }

    #[test]
    fn the_detector_input_is_a_multiple_of_32_with_the_short_side_at_736() {
        assert_eq!(det_size(200, 100), (1472, 736));
        assert_eq!(det_size(1000, 800), (992, 800));
        // A long strip stops at the longer side's bound.
        let (w, h) = det_size(4000, 100);
        assert_eq!(w, 2048);
        assert_eq!(h % 32, 0);
        assert!(h >= 32);
        assert_eq!(det_size(1, 1), (736, 736));
    }

    #[test]
    fn regions_are_connected_dilated_and_scored() {
        let (w, h) = (20, 10);
        let mut map = vec![0.0f32; w * h];
        // Two blobs: a confident 6×4 one and a faint 4×4 one (above the pixel
        // threshold, below the box threshold), and a 1-pixel speck.
        for y in 2..6 {
            for x in 1..7 {
                map[y * w + x] = 0.9;
            }
            for x in 12..16 {
                map[y * w + x] = 0.35;
            }
        }
        map[9 * w + 19] = 0.99;
        let found = regions(&map, w, h);
        assert_eq!(found.len(), 1, "{found:?}");
        let r = found[0];
        // Dilation grows the blob by one pixel to the right and down.
        assert_eq!((r.x0, r.y0, r.x1, r.y1), (1, 2, 7, 6));
        assert!(r.score > 0.5 && r.score < 0.9, "{}", r.score);
        let (x0, y0, x1, y1) = r.unclipped();
        assert!(x0 < 1.0 && y0 < 2.0 && x1 > 8.0 && y1 > 7.0);
    }

    fn word(x0: u32, y0: u32, x1: u32, y1: u32, text: &str) -> Word {
        (Rect { x0, y0, x1, y1 }, text.into(), 0.9)
    }

    #[test]
    fn boxes_gather_into_lines_top_to_bottom_left_to_right() {
        let lines = into_lines(vec![
            word(120, 52, 200, 80, "line"),
            word(10, 8, 90, 30, "Hello"),
            word(10, 50, 110, 82, "Second"),
            word(100, 10, 180, 32, "world"),
        ]);
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["Hello world", "Second line"]);
        assert_eq!(lines[0].corners[0], [10, 8]);
        assert_eq!(lines[0].corners[2], [180, 32]);
    }

    #[test]
    fn crops_have_a_margin_and_much_taller_than_wide_ones_are_turned() {
        let image = RgbImage::new(100, 100);
        // 40 high: 6 pixels above and below, 2 to either side (cut at the edge).
        let tall = crop(
            &image,
            &Rect {
                x0: 0,
                y0: 10,
                x1: 10,
                y1: 50,
            },
        );
        assert_eq!(tall.dimensions(), (52, 12));
        // 10 high: 1.5 and 0.5 round half to even, to 2 and 0.
        let wide = crop(
            &image,
            &Rect {
                x0: 20,
                y0: 20,
                x1: 60,
                y1: 30,
            },
        );
        assert_eq!(wide.dimensions(), (40, 14));
    }

    #[test]
    fn boxes_of_one_line_that_touch_are_merged_and_others_kept() {
        let r = |x0, y0, x1, y1| Rect { x0, y0, x1, y1 };
        let merged = merge_touching(vec![
            r(10, 10, 100, 40),
            r(95, 12, 200, 38),  // overlaps the first: one line
            r(300, 10, 400, 40), // far to the right: a column of its own
            r(10, 60, 100, 90),  // the next line
        ]);
        assert_eq!(
            merged,
            [r(10, 10, 200, 40), r(300, 10, 400, 40), r(10, 60, 100, 90)]
        );
    }
}
