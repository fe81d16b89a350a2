//! The engine through core's `Engine` port, as the node runtime uses it.

use std::sync::Arc;

use flownet_core::{Engine, Error, InferenceRequest};
use serde_json::json;

use crate::common::{self, MOBILENET, TERRAIN};

fn port() -> Arc<dyn Engine> {
    Arc::new(common::engine().clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infers_through_the_port() {
    let engine = port();
    let image = engine
        .infer(common::request(TERRAIN, "canyon", json!({})))
        .await
        .unwrap();
    assert_eq!(image.mime, "image/png");
    let labels = engine
        .infer(InferenceRequest {
            input: Some(common::testdata("coffee.png")),
            ..common::request(MOBILENET, "", json!({}))
        })
        .await
        .unwrap();
    assert_eq!(labels.mime, "application/json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_map_to_core_kinds() {
    let engine = port();
    let err = engine
        .infer(common::request("no-such-model", "", json!({})))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    let err = engine
        .infer(common::request(MOBILENET, "", json!({})))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    let err = engine
        .infer(common::request(TERRAIN, "", json!({"difficulty": 500})))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_match_sequential_ones() {
    let engine = port();
    let requests: Vec<_> = (0..4)
        .map(|i| match i % 2 {
            0 => common::request(TERRAIN, &format!("peak {i}"), json!({})),
            _ => InferenceRequest {
                input: Some(common::testdata("chelsea.png")),
                ..common::request(MOBILENET, "", json!({}))
            },
        })
        .collect();
    let handles: Vec<_> = requests
        .iter()
        .cloned()
        .map(|request| {
            let engine = engine.clone();
            tokio::spawn(async move { engine.infer(request).await })
        })
        .collect();
    for (request, handle) in requests.into_iter().zip(handles) {
        let concurrent = handle.await.unwrap().unwrap();
        assert_eq!(concurrent, engine.infer(request).await.unwrap());
    }
}
