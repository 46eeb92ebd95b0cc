//! A model directory: `config.json` (the [`Config`]) and `model.safetensors` (the tensors,
//! f32, little-endian — the ML ecosystem's format). Loading checks every tensor's name,
//! dtype and shape against the config, and says what is wrong and how to fix it.

use super::weights::spec;
use super::{Config, GptError, Model};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use std::collections::BTreeMap;
use std::path::Path;

/// File names inside a model directory.
const CONFIG_FILE: &str = "config.json";
const WEIGHTS_FILE: &str = "model.safetensors";

/// A weights error about `path`.
fn bad(path: &Path, reason: impl Into<String>) -> GptError {
    GptError::Weights { path: path.into(), reason: reason.into() }
}

impl Model {
    /// Writes `config.json` and `model.safetensors` into `dir` (created if needed).
    pub fn save(&self, dir: &Path) -> Result<(), GptError> {
        std::fs::create_dir_all(dir).map_err(|e| bad(dir, e.to_string()))?;
        let shapes: BTreeMap<String, Vec<usize>> = spec(&self.config).into_iter().collect();
        let bytes: Vec<(String, Vec<u8>)> = self
            .tensors()
            .into_iter()
            .map(|(n, v)| (n, v.iter().flat_map(|x| x.to_le_bytes()).collect()))
            .collect();
        let views = bytes.iter().map(|(n, b)| {
            (n.clone(), TensorView::new(Dtype::F32, shapes[n].clone(), b).expect("sizes match"))
        });
        let file = dir.join(WEIGHTS_FILE);
        let data = safetensors::serialize(views, None).map_err(|e| bad(&file, e.to_string()))?;
        std::fs::write(&file, data).map_err(|e| bad(&file, e.to_string()))?;
        let cfg = dir.join(CONFIG_FILE);
        let json = serde_json::to_string_pretty(&self.config).expect("config serializes");
        std::fs::write(&cfg, json + "\n").map_err(|e| bad(&cfg, e.to_string()))
    }

    /// Reads a model directory written by [`Model::save`] (or `servesim model init`),
    /// checking every tensor's name, dtype and shape against `config.json`.
    pub fn load(dir: &Path) -> Result<Model, GptError> {
        let config = read_config(dir)?;
        let path = dir.join(WEIGHTS_FILE);
        let regenerate = format!("regenerate it with `servesim model init --dir {}`", dir.display());
        let bytes = std::fs::read(&path).map_err(|e| bad(&path, format!("{e}; {regenerate}")))?;
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| bad(&path, format!("not a complete safetensors file ({e}); {regenerate}")))?;
        let mut tensors = BTreeMap::new();
        for (name, shape) in spec(&config) {
            let mismatch = |what: String| {
                bad(&path, format!("{what}: the file does not match config.json; {regenerate}"))
            };
            let t = st.tensor(&name).map_err(|_| mismatch(format!("tensor `{name}` is missing")))?;
            if t.dtype() != Dtype::F32 {
                return Err(mismatch(format!("tensor `{name}` is {:?}, expected F32", t.dtype())));
            }
            if t.shape() != shape.as_slice() {
                return Err(mismatch(format!(
                    "tensor `{name}` has shape {:?}, expected {shape:?}",
                    t.shape()
                )));
            }
            let v = t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            tensors.insert(name, v);
        }
        if let Some(extra) = st.names().into_iter().find(|n| !tensors.contains_key(*n)) {
            return Err(bad(
                &path,
                format!("unexpected tensor `{extra}`: the file does not match config.json; {regenerate}"),
            ));
        }
        Ok(Self::from_tensors(config, tensors))
    }
}

/// Reads and validates `dir/config.json`.
fn read_config(dir: &Path) -> Result<Config, GptError> {
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        bad(&path, format!("{e}; create it with `servesim model init --dir {}`", dir.display()))
    })?;
    let config: Config =
        serde_json::from_str(&text).map_err(|e| bad(&path, format!("not a model config: {e}")))?;
    config.validate().map_err(|e| bad(&path, e.to_string()))?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each tensor's values as bits, by name.
    fn bits(m: &Model) -> BTreeMap<String, Vec<u32>> {
        m.tensors().into_iter().map(|(n, v)| (n, v.iter().map(|x| x.to_bits()).collect())).collect()
    }

    #[test]
    fn the_committed_model_loads_back_bit_for_bit() {
        let committed = Model::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mini-gpt")).unwrap();
        let dir = tempfile::Builder::new().prefix("servesim-files-").tempdir().unwrap();
        committed.save(dir.path()).unwrap();
        let back = Model::load(dir.path()).unwrap();
        assert_eq!(back.config, committed.config);
        let (want, got) = (bits(&committed), bits(&back));
        assert_eq!(want.keys().collect::<Vec<_>>(), got.keys().collect::<Vec<_>>());
        for (name, w) in &want {
            assert!(got[name] == *w, "tensor {name} changed in the round trip");
        }
    }
}
