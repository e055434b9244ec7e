//! Shared helpers for integration tests: the local embedder, fixture folders.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use sentinel::embed::local::LocalEmbedder;
use sentinel::embed::Embedder;

/// The model folder `make model` fills (or SENTINEL_MODEL_DIR).
pub fn model_dir() -> PathBuf {
    std::env::var("SENTINEL_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join(".dev/models/all-MiniLM-L6-v2")
        })
}

/// One local embedder for the whole test binary (loading takes a moment).
pub fn embedder() -> Arc<dyn Embedder> {
    static E: OnceLock<Arc<LocalEmbedder>> = OnceLock::new();
    E.get_or_init(|| {
        Arc::new(LocalEmbedder::load(&model_dir(), 0).expect("run `make model` first"))
    })
    .clone()
}

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Copies a folder of the repository into a fresh temporary directory.
pub fn copy_fixture(rel: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo_path(rel), dir.path());
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}
