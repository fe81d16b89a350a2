//! Reading text in images: the JSON document every OCR node writes.
//!
//! An OCR task's prompt names its input image (`sha256:<hex>`), as an image
//! classifier's does; it is priced per task (one image). The output says what text the
//! image holds, line by line, top to bottom, with where each line is.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The MIME type of an OCR output.
pub const MIME: &str = "application/json";

/// One line of text found in the image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// The line's text; words the detector found apart are joined by one space.
    pub text: String,
    /// The recogniser's confidence, from 0 to 1: the mean probability of the line's
    /// characters.
    pub score: f32,
    /// The line's corners in the input image's pixels, clockwise from the top left:
    /// `[[x, y]; 4]`.
    #[serde(rename = "box")]
    pub corners: [[u32; 2]; 4],
}

/// The output of an OCR task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    pub model: String,
    /// The input image's size in pixels.
    pub width: u32,
    pub height: u32,
    /// Every line's text, top to bottom, one line per `\n`.
    pub text: String,
    pub lines: Vec<Line>,
}

impl Reading {
    /// Builds the document from its lines (`text` is their texts joined by `\n`).
    pub fn new(model: impl Into<String>, width: u32, height: u32, lines: Vec<Line>) -> Self {
        let text = lines
            .iter()
            .map(|l| l.text.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        Self {
            model: model.into(),
            width,
            height,
            text,
            lines,
        }
    }

    /// Parses an OCR output and checks that its parts agree: `text` is the lines
    /// joined, no line is empty or holds a line break, every score is in [0, 1] and
    /// every corner lies inside the image.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let reading: Self = serde_json::from_slice(bytes)
            .map_err(|e| Error::InvalidInput(format!("not an OCR output: {e}")))?;
        let bad = |why: String| Err(Error::InvalidInput(format!("not an OCR output: {why}")));
        for (i, line) in reading.lines.iter().enumerate() {
            if line.text.is_empty() || line.text.contains('\n') {
                return bad(format!("line {i} is empty or holds a line break"));
            }
            if !(0.0..=1.0).contains(&line.score) {
                return bad(format!("line {i} has score {}", line.score));
            }
            if line
                .corners
                .iter()
                .any(|&[x, y]| x > reading.width || y > reading.height)
            {
                return bad(format!(
                    "line {i} lies outside the {}×{} image",
                    reading.width, reading.height
                ));
            }
        }
        let joined = Self::new("", 0, 0, reading.lines.clone()).text;
        if joined != reading.text {
            return bad("`text` is not the lines joined".into());
        }
        Ok(reading)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str, y: u32) -> Line {
        Line {
            text: text.into(),
            score: 0.9,
            corners: [[0, y], [10, y], [10, y + 5], [0, y + 5]],
        }
    }

    #[test]
    fn the_text_is_the_lines_joined_and_parses_back() {
        let r = Reading::new("m", 20, 20, vec![line("Hello world", 0), line("again", 10)]);
        assert_eq!(r.text, "Hello world\nagain");
        let bytes = serde_json::to_vec(&r).unwrap();
        assert!(String::from_utf8_lossy(&bytes).contains("\"box\":[[0,0]"));
        assert_eq!(Reading::from_bytes(&bytes).unwrap(), r);
    }

    #[test]
    fn parts_that_disagree_are_refused() {
        let mut r = Reading::new("m", 20, 20, vec![line("a", 0)]);
        r.text = "b".into();
        let err = Reading::from_bytes(&serde_json::to_vec(&r).unwrap()).unwrap_err();
        assert!(err.to_string().contains("joined"), "{err}");

        let r = Reading::new("m", 5, 5, vec![line("a", 0)]);
        let err = Reading::from_bytes(&serde_json::to_vec(&r).unwrap()).unwrap_err();
        assert!(err.to_string().contains("outside"), "{err}");

        let mut r = Reading::new("m", 20, 20, vec![line("a", 0)]);
        r.lines[0].score = 1.5;
        r.text = "a".into();
        assert!(Reading::from_bytes(&serde_json::to_vec(&r).unwrap()).is_err());
        assert!(Reading::from_bytes(b"[1, 2]").is_err());
    }
}
