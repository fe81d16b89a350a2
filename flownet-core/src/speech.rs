//! Text to speech: what a speech task's prompt (or input blob) must be. The output is
//! audio (`audio/wav`, or raw 16-bit PCM where asked); the task is priced per task.

use crate::{Error, Result};

/// Most characters one speech task reads aloud.
pub const MAX_TEXT_CHARS: usize = 4000;

/// The text a speech task reads: the prompt (or input) with runs of whitespace made
/// one space and the ends trimmed; empty or longer than [`MAX_TEXT_CHARS`] is refused.
pub fn text_of(source: &str) -> Result<String> {
    let text = source.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return Err(Error::InvalidInput("the text to speak is empty".into()));
    }
    let chars = text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(Error::InvalidInput(format!(
            "the text to speak is {chars} characters; one task reads at most {MAX_TEXT_CHARS}"
        )));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_is_collapsed_and_bounds_are_kept() {
        assert_eq!(text_of("  Hello,\n\tworld.  ").unwrap(), "Hello, world.");
        assert!(text_of(" \n ").unwrap_err().to_string().contains("empty"));
        let long = "a".repeat(MAX_TEXT_CHARS + 1);
        assert!(text_of(&long).unwrap_err().to_string().contains("at most"));
        assert!(text_of(&"é".repeat(MAX_TEXT_CHARS)).is_ok());
    }
}
