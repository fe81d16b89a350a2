//! MIME types of outputs: guessed from a blob's bytes (blobs are stored without one),
//! and the file extension each is saved under.

/// The MIME type of a blob, guessed from its first bytes.
pub fn sniff(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        "image/jpeg"
    } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WAVE" {
        "audio/wav"
    } else if bytes.first().is_some_and(|b| *b == b'{' || *b == b'[')
        && serde_json::from_slice::<serde_json::Value>(bytes).is_ok()
    {
        "application/json"
    } else if std::str::from_utf8(bytes).is_ok() {
        "text/plain; charset=utf-8"
    } else {
        "application/octet-stream"
    }
}

/// The file extension for an output's MIME type.
pub fn extension(mime: &str) -> &'static str {
    match mime {
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "application/json" => "json",
        "audio/wav" => "wav",
        "audio/pcm" => "pcm",
        m if m.starts_with("text/") => "txt",
        _ => "bin",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffed_types_have_their_extensions() {
        assert_eq!(extension(sniff(b"\x89PNG\r\n\x1a\nxxxx")), "png");
        assert_eq!(extension(sniff(&[0xff, 0xd8, 0xff, 0])), "jpg");
        assert_eq!(extension(sniff(b"{\"a\":1}")), "json");
        assert_eq!(extension(sniff(b"hello")), "txt");
        assert_eq!(extension(sniff(b"RIFF\x24\0\0\0WAVEfmt ")), "wav");
        assert_eq!(extension("audio/pcm"), "pcm");
        assert_eq!(extension(sniff(&[0, 159, 146, 150])), "bin");
    }
}
