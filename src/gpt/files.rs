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
        let bound = weights_bound(&config).ok_or_else(|| {
            bad(&dir.join(CONFIG_FILE), "its dimensions make a model of more than 2^64 bytes; check them")
        })?;
        let bytes = crate::input::read_bytes(&path, bound).map_err(|e| match e.kind() {
            std::io::ErrorKind::FileTooLarge => bad(
                &path,
                format!(
                    "longer than the {bound} bytes allowed for the weights of config.json's {} \
                     parameters: the file does not match config.json; {regenerate}",
                    config.param_count()
                ),
            ),
            _ => bad(&path, format!("{e}; {regenerate}")),
        })?;
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

/// Header bytes a weights file may have for each of its tensors (a name, a shape and two
/// offsets in JSON take about a hundred).
const HEADER_BYTES_PER_TENSOR: u64 = 1 << 10;
/// Header bytes a weights file may have beyond those of its tensors (metadata, padding).
const HEADER_BYTES: u64 = 64 << 10;

/// Most bytes the weights file of a model of `c`'s dimensions holds: the header's length
/// (8 bytes), a header of at most [`HEADER_BYTES`] + [`HEADER_BYTES_PER_TENSOR`] per tensor,
/// and 4 bytes per parameter; `None` if that is more than 2^64.
fn weights_bytes(c: &Config) -> Option<u64> {
    let mul = |xs: &[u64]| xs.iter().try_fold(1u64, |p, &x| p.checked_mul(x));
    let add = |xs: &[u64]| xs.iter().try_fold(0u64, |s, &x| s.checked_add(x));
    let params = u64::try_from(c.checked_param_count()?).ok()?;
    let tensors = add(&[mul(&[12, c.n_layer as u64])?, 3])?;
    add(&[8, HEADER_BYTES, mul(&[HEADER_BYTES_PER_TENSOR, tensors])?, mul(&[4, params])?])
}

/// Longest weights file read for a model of `c`'s dimensions: twice [`weights_bytes`], and
/// at least [`MAX_FILE_BYTES`](crate::input::MAX_FILE_BYTES) as for any input file. The
/// margin lets weights a little off the config (a layer more, a wider MLP) reach the check
/// that names the tensor that differs; a longer file, or a device that never ends, is
/// refused before it is read whole. `None` if that is more than 2^64.
fn weights_bound(c: &Config) -> Option<u64> {
    Some(weights_bytes(c)?.checked_mul(2)?.max(crate::input::MAX_FILE_BYTES))
}

/// Reads and validates `dir/config.json`.
fn read_config(dir: &Path) -> Result<Config, GptError> {
    let path = dir.join(CONFIG_FILE);
    let text = crate::input::read_text(&path).map_err(|e| {
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
    fn the_weights_bound_counts_every_parameter_and_tensor() {
        let max = crate::input::MAX_FILE_BYTES;
        let header = |c: &Config| 8 + HEADER_BYTES + HEADER_BYTES_PER_TENSOR * spec(c).len() as u64;
        let c = Config::default();
        assert_eq!(weights_bytes(&c), Some(header(&c) + 4 * c.param_count() as u64));
        assert_eq!(weights_bound(&c), Some(max));
        let big = Config { d_model: 1024, d_ff: 4096, n_head: 16, n_layer: 8, ..c };
        let bytes = header(&big) + 4 * big.param_count() as u64;
        assert!(2 * bytes > max);
        assert_eq!(weights_bound(&big), Some(2 * bytes));
        assert_eq!(weights_bound(&Config { n_layer: usize::MAX, ..c }), None);
    }

    /// Weights longer than config.json's model (a sparse file, or an endless device) are
    /// refused before they are read whole, naming the file and the fix.
    #[test]
    fn weights_longer_than_the_config_says_are_refused() {
        let dir = tempfile::Builder::new().prefix("servesim-files-").tempdir().unwrap();
        Model::init(&Config::default(), 1).save(dir.path()).unwrap();
        let weights = dir.path().join(WEIGHTS_FILE);
        let bound = weights_bound(&Config::default()).unwrap();
        std::fs::File::options().write(true).open(&weights).unwrap().set_len(bound + 1).unwrap();
        let e = Model::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains(&weights.display().to_string()), "{e}");
        assert!(e.contains("does not match config.json") && e.contains("servesim model init --dir"), "{e}");
        std::fs::remove_file(&weights).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &weights).unwrap();
        let e = Model::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("longer than") && e.contains("does not match config.json"), "{e}");
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
