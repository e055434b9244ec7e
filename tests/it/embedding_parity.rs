//! The local embedder matches sentence-transformers' all-MiniLM-L6-v2 (cosine >= 0.999).

use sentinel::embed::cosine;

use crate::helpers::embed::{embedder, model_dir};
use crate::helpers::fixtures::repo_path;

#[tokio::test]
async fn matches_sentence_transformers_reference() {
    let raw =
        std::fs::read_to_string(repo_path("tests/data/embeddings/minilm-reference.json")).unwrap();
    let reference: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let sentences = reference["sentences"].as_array().unwrap();
    assert!(sentences.len() >= 3);
    let texts: Vec<String> = sentences
        .iter()
        .map(|s| s["text"].as_str().unwrap().to_string())
        .collect();
    let e = embedder();
    assert_eq!(e.dim(), 384);
    // Batched and one-by-one must both match. The sentences four times over, 3 tokens or
    // more each, are more rows than `HALF_PRECISION_MAX_ROWS`: the batch runs on the f32
    // `gemm` path, and each short sentence alone on the f16 weights.
    let four: Vec<String> = (0..4).flat_map(|_| texts.iter().cloned()).collect();
    assert!(four.len() * 3 > sentinel::embed::local::HALF_PRECISION_MAX_ROWS);
    let batched = e.embed(&four).await.unwrap();
    for (i, s) in sentences.iter().enumerate() {
        let expected: Vec<f32> = s["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        let single = e.embed_one(&texts[i]).await.unwrap();
        let cb = cosine(&batched[i], &expected);
        let cs = cosine(&single, &expected);
        eprintln!("sentence {i}: cosine batched {cb:.7}, single {cs:.7}");
        assert!(cb >= 0.999, "batched: sentence {i} cosine {cb}");
        assert!(cs >= 0.999, "single: sentence {i} cosine {cs}");
        let norm: f32 = single.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4);
    }
}

/// `SENTINEL_EMBED_THREADS=1` (one encoder thread) gives the same vectors as the default.
#[tokio::test]
async fn one_encoder_thread_gives_the_same_vectors() {
    use sentinel::embed::local::LocalEmbedder;
    use sentinel::embed::Embedder;
    let texts: Vec<String> = [
        "KubePodCrashLooping: pod is restarting repeatedly",
        "Filesystem is predicted to run out of space within the next 24 hours.",
        "",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let single = LocalEmbedder::load(&model_dir(), 1).unwrap();
    let one = single.embed(&texts).await.unwrap();
    let default = embedder().embed(&texts).await.unwrap();
    assert_eq!(one.len(), texts.len());
    for (a, b) in one.iter().zip(&default) {
        assert!(cosine(a, b) > 0.99999, "cosine {}", cosine(a, b));
    }
}
