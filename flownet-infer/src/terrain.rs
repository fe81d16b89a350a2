//! Text-to-image for the terrain diffusion model: prompt → seed and difficulty → noise →
//! one denoising step → heightmap → coloured, hill-shaded PNG.
//!
//! The model does not understand language. The prompt's SHA-256 picks the noise and a
//! few keywords pick the difficulty, exactly as the manifest's `prompt_mapping` states;
//! the keyword table here and that text must stay identical (an integration test
//! compares them).

use flownet_core::{InferenceOutput, InferenceRequest};
use image::{ExtendedColorType, ImageEncoder, codecs::png::PngEncoder};
use ort::{session::Session, value::TensorRef};
use serde_json::json;

use crate::{Error, Result, params, rng::Xoshiro256};

/// The model's native side length, in samples.
pub const SIZE: usize = 128;
/// The noise level the one-step model denoises from (the package's `sigma_max`).
pub const SIGMA: f32 = 80.0;
/// The tallest relief the model represents, in metres (the package's `height_range`).
const HEIGHT_RANGE: f64 = 22.168_640_136_718_75;
/// The scale of the model's asinh height encoding, in metres.
const ASINH_SCALE: f64 = 0.1;
/// The distance between samples, in metres.
const CELL: f32 = 0.1;

/// The input and output tensor names the pipeline feeds and reads.
pub(crate) const INPUTS: [&str; 3] = ["noisy", "sigma", "difficulty"];
pub(crate) const OUTPUT: &str = "denoised";

/// Difficulty when neither `params.difficulty` nor a keyword sets it.
pub const DEFAULT_DIFFICULTY: u8 = 50;

/// Prompt keywords and the difficulty each gives, lowest first.
pub const KEYWORDS: [(u8, &[&str]); 4] = [
    (
        10,
        &[
            "flat", "plain", "plains", "calm", "gentle", "smooth", "easy",
        ],
    ),
    (40, &["hill", "hills", "hilly", "rolling"]),
    (
        80,
        &[
            "mountain",
            "mountains",
            "mountainous",
            "rugged",
            "alpine",
            "rocky",
            "peak",
            "peaks",
        ],
    ),
    (95, &["extreme", "jagged", "steep", "cliff", "cliffs"]),
];

/// Colour maps `params.colormap` accepts.
pub const COLORMAPS: [&str; 2] = ["terrain", "gray"];

/// The 64-bit seed a prompt stands for (the core's rule, which the gateway also uses
/// to give several images of one prompt other seeds).
pub use flownet_core::crypto::prompt_seed;

/// The difficulty the prompt's keywords give: the highest of any keyword among its
/// words (maximal runs of ASCII letters and digits, compared case-insensitively), or
/// `None` without a keyword.
pub fn keyword_difficulty(prompt: &str) -> Option<u8> {
    prompt
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .filter_map(|word| {
            let word = word.to_ascii_lowercase();
            KEYWORDS
                .iter()
                .find(|(_, words)| words.contains(&word.as_str()))
                .map(|(d, _)| *d)
        })
        .max()
}

/// Where the difficulty came from, reported in the output's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DifficultySource {
    Params,
    Keyword,
    Default,
}

/// The resolved inputs of one generation.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Settings {
    seed: u64,
    difficulty: u8,
    difficulty_source: DifficultySource,
    colormap: &'static str,
}

impl Settings {
    fn from_request(request: &InferenceRequest) -> Result<Self> {
        let p = &request.params;
        let seed =
            params::uint(p, "seed", 0..=u64::MAX)?.unwrap_or_else(|| prompt_seed(&request.prompt));
        let (difficulty, difficulty_source) = match params::uint(p, "difficulty", 1..=100)? {
            Some(d) => (d as u8, DifficultySource::Params),
            None => match keyword_difficulty(&request.prompt) {
                Some(d) => (d, DifficultySource::Keyword),
                None => (DEFAULT_DIFFICULTY, DifficultySource::Default),
            },
        };
        let colormap = params::choice(p, "colormap", &COLORMAPS)?.unwrap_or(COLORMAPS[0]);
        Ok(Self {
            seed,
            difficulty,
            difficulty_source,
            colormap,
        })
    }
}

/// The model's `noisy` input for a seed: SIZE×SIZE standard normal samples times SIGMA.
pub fn noise(seed: u64) -> Vec<f32> {
    let mut samples = vec![0.0; SIZE * SIZE];
    Xoshiro256::new(seed).fill_standard_normal(&mut samples);
    samples.iter_mut().for_each(|x| *x *= SIGMA);
    samples
}

/// Runs the model for `request`, see the module documentation.
pub(crate) fn infer(session: &mut Session, request: &InferenceRequest) -> Result<InferenceOutput> {
    let settings = Settings::from_request(request)?;
    let noisy = noise(settings.seed);
    // The package's conditioning: difficulty d in 1..=100 becomes (d - 1) / 99.
    let label = [f32::from(settings.difficulty - 1) / 99.0];
    let sigma = [SIGMA];
    let inputs = ort::inputs![
        INPUTS[0] => tensor(INPUTS[0], [1, 1, SIZE, SIZE], &noisy)?,
        INPUTS[1] => tensor(INPUTS[1], [1], &sigma)?,
        INPUTS[2] => tensor(INPUTS[2], [1], &label)?,
    ];
    let outputs = session
        .run(inputs)
        .map_err(Error::ort("running the terrain model"))?;
    let output = outputs
        .get(OUTPUT)
        .ok_or_else(|| Error::Output(format!("the terrain model returned no {OUTPUT:?} output")))?;
    let (shape, values) = output
        .try_extract_tensor::<f32>()
        .map_err(Error::ort(format!("reading output {OUTPUT}")))?;
    if values.len() != SIZE * SIZE {
        return Err(Error::Output(format!(
            "the terrain model returned shape {shape:?}, expected [1, 1, {SIZE}, {SIZE}]"
        )));
    }
    if values.iter().any(|v| !v.is_finite()) {
        return Err(Error::Output(
            "the terrain model returned non-finite heights".into(),
        ));
    }

    let heights = heights_from_model(values);
    let (min, max) = min_max(&heights);
    let png = render_png(&heights, SIZE, settings.colormap)?;
    let metadata = json!({
        "seed": settings.seed,
        "difficulty": settings.difficulty,
        "difficulty_source": match settings.difficulty_source {
            DifficultySource::Params => "params",
            DifficultySource::Keyword => "keyword",
            DifficultySource::Default => "default",
        },
        "colormap": settings.colormap,
        "width": SIZE,
        "height": SIZE,
        // Metres, before the map is shifted to start at 0 for rendering.
        "height_min": round4(min),
        "height_max": round4(max),
    });
    Ok(InferenceOutput {
        bytes: png,
        mime: "image/png".into(),
        metadata,
    })
}

fn tensor<'a, const N: usize>(
    name: &str,
    shape: [usize; N],
    data: &'a [f32],
) -> Result<TensorRef<'a, f32>> {
    TensorRef::from_array_view((shape, data)).map_err(Error::ort(format!("preparing input {name}")))
}

/// Decodes the model's output (asinh-encoded heights in [-1, 1]) into metres, as the
/// package's `_from_model_space` does.
pub fn heights_from_model(values: &[f32]) -> Vec<f32> {
    let normalizer = (HEIGHT_RANGE / ASINH_SCALE).asinh();
    values
        .iter()
        .map(|&v| {
            let unit = ((f64::from(v) + 1.0) * 0.5).clamp(0.0, 1.0);
            (ASINH_SCALE * (unit * normalizer).sinh()).clamp(0.0, HEIGHT_RANGE) as f32
        })
        .collect()
}

fn min_max(values: &[f32]) -> (f32, f32) {
    values
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

fn round4(x: f32) -> f64 {
    (f64::from(x) * 1e4).round() / 1e4
}

/// Renders a square heightmap (metres, row-major) as a PNG: `terrain` colours the heights
/// from the map's lowest to its highest point and shades them as if lit from the
/// north-west; `gray` writes the normalised heights as 8-bit grey.
pub fn render_png(heights: &[f32], side: usize, colormap: &str) -> Result<Vec<u8>> {
    let (min, max) = min_max(heights);
    let span = max - min;
    // A perfectly flat map has no range to normalise by: draw it as lowest ground.
    let normalized: Vec<f32> = heights
        .iter()
        .map(|&h| if span > 0.0 { (h - min) / span } else { 0.0 })
        .collect();
    let (pixels, color) = if colormap == "gray" {
        let pixels = normalized
            .iter()
            .map(|&t| (t * 255.0).round() as u8)
            .collect();
        (pixels, ExtendedColorType::L8)
    } else {
        let shade = hillshade(heights, side, CELL);
        let mut pixels = Vec::with_capacity(side * side * 3);
        for (&t, &s) in normalized.iter().zip(&shade) {
            pixels.extend(
                terrain_color(t).map(|c| (f32::from(c) * s).round().clamp(0.0, 255.0) as u8),
            );
        }
        (pixels, ExtendedColorType::Rgb8)
    };
    let side = u32::try_from(side)
        .map_err(|_| Error::Output(format!("image side {side} is too large")))?;
    let mut png = Vec::new();
    PngEncoder::new(&mut png)
        .write_image(&pixels, side, side, color)
        .map_err(|e| Error::Output(format!("encoding the PNG: {e}")))?;
    Ok(png)
}

/// Matplotlib's `terrain` colour map: (position, RGB) stops, linearly interpolated.
const TERRAIN_STOPS: [(f32, [f32; 3]); 6] = [
    (0.00, [0.2, 0.2, 0.6]),
    (0.15, [0.0, 0.6, 1.0]),
    (0.25, [0.0, 0.8, 0.4]),
    (0.50, [1.0, 1.0, 0.6]),
    (0.75, [0.5, 0.36, 0.33]),
    (1.00, [1.0, 1.0, 1.0]),
];

/// The `terrain` colour of a normalised height in [0, 1]: deep blue, light blue, green,
/// sand, brown, white.
pub fn terrain_color(t: f32) -> [u8; 3] {
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
    let upper = TERRAIN_STOPS
        .iter()
        .position(|(p, _)| *p >= t)
        .unwrap_or(TERRAIN_STOPS.len() - 1)
        .max(1);
    let (p0, c0) = TERRAIN_STOPS[upper - 1];
    let (p1, c1) = TERRAIN_STOPS[upper];
    let f = (t - p0) / (p1 - p0);
    std::array::from_fn(|i| ((c0[i] + (c1[i] - c0[i]) * f) * 255.0).round() as u8)
}

/// A brightness factor per sample from a light in the north-west (up and to the left in
/// the image) 45° above the horizon: 1 on level ground, brighter on slopes facing the
/// light, down to 0.55 in full shadow. Uses only arithmetic and square roots, which are
/// exact in IEEE 754, so the factor is the same on every platform.
pub fn hillshade(heights: &[f32], side: usize, cell: f32) -> Vec<f32> {
    // Unit vector towards the light, in (x right, y down, z up).
    const LIGHT: [f32; 3] = [-0.5, -0.5, std::f32::consts::FRAC_1_SQRT_2];
    const AMBIENT: f32 = 0.55;
    let at = |x: usize, y: usize| heights[y * side + x];
    let mut shade = Vec::with_capacity(side * side);
    for y in 0..side {
        for x in 0..side {
            // Central differences, one-sided at the borders.
            let (x0, x1) = (x.saturating_sub(1), (x + 1).min(side - 1));
            let (y0, y1) = (y.saturating_sub(1), (y + 1).min(side - 1));
            let dzdx = (at(x1, y) - at(x0, y)) / (cell * (x1 - x0).max(1) as f32);
            let dzdy = (at(x, y1) - at(x, y0)) / (cell * (y1 - y0).max(1) as f32);
            // The surface normal is (-dz/dx, -dz/dy, 1), normalised.
            let norm = (dzdx * dzdx + dzdy * dzdy + 1.0).sqrt();
            let lit = ((-dzdx * LIGHT[0] - dzdy * LIGHT[1] + LIGHT[2]) / norm).max(0.0);
            // Rescaled so level ground (lit = LIGHT[2]) keeps the colour map's colour.
            shade.push(AMBIENT + (1.0 - AMBIENT) * lit / LIGHT[2]);
        }
    }
    shade
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_pick_the_highest_difficulty() {
        assert_eq!(keyword_difficulty("a calm, flat plain"), Some(10));
        assert_eq!(keyword_difficulty("Rolling HILLS"), Some(40));
        assert_eq!(
            keyword_difficulty("alpine peaks near gentle meadows"),
            Some(80)
        );
        assert_eq!(
            keyword_difficulty("smooth hills with JAGGED cliffs"),
            Some(95)
        );
        assert_eq!(keyword_difficulty("mountains,cliffs"), Some(95));
        // Whole words only, and only ASCII letters and digits make words.
        assert_eq!(keyword_difficulty("flatten the hillside"), None);
        assert_eq!(keyword_difficulty("mountain-high"), Some(80));
        assert_eq!(keyword_difficulty("a desert"), None);
        assert_eq!(keyword_difficulty(""), None);
    }

    #[test]
    fn the_keyword_lists_do_not_overlap() {
        let mut all: Vec<&str> = KEYWORDS
            .iter()
            .flat_map(|(_, w)| w.iter().copied())
            .collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n);
        assert!(KEYWORDS.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn settings_come_from_params_then_prompt() {
        let request = |prompt: &str, params: serde_json::Value| InferenceRequest {
            model_id: "terrain".into(),
            prompt: prompt.into(),
            params: params.as_object().unwrap().clone(),
            input: None,
        };
        let s = Settings::from_request(&request("steep hills", json!({}))).unwrap();
        assert_eq!(s.seed, prompt_seed("steep hills"));
        assert_eq!(
            (s.difficulty, s.difficulty_source),
            (95, DifficultySource::Keyword)
        );
        assert_eq!(s.colormap, "terrain");
        let s = Settings::from_request(&request(
            "steep",
            json!({"seed": 3, "difficulty": 7, "colormap": "gray"}),
        ))
        .unwrap();
        assert_eq!((s.seed, s.difficulty, s.colormap), (3, 7, "gray"));
        let s = Settings::from_request(&request("desert", json!({"seed": null, "other": [1]})))
            .unwrap();
        assert_eq!(
            (s.difficulty, s.difficulty_source),
            (DEFAULT_DIFFICULTY, DifficultySource::Default)
        );
        for bad in [
            json!({"difficulty": 0}),
            json!({"difficulty": 101}),
            json!({"seed": -1}),
            json!({"seed": "1"}),
        ] {
            let err = Settings::from_request(&request("x", bad)).unwrap_err();
            assert!(matches!(err, Error::InvalidInput(_)), "{err}");
        }
    }

    #[test]
    fn seed_is_the_digest_prefix() {
        // SHA-256("") = e3b0c44298fc1c14…
        assert_eq!(prompt_seed(""), 0xE3B0_C442_98FC_1C14);
        assert_ne!(prompt_seed("a"), prompt_seed("b"));
    }

    #[test]
    fn noise_is_deterministic_and_scaled() {
        let a = noise(1);
        assert_eq!(a.len(), SIZE * SIZE);
        assert_eq!(a, noise(1));
        assert_ne!(a, noise(2));
        let std = (a.iter().map(|x| x * x).sum::<f32>() / a.len() as f32).sqrt();
        assert!((std - SIGMA).abs() < 2.0, "std {std}");
    }

    #[test]
    fn heights_decode_like_the_package() {
        let h = heights_from_model(&[-1.0, 0.0, 1.0, 2.0]);
        assert_eq!(h[0], 0.0);
        assert!((h[1] - 1.050_449).abs() < 1e-5, "{}", h[1]); // 0.1·sinh(asinh(221.69)/2)
        assert_eq!(f64::from(h[2]), HEIGHT_RANGE as f32 as f64);
        assert_eq!(h[3], h[2]);
    }

    #[test]
    fn terrain_colors_follow_the_stops() {
        assert_eq!(terrain_color(0.0), [51, 51, 153]);
        assert_eq!(terrain_color(0.25), [0, 204, 102]);
        assert_eq!(terrain_color(1.0), [255, 255, 255]);
        assert_eq!(terrain_color(-3.0), terrain_color(0.0));
        assert_eq!(terrain_color(f32::NAN), terrain_color(0.0));
        // A fifth of the way from green (0.25) to sand (0.5).
        assert_eq!(terrain_color(0.3), [51, 214, 112]);
        // Low ground is blue, high ground is not.
        let [r, g, b] = terrain_color(0.05);
        assert!(b > r && b > g);
        let [r, _, b] = terrain_color(0.7);
        assert!(r > b);
    }

    #[test]
    fn hillshade_lights_slopes_facing_north_west() {
        let side = 8;
        let flat = vec![1.0; side * side];
        assert!(
            hillshade(&flat, side, CELL)
                .iter()
                .all(|&s| (s - 1.0).abs() < 1e-6)
        );
        // Rising to the east, a slope faces west, towards the light, and is brighter than
        // level ground; falling to the east, it is darker. Likewise north and south.
        let rising: Vec<f32> = (0..side * side).map(|i| (i % side) as f32 * 0.05).collect();
        let falling: Vec<f32> = rising.iter().map(|h| 1.0 - h).collect();
        let mid = side * side / 2 + side / 2;
        assert!(hillshade(&rising, side, CELL)[mid] > 1.0);
        assert!(hillshade(&falling, side, CELL)[mid] < 1.0);
        let rising_south: Vec<f32> = (0..side * side).map(|i| (i / side) as f32 * 0.05).collect();
        assert!(hillshade(&rising_south, side, CELL)[mid] > 1.0);
    }

    #[test]
    fn renders_a_png_of_the_right_size() {
        let heights: Vec<f32> = (0..SIZE * SIZE).map(|i| (i % SIZE) as f32 * 0.1).collect();
        for colormap in COLORMAPS {
            let png = render_png(&heights, SIZE, colormap).unwrap();
            let img = image::load_from_memory(&png).unwrap();
            assert_eq!((img.width(), img.height()), (SIZE as u32, SIZE as u32));
        }
        // A flat map renders too.
        render_png(&[2.0; 16], 4, "terrain").unwrap();
    }
}
