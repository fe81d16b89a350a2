//! Image classification with an ImageNet-style classifier: decode, resize, centre crop,
//! normalise, run, softmax, top k.

use std::io::Cursor;

use flownet_core::{InferenceOutput, InferenceRequest};
use image::{ImageReader, Limits, RgbImage, imageops::FilterType};
use ndarray::Array4;
use ort::{session::Session, value::TensorRef};
use serde::Serialize;
use serde_json::json;

use crate::{Error, Result, params};

/// ImageNet's per-channel mean and standard deviation, which the weights were trained with.
const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];
/// How many classes a request gets without `params.top_k`.
pub const DEFAULT_TOP_K: u64 = 5;
/// Decoding stops at this many pixels a side, so a small file cannot claim a huge
/// image and exhaust memory.
const MAX_SIDE: u32 = 16_384;

/// A loaded classifier's fixed parts.
#[derive(Debug, Clone)]
pub(crate) struct Classifier {
    pub(crate) input: String,
    pub(crate) output: String,
    /// The square crop the model takes, in pixels.
    pub(crate) crop: u32,
    pub(crate) labels: Vec<String>,
}

/// One predicted class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    pub index: usize,
    pub label: String,
    pub score: f32,
}

/// The output document; a struct so that `model` comes first, as documented.
#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    labels: &'a [Prediction],
}

impl Classifier {
    pub(crate) fn infer(
        &self,
        model_id: &str,
        session: &mut Session,
        request: &InferenceRequest,
    ) -> Result<InferenceOutput> {
        let top_k = params::uint(&request.params, "top_k", 1..=self.labels.len() as u64)?
            .unwrap_or(DEFAULT_TOP_K.min(self.labels.len() as u64)) as usize;
        let bytes = request.input.as_deref().ok_or_else(|| {
            Error::InvalidInput(format!(
                "model {model_id} needs an input image (PNG or JPEG bytes)"
            ))
        })?;
        let image = decode(bytes)?;
        let (width, height) = image.dimensions();
        let tensor = preprocess(&image, self.crop);

        let input =
            TensorRef::from_array_view(&tensor).map_err(Error::ort("preparing the input image"))?;
        let outputs = session
            .run(ort::inputs![self.input.as_str() => input])
            .map_err(Error::ort(format!("running {model_id}")))?;
        let output = outputs.get(&self.output).ok_or_else(|| {
            Error::Output(format!("{model_id} returned no {:?} output", self.output))
        })?;
        let (_, logits) = output
            .try_extract_tensor::<f32>()
            .map_err(Error::ort(format!("reading output {}", self.output)))?;
        if logits.len() != self.labels.len() {
            return Err(Error::Output(format!(
                "{model_id} returned {} scores for {} labels",
                logits.len(),
                self.labels.len()
            )));
        }

        let labels = top(&softmax(logits), top_k)
            .into_iter()
            .map(|(index, score)| Prediction {
                index,
                label: self.labels[index].clone(),
                score,
            })
            .collect::<Vec<_>>();
        let body = Body {
            model: model_id,
            labels: &labels,
        };
        let bytes = serde_json::to_vec(&body)
            .map_err(|e| Error::Output(format!("encoding the result: {e}")))?;
        let metadata = json!({
            "top_k": top_k,
            "input_width": width,
            "input_height": height,
            "top": labels.first(),
        });
        Ok(InferenceOutput {
            bytes,
            mime: "application/json".into(),
            metadata,
        })
    }
}

/// Checks, from its header alone, that `bytes` is a PNG or JPEG image this pipeline
/// decodes (at most 16,384 pixels a side): what a requester checks before paying.
pub fn check_image(bytes: &[u8]) -> Result<(u32, u32)> {
    let bad = |e: &dyn std::fmt::Display| {
        Error::InvalidInput(format!("the input is not an image this model reads: {e}"))
    };
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| bad(&e))?;
    if reader.format().is_none() {
        return Err(bad(&"not a PNG or JPEG file"));
    }
    let (w, h) = reader.into_dimensions().map_err(|e| bad(&e))?;
    if w > MAX_SIDE || h > MAX_SIDE || w == 0 || h == 0 {
        return Err(bad(&format!("{w}×{h} pixels; at most {MAX_SIDE} a side")));
    }
    Ok((w, h))
}

/// Decodes PNG or JPEG bytes into RGB.
pub(crate) fn decode(bytes: &[u8]) -> Result<RgbImage> {
    let bad = |e: &dyn std::fmt::Display| {
        Error::InvalidInput(format!("cannot decode the input image: {e}"))
    };
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| bad(&e))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    reader.limits(limits);
    if reader.format().is_none() {
        return Err(bad(&"not a PNG or JPEG file"));
    }
    Ok(reader.decode().map_err(|e| bad(&e))?.to_rgb8())
}

/// torchvision's evaluation transform: shorter side to `crop·8/7` (256 for 224) with the
/// longer side scaled in proportion and truncated, bilinear; centre crop; /255; ImageNet
/// normalisation; NCHW with a batch of one.
pub(crate) fn preprocess(image: &RgbImage, crop: u32) -> Array4<f32> {
    let resize = crop * 8 / 7;
    let (w, h) = image.dimensions();
    let (nw, nh) = if w <= h {
        (
            resize,
            (u64::from(resize) * u64::from(h) / u64::from(w)) as u32,
        )
    } else {
        (
            (u64::from(resize) * u64::from(w) / u64::from(h)) as u32,
            resize,
        )
    };
    // `Triangle` is bilinear with a support that widens when shrinking, i.e. antialiased
    // like PIL's bilinear resize, which the accuracy figures were measured with.
    let resized = image::imageops::resize(image, nw.max(crop), nh.max(crop), FilterType::Triangle);
    let (nw, nh) = resized.dimensions();
    // torchvision rounds the crop offset half to even; (n - crop) / 2 in f64 then
    // `round_ties_even` is the same.
    let left = (f64::from(nw - crop) / 2.0).round_ties_even() as u32;
    let top = (f64::from(nh - crop) / 2.0).round_ties_even() as u32;
    let side = crop as usize;
    Array4::from_shape_fn((1, 3, side, side), |(_, c, y, x)| {
        let pixel = resized.get_pixel(left + x as u32, top + y as u32);
        (f32::from(pixel[c]) / 255.0 - MEAN[c]) / STD[c]
    })
}

/// Probabilities from logits, computed in f64 after subtracting the largest logit so
/// that nothing overflows.
pub(crate) fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f64> = logits.iter().map(|&l| f64::from(l - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| (e / sum) as f32).collect()
}

/// The `k` highest scores with their indices, highest first; ties go to the lower index.
pub(crate) fn top(scores: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut ranked: Vec<(usize, f32)> = scores.iter().copied().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(k);
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let p = softmax(&[1.0, 2.0, 3.0, 10.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p[3] > 0.998 && p[0] < p[1] && p[1] < p[2] && p[2] < p[3]);
        // Large logits do not overflow.
        assert_eq!(softmax(&[1000.0, 0.0]), vec![1.0, 0.0]);
        let uniform = softmax(&[0.5; 4]);
        assert!(uniform.iter().all(|&x| (x - 0.25).abs() < 1e-7));
    }

    #[test]
    fn top_k_is_sorted_with_stable_ties() {
        assert_eq!(
            top(&[0.1, 0.4, 0.1, 0.4], 3),
            vec![(1, 0.4), (3, 0.4), (0, 0.1)]
        );
        assert_eq!(top(&[0.1, 0.2], 5).len(), 2);
    }

    #[test]
    fn preprocess_crops_the_centre_and_normalises() {
        // A 300×200 image, white with a black centre: after resizing to 336×224 (crop 196)
        // and cropping, the centre is black and the corners are white.
        let image = RgbImage::from_fn(300, 200, |x, y| {
            let centre = (100..200).contains(&x) && (50..150).contains(&y);
            if centre {
                image::Rgb([0, 0, 0])
            } else {
                image::Rgb([255, 255, 255])
            }
        });
        let t = preprocess(&image, 196);
        assert_eq!(t.shape(), &[1, 3, 196, 196]);
        for c in 0..3 {
            let black = (0.0 - MEAN[c]) / STD[c];
            let white = (1.0 - MEAN[c]) / STD[c];
            assert!((t[[0, c, 98, 98]] - black).abs() < 1e-5);
            assert!((t[[0, c, 0, 0]] - white).abs() < 1e-5);
        }
    }

    #[test]
    fn undecodable_input_is_invalid_input() {
        for bytes in [
            &b""[..],
            b"GIF89a not supported",
            b"\x89PNG\r\n\x1a\n truncated",
        ] {
            let err = decode(bytes).unwrap_err();
            assert!(matches!(err, Error::InvalidInput(_)), "{err}");
        }
    }
}
