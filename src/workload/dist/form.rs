//! The scenario file's form of a distribution: a number for a constant, else a table
//! `{ dist = "…", … }` checked against its kind.

use super::Dist;
use super::DistError;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;

/// The kinds a scenario may name in `dist = "…"`.
pub(super) const KINDS: &[&str] =
    &["const", "exponential", "lognormal", "gamma", "uniform", "empirical", "sum"];

impl Serialize for Dist {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if let Dist::Const(v) = self {
            return s.serialize_f64(*v);
        }
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("dist", self.kind())?;
        match self {
            Dist::Const(_) => unreachable!("handled above"),
            Dist::Exponential { mean } => map.serialize_entry("mean", mean)?,
            Dist::LogNormal { mean, cv } | Dist::Gamma { mean, cv } => {
                map.serialize_entry("mean", mean)?;
                map.serialize_entry("cv", cv)?;
            }
            Dist::Uniform { min, max } => {
                map.serialize_entry("min", min)?;
                map.serialize_entry("max", max)?;
            }
            Dist::Empirical { file: Some(f), .. } => map.serialize_entry("file", f)?,
            Dist::Empirical { samples, .. } => map.serialize_entry("samples", &samples[..])?,
            Dist::Sum(parts) => map.serialize_entry("of", parts)?,
        }
        map.end()
    }
}

/// The table form, before it is checked against its kind.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    dist: String,
    value: Option<f64>,
    mean: Option<f64>,
    cv: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    file: Option<PathBuf>,
    samples: Option<Vec<f64>>,
    of: Option<Vec<Dist>>,
}

impl Table {
    /// The parameters given, by name.
    fn given(&self) -> [(&'static str, bool); 8] {
        [
            ("value", self.value.is_some()),
            ("mean", self.mean.is_some()),
            ("cv", self.cv.is_some()),
            ("min", self.min.is_some()),
            ("max", self.max.is_some()),
            ("file", self.file.is_some()),
            ("samples", self.samples.is_some()),
            ("of", self.of.is_some()),
        ]
    }

    /// Refuses a parameter the kind does not take: a `mean` on a `uniform` would otherwise
    /// be ignored, and the distribution not be the one meant.
    fn check_params(&self) -> Result<(), DistError> {
        let (kind, takes): (&'static str, &'static [&str]) = match self.dist.as_str() {
            "const" => ("const", &["value", "mean"]),
            "exponential" => ("exponential", &["mean"]),
            "lognormal" => ("lognormal", &["mean", "cv"]),
            "gamma" => ("gamma", &["mean", "cv"]),
            "uniform" => ("uniform", &["min", "max"]),
            "empirical" => ("empirical", &["file", "samples"]),
            "sum" => ("sum", &["of"]),
            _ => return Ok(()),
        };
        let list = match kind {
            "const" => "`value`",
            "exponential" => "`mean`",
            "lognormal" | "gamma" => "`mean` and `cv`",
            "uniform" => "`min` and `max`",
            "empirical" => "`file` or `samples`",
            _ => "`of`",
        };
        match self.given().into_iter().find(|(name, set)| *set && !takes.contains(name)) {
            Some((param, _)) => Err(DistError::Extra { kind, param, takes: list }),
            None => Ok(()),
        }
    }

    fn into_dist(self) -> Result<Dist, DistError> {
        self.check_params()?;
        let need = |v: Option<f64>, kind, param| v.ok_or(DistError::Missing { kind, param });
        let dist = match self.dist.as_str() {
            "const" => Dist::Const(need(self.value.or(self.mean), "const", "value")?),
            "exponential" => Dist::Exponential { mean: need(self.mean, "exponential", "mean")? },
            "lognormal" => Dist::LogNormal {
                mean: need(self.mean, "lognormal", "mean")?,
                cv: need(self.cv, "lognormal", "cv")?,
            },
            "gamma" => {
                Dist::Gamma { mean: need(self.mean, "gamma", "mean")?, cv: need(self.cv, "gamma", "cv")? }
            }
            "uniform" => Dist::Uniform {
                min: need(self.min, "uniform", "min")?,
                max: need(self.max, "uniform", "max")?,
            },
            "empirical" => {
                Dist::Empirical { file: self.file, samples: self.samples.unwrap_or_default().into() }
            }
            "sum" => Dist::Sum(self.of.ok_or(DistError::Missing { kind: "sum", param: "of" })?),
            other => return Err(DistError::UnknownKind(other.to_owned())),
        };
        dist.validate()?;
        Ok(dist)
    }
}

impl<'de> Deserialize<'de> for Dist {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Dist;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or a table like { dist = \"exponential\", mean = 2.0 }")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Dist, E> {
                let d = Dist::Const(v);
                d.validate().map_err(E::custom)?;
                Ok(d)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dist, E> {
                self.visit_f64(v as f64)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dist, E> {
                self.visit_f64(v as f64)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Dist, A::Error> {
                let table = Table::deserialize(de::value::MapAccessDeserializer::new(map))?;
                table.into_dist().map_err(de::Error::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!(parse("x = 3").unwrap(), Dist::Const(3.0));
        assert_eq!(parse("x = 2.5").unwrap(), Dist::Const(2.5));
        assert_eq!(
            parse("x = { dist = \"exponential\", mean = 2.0 }").unwrap(),
            Dist::Exponential { mean: 2.0 }
        );
        assert_eq!(
            parse("x = { dist = \"gamma\", mean = 2.0, cv = 0.5 }").unwrap(),
            Dist::Gamma { mean: 2.0, cv: 0.5 }
        );
        let e = parse("x = { dist = \"empirical\", samples = [1.0, 3.0] }").unwrap();
        assert_eq!(e.mean(), 2.0);
    }

    #[test]
    fn a_parameter_of_another_kind_is_refused_by_name() {
        for (text, needle) in [
            ("x = { dist = \"uniform\", min = 1, max = 3, mean = 2 }", "uniform does not take `mean`"),
            ("x = { dist = \"exponential\", mean = 2, cv = 0.5 }", "exponential does not take `cv`"),
            ("x = { dist = \"gamma\", mean = 2, cv = 0.5, max = 9 }", "gamma does not take `max`"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }
}
