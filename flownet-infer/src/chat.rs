//! The runtime-free half of text generation: how a task's prompt becomes a
//! conversation, how its params become sampling settings, and how generated token bytes
//! become whole-character text chunks with stop strings cut out. [`crate::gguf`] runs
//! the model between these.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::{Error, Result, params};

/// The roles a message may have. Chat templates of the llama family know these three.
pub const ROLES: [&str; 3] = ["system", "user", "assistant"];

/// At most this many stop strings, as OpenAI allows.
pub const MAX_STOP: usize = 4;

/// Repetition, frequency and presence penalties look back over this many generated
/// tokens.
pub const PENALTY_WINDOW: i32 = 64;

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub role: String,
    pub content: String,
}

/// The conversation a prompt stands for: a JSON object `{"messages": [{"role",
/// "content"}, ...]}` is that conversation; any other prompt is one user message.
pub fn conversation(prompt: &str) -> Result<Vec<Message>> {
    let invalid = |m: String| Err(Error::InvalidInput(m));
    let object = match serde_json::from_str::<Value>(prompt) {
        Ok(Value::Object(object)) if object.contains_key("messages") => object,
        _ => {
            if prompt.trim().is_empty() {
                return invalid("the prompt is empty: send a message".into());
            }
            return Ok(vec![Message {
                role: "user".into(),
                content: prompt.to_owned(),
            }]);
        }
    };
    let Some(Value::Array(items)) = object.get("messages") else {
        return invalid(
            r#"the prompt's "messages" must be an array of {"role", "content"}"#.into(),
        );
    };
    if items.is_empty() {
        return invalid(r#"the prompt's "messages" is empty: send at least one message"#.into());
    }
    let mut messages = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let (Some(role), Some(content)) = (
            item.get("role").and_then(Value::as_str),
            item.get("content").and_then(Value::as_str),
        ) else {
            return invalid(format!(
                "messages[{i}] must be an object with string \"role\" and \"content\", got {item}"
            ));
        };
        if !ROLES.contains(&role) {
            return invalid(format!(
                "messages[{i}] has unknown role {role:?}: use one of {ROLES:?}"
            ));
        }
        if content.contains('\0') {
            return invalid(format!("messages[{i}] contains a NUL character"));
        }
        messages.push(Message {
            role: role.into(),
            content: content.into(),
        });
    }
    if messages.iter().all(|m| m.content.trim().is_empty()) {
        return invalid("every message is empty: send some text".into());
    }
    Ok(messages)
}

/// How tokens are chosen and when generation stops.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    pub max_tokens: u32,
    /// 0 picks the most likely token.
    pub temperature: f32,
    pub top_p: f32,
    /// 0 disables it.
    pub top_k: i32,
    pub repeat_penalty: f32,
    pub frequency_penalty: f32,
    pub presence_penalty: f32,
    /// The 64-bit seed asked for or derived from the prompt.
    pub seed: u64,
    pub stop: Vec<String>,
}

impl Sampling {
    /// The settings for a request: each key of `params` that is set, else the
    /// manifest's `defaults`, else a built-in default. `context` bounds `max_tokens`.
    pub fn from_params(
        params: &Map<String, Value>,
        defaults: &Value,
        prompt: &str,
        context: u32,
    ) -> Result<Self> {
        let mut merged = defaults.as_object().cloned().unwrap_or_default();
        for (key, value) in params {
            if !value.is_null() {
                merged.insert(key.clone(), value.clone());
            }
        }
        let p = &merged;
        let max_tokens = params::uint(p, "max_tokens", 1..=u64::from(context))?
            .unwrap_or(u64::from(context.min(256)));
        let f = |key, range, default: f64| -> Result<f32> {
            Ok(params::float(p, key, range)?.unwrap_or(default) as f32)
        };
        Ok(Self {
            max_tokens: max_tokens as u32,
            temperature: f("temperature", 0.0..=2.0, 0.2)?,
            top_p: f("top_p", 0.0..=1.0, 1.0)?,
            top_k: params::uint(p, "top_k", 0..=1_000_000)?.unwrap_or(0) as i32,
            repeat_penalty: f("repeat_penalty", 0.0..=10.0, 1.0)?.max(f32::MIN_POSITIVE),
            frequency_penalty: f("frequency_penalty", -2.0..=2.0, 0.0)?,
            presence_penalty: f("presence_penalty", -2.0..=2.0, 0.0)?,
            seed: params::uint(p, "seed", 0..=u64::MAX)?.unwrap_or_else(|| prompt_seed(prompt)),
            stop: params::strings(p, "stop", MAX_STOP)?.unwrap_or_default(),
        })
    }

    /// The seed for llama.cpp's 32-bit generator. `u32::MAX` is llama.cpp's "random
    /// seed", so seeds are taken modulo `u32::MAX` to stay reproducible.
    pub fn seed32(&self) -> u32 {
        (self.seed % u64::from(u32::MAX)) as u32
    }
}

/// The default seed: the first 8 bytes (big-endian) of the prompt's SHA-256, as the
/// terrain model derives its seed, so a task's answer is a function of the task.
pub fn prompt_seed(prompt: &str) -> u64 {
    let digest = Sha256::digest(prompt.as_bytes());
    u64::from_be_bytes(digest[..8].try_into().expect("a SHA-256 has 32 bytes"))
}

/// Turns generated token bytes into text that is safe to show: whole UTF-8 characters
/// only, and nothing that might turn out to be the start of a stop string. Text is held
/// back until it is known not to be part of one; a stop string ends the text before it.
#[derive(Debug, Clone, Default)]
pub struct TextStream {
    stop: Vec<String>,
    /// Bytes of a character whose last bytes have not come yet.
    partial: Vec<u8>,
    /// Decoded text not yet released: a suffix that is a prefix of a stop string.
    held: String,
    stopped: bool,
}

impl TextStream {
    pub fn new(stop: Vec<String>) -> Self {
        Self {
            stop,
            ..Self::default()
        }
    }

    /// Whether a stop string has appeared; nothing more is released after it.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Adds one token's bytes and returns the text now safe to release (often empty).
    pub fn push(&mut self, bytes: &[u8]) -> String {
        if self.stopped {
            return String::new();
        }
        self.partial.extend_from_slice(bytes);
        let mut rest = std::mem::take(&mut self.partial);
        let mut start = 0;
        loop {
            match std::str::from_utf8(&rest[start..]) {
                Ok(s) => {
                    self.held.push_str(s);
                    break;
                }
                Err(e) => {
                    let valid = start + e.valid_up_to();
                    self.held
                        .push_str(std::str::from_utf8(&rest[start..valid]).expect("checked valid"));
                    match e.error_len() {
                        // Bytes that can never be UTF-8 become U+FFFD, as lossy decoding does.
                        Some(n) => {
                            self.held.push(char::REPLACEMENT_CHARACTER);
                            start = valid + n;
                        }
                        // The character's remaining bytes come with a later token.
                        None => {
                            self.partial = rest.split_off(valid);
                            break;
                        }
                    }
                }
            }
        }
        if let Some(at) = self
            .stop
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min()
        {
            self.stopped = true;
            self.partial.clear();
            let out = self.held[..at].to_owned();
            self.held.clear();
            return out;
        }
        let keep = self.longest_stop_prefix_suffix();
        let release = self.held.len() - keep;
        let rest = self.held.split_off(release);
        std::mem::replace(&mut self.held, rest)
    }

    /// Releases whatever is held, at the end of generation: a partial character becomes
    /// U+FFFD.
    pub fn finish(&mut self) -> String {
        if self.stopped {
            return String::new();
        }
        let mut out = std::mem::take(&mut self.held);
        if !self.partial.is_empty() {
            out.push_str(&String::from_utf8_lossy(&std::mem::take(&mut self.partial)));
        }
        out
    }

    /// The length in bytes of the longest suffix of `held` that is a proper prefix of a
    /// stop string, at a character boundary.
    fn longest_stop_prefix_suffix(&self) -> usize {
        let held = &self.held;
        self.stop
            .iter()
            .flat_map(|stop| {
                (1..stop.len().min(held.len() + 1))
                    .rev()
                    .filter(|&n| stop.is_char_boundary(n) && held.ends_with(&stop[..n]))
                    .take(1)
            })
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn plain_prompts_are_one_user_message_and_json_is_a_conversation() {
        assert_eq!(
            conversation("What is the capital of France?").unwrap(),
            [Message {
                role: "user".into(),
                content: "What is the capital of France?".into()
            }]
        );
        // JSON without "messages" is just text.
        assert_eq!(
            conversation(r#"{"a": 1}"#).unwrap()[0].content,
            r#"{"a": 1}"#
        );
        let chat = conversation(
            r#"{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}"#,
        )
        .unwrap();
        assert_eq!(chat.len(), 2);
        assert_eq!(chat[0].role, "system");
    }

    #[test]
    fn bad_conversations_say_what_is_wrong() {
        let err = |p: &str| conversation(p).unwrap_err().to_string();
        assert!(err("").contains("the prompt is empty"));
        assert!(err("  ").contains("the prompt is empty"));
        assert!(err(r#"{"messages": []}"#).contains("is empty"));
        assert!(err(r#"{"messages": "hi"}"#).contains("must be an array"));
        assert!(
            err(r#"{"messages": [{"role": "wizard", "content": "x"}]}"#)
                .contains("unknown role \"wizard\"")
        );
        assert!(
            err(r#"{"messages": [{"role": "user"}]}"#).contains("messages[0] must be an object")
        );
        assert!(
            err(r#"{"messages": [{"role": "user", "content": " "}]}"#)
                .contains("every message is empty")
        );
    }

    #[test]
    fn sampling_merges_params_over_defaults_and_checks_them() {
        let defaults = json!({"max_tokens": 256, "temperature": 0.2, "top_k": 40, "stop": []});
        let params = json!({"max_tokens": 8, "seed": 7, "stop": "\n", "temperature": null});
        let s = Sampling::from_params(params.as_object().unwrap(), &defaults, "p", 8192).unwrap();
        assert_eq!(
            (s.max_tokens, s.temperature, s.top_k, s.seed),
            (8, 0.2, 40, 7)
        );
        assert_eq!(s.stop, ["\n"]);
        let s = Sampling::from_params(&Map::new(), &defaults, "p", 8192).unwrap();
        assert_eq!(s.seed, prompt_seed("p"));
        assert_eq!(s.max_tokens, 256);

        let err = |params: Value| {
            Sampling::from_params(params.as_object().unwrap(), &defaults, "p", 8192)
                .unwrap_err()
                .to_string()
        };
        assert!(
            err(json!({"max_tokens": 0}))
                .contains("params.max_tokens must be an integer from 1 to 8192")
        );
        assert!(err(json!({"max_tokens": 9000})).contains("from 1 to 8192"));
        assert!(err(json!({"temperature": 3})).contains("params.temperature"));
        assert!(err(json!({"stop": ["a", "b", "c", "d", "e"]})).contains("params.stop"));
    }

    #[test]
    fn seeds_stay_clear_of_llama_cpps_random_seed() {
        let s = |seed| Sampling {
            seed,
            ..Sampling::from_params(&Map::new(), &Value::Null, "", 16).unwrap()
        };
        assert_eq!(s(7).seed32(), 7);
        assert_eq!(s(u64::from(u32::MAX)).seed32(), 0);
        assert_ne!(s(u64::MAX).seed32(), u32::MAX);
    }

    fn run(stop: &[&str], pieces: &[&[u8]]) -> (Vec<String>, bool) {
        let mut stream = TextStream::new(stop.iter().map(|s| (*s).to_owned()).collect());
        let mut out: Vec<String> = pieces.iter().map(|p| stream.push(p)).collect();
        out.push(stream.finish());
        (out, stream.stopped())
    }

    #[test]
    fn text_is_released_in_whole_characters() {
        let euro = "€".as_bytes();
        let (out, stopped) = run(&[], &[b"a", &euro[..1], &euro[1..], b"b"]);
        assert_eq!(out, ["a", "", "€", "b", ""]);
        assert!(!stopped);
        // A character cut off at the end, and bytes that are never UTF-8.
        let (out, _) = run(&[], &[b"x", &euro[..2]]);
        assert_eq!(out.concat(), "x\u{FFFD}");
        let (out, _) = run(&[], &[b"a\xffb"]);
        assert_eq!(out.concat(), "a\u{FFFD}b");
    }

    #[test]
    fn stop_strings_are_cut_even_across_tokens() {
        let (out, stopped) = run(&["\n\n"], &[b"Paris.", b"\n", b"\nMore"]);
        assert_eq!(out, ["Paris.", "", "", ""]);
        assert!(stopped);
        // A held prefix that does not become the stop string is released.
        let (out, stopped) = run(&["STOP"], &[b"ST", b"OCK", b" up"]);
        assert_eq!(out, ["", "STOCK", " up", ""]);
        assert!(!stopped);
        // Held text comes out at the end.
        let (out, _) = run(&["STOP"], &[b"a ST"]);
        assert_eq!(out, ["a ", "ST"]);
        // The earliest of several stop strings wins, inside one piece.
        let (out, stopped) = run(&["b", "a"], &[b"xyab"]);
        assert_eq!(out.concat(), "xy");
        assert!(stopped);
        // Nothing after the stop.
        let mut stream = TextStream::new(vec![".".into()]);
        assert_eq!(stream.push(b"a.b"), "a");
        assert_eq!(stream.push(b"c"), "");
        assert_eq!(stream.finish(), "");
    }
}
