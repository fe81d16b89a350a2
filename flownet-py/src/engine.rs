//! The core's `Engine` port for a node's models: Python functions, called on a blocking
//! thread with the GIL taken only for the call, and ONNX models run by flownet-infer.

use std::{collections::BTreeMap, sync::Arc, time::Instant};

use async_trait::async_trait;
use flownet_core::{
    Engine, Error, FinishReason, Generation, GenerationFold, InferenceOutput, InferenceRequest,
    ModelInfo, Result, StreamChunk, TaskKind, Usage,
};
use flownet_infer::OnnxEngine;
use pyo3::{
    prelude::*,
    types::{PyByteArray, PyBytes, PyDict, PyList, PyMemoryView, PyString},
};

use crate::convert::json_to_py;

/// A model served by a Python function `(prompt, params) -> output`.
#[derive(Debug)]
pub struct PythonModel {
    pub info: ModelInfo,
    pub func: Py<PyAny>,
    /// The MIME type the decorator named for `bytes` results; sniffed otherwise.
    pub explicit_mime: Option<String>,
    /// Priced per token: the answer must be a generation (a returned `str` is one
    /// piece).
    pub metered: bool,
}

/// A node's models: Python functions by id, then ONNX engines (one per models dir).
#[derive(Debug, Default)]
pub struct NodeEngine {
    python: BTreeMap<String, Arc<PythonModel>>,
    onnx: Vec<OnnxEngine>,
}

impl NodeEngine {
    pub fn new(python: Vec<PythonModel>, onnx: Vec<OnnxEngine>) -> Self {
        Self {
            python: python
                .into_iter()
                .map(|m| (m.info.id.clone(), Arc::new(m)))
                .collect(),
            onnx,
        }
    }

    /// Runs one request on the calling thread (which must not hold the GIL).
    pub fn infer_blocking(&self, request: InferenceRequest) -> Result<InferenceOutput> {
        if let Some(model) = self.python.get(&request.model_id) {
            return call_python(model, &request);
        }
        match self
            .onnx
            .iter()
            .find(|e| e.manifest(&request.model_id).is_some())
        {
            Some(engine) => Ok(engine.infer_blocking(&request)?),
            None => Err(unknown(&request.model_id)),
        }
    }
}

fn unknown(model: &str) -> Error {
    Error::NotFound(format!("model {model:?} is not served by this node"))
}

#[async_trait]
impl Engine for NodeEngine {
    fn models(&self) -> Vec<ModelInfo> {
        self.python
            .values()
            .map(|m| m.info.clone())
            .chain(self.onnx.iter().flat_map(|e| e.models()))
            .collect()
    }

    async fn infer(&self, request: InferenceRequest) -> Result<InferenceOutput> {
        if self.python.contains_key(&request.model_id) {
            // The one path of a Python call; nobody follows the pieces here.
            return self.infer_stream(request, &|_| {}).await;
        }
        match self
            .onnx
            .iter()
            .find(|e| e.manifest(&request.model_id).is_some())
        {
            Some(engine) => engine.infer(request).await,
            None => Err(unknown(&request.model_id)),
        }
    }

    async fn infer_stream(
        &self,
        request: InferenceRequest,
        sink: &(dyn Fn(StreamChunk) + Send + Sync),
    ) -> Result<InferenceOutput> {
        if let Some(model) = self.python.get(&request.model_id).cloned() {
            let id = request.model_id.clone();
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            // Off the async workers: the call holds the GIL and may run for seconds;
            // a generator's pieces come back here.
            let mut job = tokio::task::spawn_blocking(move || {
                call_python_streaming(&model, &request, Some(&tx))
            });
            loop {
                tokio::select! {
                    Some(chunk) = rx.recv() => sink(chunk),
                    done = &mut job => {
                        while let Ok(chunk) = rx.try_recv() {
                            sink(chunk);
                        }
                        return done.unwrap_or_else(|e| {
                            Err(Error::Inference(format!(
                                "the handler of {id} did not finish: {e}"
                            )))
                        });
                    }
                }
            }
        }
        match self
            .onnx
            .iter()
            .find(|e| e.manifest(&request.model_id).is_some())
        {
            Some(engine) => engine.infer_stream(request, sink).await,
            None => Err(unknown(&request.model_id)),
        }
    }
}

/// Calls the model's function with the GIL held and turns what it returns into bytes
/// and a MIME type. A raised exception is logged with its traceback and reported as an
/// inference error (the node worker retries, then leaves the task to expire).
fn call_python(model: &PythonModel, request: &InferenceRequest) -> Result<InferenceOutput> {
    call_python_streaming(model, request, None)
}

/// Where the pieces of a generator handler go as it yields them.
type ChunkTx = tokio::sync::mpsc::UnboundedSender<StreamChunk>;

/// A text-generation handler that returned an iterator (a generator): each piece it
/// yields is one token of the answer, streamed to `tx` and folded into the stored
/// answer by the same [`GenerationFold`]; at most `params.max_tokens` pieces are taken
/// (finish reason `length`), else the answer ends when the iterator does (`stop`).
fn generate(
    out: &Bound<'_, PyAny>,
    request: &InferenceRequest,
    tx: Option<&ChunkTx>,
) -> PyResult<(Vec<u8>, String)> {
    let max = request
        .params
        .get("max_tokens")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(u64::MAX);
    let mut fold = GenerationFold::new();
    let mut push = |chunk: StreamChunk| -> PyResult<()> {
        fold.push(&chunk)
            .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
        if let Some(tx) = tx {
            let _ = tx.send(chunk);
        }
        Ok(())
    };
    let (mut n, mut finish) = (0u64, FinishReason::Stop);
    for piece in out.try_iter()? {
        if n == max {
            finish = FinishReason::Length;
            break;
        }
        let text: String = piece?.extract().map_err(|_| {
            pyo3::exceptions::PyTypeError::new_err(
                "a text-generation handler must yield str pieces",
            )
        })?;
        n += 1;
        if !text.is_empty() {
            push(StreamChunk::Text { text })?;
        }
    }
    push(StreamChunk::Done {
        finish_reason: finish,
        usage: Usage {
            prompt_tokens: 0,
            completion_tokens: n,
        },
    })?;
    let generation = fold
        .finish()
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
    Ok((generation.to_bytes(), Generation::MIME.to_owned()))
}

fn call_python_streaming(
    model: &PythonModel,
    request: &InferenceRequest,
    tx: Option<&ChunkTx>,
) -> Result<InferenceOutput> {
    let id = &model.info.id;
    Python::attach(|py| {
        let started = Instant::now();
        // An embedding function gets the texts (a list of str), however the task
        // carried them (a plain prompt, an {"input": [...]} prompt or an input blob).
        let texts = match model.info.kind {
            TaskKind::Embedding => Some(embedding_texts(request)?),
            _ => None,
        };
        let prompt = match (&texts, &request.input) {
            (Some(texts), _) => PyList::new(py, texts)
                .map_err(|e| Error::Inference(format!("texts for {id}: {e}")))?
                .into_any(),
            (None, Some(image)) => PyBytes::new(py, image).into_any(),
            (None, None) => PyString::new(py, &request.prompt).into_any(),
        };
        let params = json_to_py(py, &serde_json::Value::Object(request.params.clone()))
            .map_err(|e| Error::Inference(format!("params for {id}: {e}")))?;
        let result = model.func.bind(py).call1((prompt, params)).and_then(|out| {
            let is_iterator = model.info.kind == TaskKind::TextGeneration
                && out.hasattr("__next__").unwrap_or(false)
                && !out.is_instance_of::<PyString>()
                && !out.is_instance_of::<PyBytes>();
            if let Some(texts) = &texts {
                embeddings(&out, texts, id, model.metered)
            } else if model.info.kind == TaskKind::Ocr {
                reading(&out, request, id)
            } else if is_iterator {
                generate(&out, request, tx)
            } else if model.metered && out.is_instance_of::<PyString>() {
                let pieces = PyList::new(py, [out])?;
                generate(pieces.as_any(), request, tx)
            } else {
                to_bytes(&out, model.explicit_mime.as_deref())
            }
        });
        match result {
            Ok((bytes, mime)) => Ok(InferenceOutput {
                bytes,
                mime,
                metadata: serde_json::json!({
                    "handler": "python",
                    "python_ms": started.elapsed().as_secs_f64() * 1000.0,
                }),
            }),
            Err(err) => {
                tracing::error!(
                    target: "flownet",
                    "the handler of model {id} raised:\n{}",
                    format_traceback(py, &err)
                );
                // A ValueError (flownet.InvalidInput is one) says the input is bad,
                // which no retry mends: the node declines the task at once.
                let message = format!("the handler of {id} raised {err}");
                if err.is_instance_of::<pyo3::exceptions::PyValueError>(py) {
                    Err(Error::InvalidInput(message))
                } else {
                    Err(Error::Inference(message))
                }
            }
        }
    })
}

/// The texts an embedding task stands for: its input blob (UTF-8) or its prompt, read
/// by `flownet_core::embedding::inputs`.
fn embedding_texts(request: &InferenceRequest) -> Result<Vec<String>> {
    let source = match &request.input {
        Some(bytes) => std::str::from_utf8(bytes).map_err(|_| {
            Error::InvalidInput("the input of an embedding model must be UTF-8 text".into())
        })?,
        None => &request.prompt,
    };
    flownet_core::embedding::inputs(source)
}

/// An embedding function's result as FlowNet's embedding JSON: a list of vectors (one
/// per text, all of one length), or a dict `{"embeddings": [...], "tokens": [...]}`
/// with the tokens each text took. A model priced per 1,000 tokens must say its
/// tokens, since it is paid for them.
fn embeddings(
    out: &Bound<'_, PyAny>,
    texts: &[String],
    id: &str,
    metered: bool,
) -> PyResult<(Vec<u8>, String)> {
    let bad = |why: String| pyo3::exceptions::PyValueError::new_err(why);
    let (vectors, tokens) =
        if out.is_instance_of::<PyDict>() {
            let vectors = out.get_item("embeddings").map_err(|_| {
                bad(format!(
                    "the handler of {id} returned a dict without \"embeddings\""
                ))
            })?;
            let tokens: Option<Vec<u64>> = match out.get_item("tokens") {
                Ok(t) if !t.is_none() => Some(t.extract()?),
                _ => None,
            };
            (vectors.extract::<Vec<Vec<f32>>>()?, tokens)
        } else {
            (out.extract::<Vec<Vec<f32>>>().map_err(|_| {
            bad(format!(
                "the handler of {id} must return a list of vectors (lists of floats), one per \
                 text, or {{\"embeddings\": [...], \"tokens\": [...]}}"
            ))
        })?, None)
        };
    let dimensions = vectors.first().map_or(0, Vec::len);
    if vectors.len() != texts.len()
        || dimensions == 0
        || vectors.iter().any(|v| v.len() != dimensions)
    {
        return Err(bad(format!(
            "the handler of {id} returned {} vectors for {} texts; it must return one non-empty \
             vector per text, all of one length",
            vectors.len(),
            texts.len()
        )));
    }
    let tokens = match tokens {
        Some(t) if t.len() == texts.len() => t,
        Some(t) => {
            return Err(bad(format!(
                "the handler of {id} gave {} token counts for {} texts",
                t.len(),
                texts.len()
            )));
        }
        None if metered => {
            return Err(bad(format!(
                "the handler of {id} is priced per 1,000 tokens: return {{\"embeddings\": [...], \
                 \"tokens\": [...]}} with the tokens each text took"
            )));
        }
        None => vec![0; texts.len()],
    };
    let used: u64 = tokens.iter().sum();
    let body = flownet_core::Embeddings {
        model: id.to_owned(),
        dimensions,
        embeddings: vectors,
        truncated: vec![false; tokens.len()],
        tokens,
        usage: flownet_core::embedding::EmbeddingUsage {
            prompt_tokens: used,
            total_tokens: used,
        },
    };
    Ok((body.to_bytes(), flownet_core::embedding::MIME.to_owned()))
}

/// An OCR function's result as FlowNet's OCR JSON (`flownet_core::ocr::Reading`): the
/// text (a `str`, one line per `\n`), a list of lines (each a `str`, or a dict with
/// `"text"` and optionally `"score"` and `"box"`: four `[x, y]` corners), or a dict
/// with `"lines"` in either form. A line without a box spans the whole image.
fn reading(
    out: &Bound<'_, PyAny>,
    request: &InferenceRequest,
    id: &str,
) -> PyResult<(Vec<u8>, String)> {
    use flownet_core::ocr::{Line, Reading};
    let bad = |why: String| pyo3::exceptions::PyValueError::new_err(why);
    let (width, height) = request
        .input
        .as_deref()
        .map(flownet_infer::check_image)
        .transpose()
        .map_err(|e| bad(e.to_string()))?
        .unwrap_or((0, 0));
    let whole = [[0, 0], [width, 0], [width, height], [0, height]];
    let items: Vec<Bound<'_, PyAny>> = if out.is_instance_of::<PyString>() {
        let text: String = out.extract()?;
        text.lines()
            .map(|l| PyString::new(out.py(), l).into_any())
            .collect()
    } else {
        let list = if out.is_instance_of::<PyDict>() {
            out.get_item("lines").map_err(|_| {
                bad(format!(
                    "the handler of {id} returned a dict without \"lines\""
                ))
            })?
        } else {
            out.clone()
        };
        list.try_iter()
            .map_err(|_| {
                bad(format!(
                    "the handler of {id} must return the text (str), a list of lines, or \
                     {{\"lines\": [...]}}"
                ))
            })?
            .collect::<PyResult<_>>()?
    };
    let mut lines = Vec::new();
    for item in items {
        let (text, score, corners) = if item.is_instance_of::<PyString>() {
            (item.extract::<String>()?, 1.0, whole)
        } else {
            let text: String = item
                .get_item("text")
                .and_then(|t| t.extract())
                .map_err(|_| bad(format!("a line from the handler of {id} has no \"text\"")))?;
            let score = match item.get_item("score") {
                Ok(s) if !s.is_none() => s.extract::<f32>()?,
                _ => 1.0,
            };
            let corners = match item.get_item("box") {
                Ok(b) if !b.is_none() => b.extract::<[[u32; 2]; 4]>()?,
                _ => whole,
            };
            (text, score, corners)
        };
        let text = text.trim().to_owned();
        if !text.is_empty() {
            lines.push(Line {
                text,
                score,
                corners,
            });
        }
    }
    if lines.is_empty() {
        return Err(bad(format!(
            "the handler of {id} found no text in the image"
        )));
    }
    let body = Reading::new(id, width, height, lines);
    let bytes = serde_json::to_vec(&body).map_err(|e| bad(e.to_string()))?;
    // The same checks a requester applies (scores, corners inside the image).
    Reading::from_bytes(&bytes).map_err(|e| bad(format!("the handler of {id}: {e}")))?;
    Ok((bytes, flownet_core::ocr::MIME.to_owned()))
}

/// The exception with its traceback, as Python would print it.
pub fn format_traceback(py: Python<'_>, err: &PyErr) -> String {
    let formatted = py.import("traceback").and_then(|tb| {
        tb.call_method1(
            "format_exception",
            (err.get_type(py), err.value(py), err.traceback(py)),
        )?
        .extract::<Vec<String>>()
    });
    match formatted {
        Ok(lines) => lines.concat(),
        Err(_) => err.to_string(),
    }
}

/// What a handler may return: bytes (bytes-like), str, a JSON-able dict or list, a
/// PIL image or a numpy array (both become PNG).
fn to_bytes(out: &Bound<'_, PyAny>, explicit_mime: Option<&str>) -> PyResult<(Vec<u8>, String)> {
    let py = out.py();
    if out.is_instance_of::<PyBytes>()
        || out.is_instance_of::<PyByteArray>()
        || out.is_instance_of::<PyMemoryView>()
    {
        let bytes: Vec<u8> = py
            .import("builtins")?
            .getattr("bytes")?
            .call1((out,))?
            .cast_into::<PyBytes>()?
            .as_bytes()
            .to_vec();
        let mime = explicit_mime.map_or_else(
            || flownet_node::sniff_mime(&bytes).to_owned(),
            str::to_owned,
        );
        return Ok((bytes, mime));
    }
    if out.is_instance_of::<PyString>() {
        let text: String = out.extract()?;
        let mime = explicit_mime.unwrap_or("text/plain; charset=utf-8");
        return Ok((text.into_bytes(), mime.to_owned()));
    }
    if out.is_instance_of::<PyDict>() || out.is_instance_of::<PyList>() {
        let text: String = py
            .import("json")?
            .call_method1("dumps", (out,))?
            .extract()?;
        return Ok((text.into_bytes(), "application/json".to_owned()));
    }
    let class = out.get_type();
    let module: String = class.getattr("__module__")?.extract()?;
    let name: String = class.getattr("__qualname__")?.extract()?;
    if module.starts_with("PIL.") {
        let buffer = py.import("io")?.getattr("BytesIO")?.call0()?;
        out.call_method1("save", (&buffer, "PNG"))?;
        let bytes: Vec<u8> = buffer.call_method0("getvalue")?.extract()?;
        return Ok((bytes, "image/png".to_owned()));
    }
    if module == "numpy" && name == "ndarray" {
        return Ok((ndarray_png(out)?, "image/png".to_owned()));
    }
    Err(pyo3::exceptions::PyTypeError::new_err(format!(
        "a model function must return bytes, str, a dict or list (JSON), a PIL.Image.Image \
         or a numpy.ndarray, not {module}.{name}"
    )))
}

/// A numpy image as PNG: shape (H, W) grey, (H, W, 1|3|4) grey/RGB/RGBA; dtype uint8,
/// bool, or float with values in [0, 1] (clipped).
fn ndarray_png(array: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    use image::{ExtendedColorType, ImageEncoder, codecs::png::PngEncoder};
    let bad = |why: String| pyo3::exceptions::PyValueError::new_err(why);
    let shape: Vec<usize> = array.getattr("shape")?.extract()?;
    let (height, width, channels) = match shape[..] {
        [h, w] => (h, w, 1),
        [h, w, c @ (1 | 3 | 4)] => (h, w, c),
        _ => {
            return Err(bad(format!(
                "an image array must have shape (H, W) or (H, W, 1|3|4), got {shape:?}"
            )));
        }
    };
    let kind: String = array.getattr("dtype")?.getattr("kind")?.extract()?;
    let pixels: Vec<u8> = match kind.as_str() {
        "u" | "b"
            if array
                .getattr("dtype")?
                .getattr("itemsize")?
                .extract::<usize>()?
                == 1 =>
        {
            let bytes = array
                .call_method1("astype", ("u1",))?
                .call_method1("tobytes", ("C",))?;
            let mut v: Vec<u8> = bytes.extract()?;
            if kind == "b" {
                v.iter_mut()
                    .for_each(|p| *p = if *p != 0 { 255 } else { 0 });
            }
            v
        }
        "f" => {
            let bytes: Vec<u8> = array
                .call_method1("astype", ("<f4",))?
                .call_method1("tobytes", ("C",))?
                .extract()?;
            bytes
                .chunks_exact(4)
                .map(|c| {
                    let v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                    let v = if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
                    (v * 255.0).round() as u8
                })
                .collect()
        }
        _ => {
            let dtype = array.getattr("dtype")?.str()?.to_string();
            return Err(bad(format!(
                "an image array must be uint8 (0..255), bool or float (0..1), got {dtype}"
            )));
        }
    };
    let color = match channels {
        1 => ExtendedColorType::L8,
        3 => ExtendedColorType::Rgb8,
        _ => ExtendedColorType::Rgba8,
    };
    let (w, h) = (
        u32::try_from(width).map_err(|_| bad("image too wide".into()))?,
        u32::try_from(height).map_err(|_| bad("image too tall".into()))?,
    );
    let mut png = Vec::new();
    PngEncoder::new(&mut png)
        .write_image(&pixels, w, h, color)
        .map_err(|e| bad(format!("cannot encode the array as PNG: {e}")))?;
    Ok(png)
}
