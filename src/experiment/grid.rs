//! Parameter grids: `--sweep path=v1,v2,…` flags, their cartesian product, and shards.

use crate::scenario::Override;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// Most points one grid may have: far beyond any sweep, small enough to stay in memory.
pub const MAX_POINTS: usize = 10_000_000;

/// Why a grid or shard is malformed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GridError {
    /// A `--sweep` argument is malformed.
    #[error("--sweep {arg}: {message}")]
    Sweep {
        /// The argument.
        arg: String,
        /// What is wrong.
        message: String,
    },
    /// No parameter to sweep.
    #[error("the grid is empty: give at least one --sweep PATH=V1,V2,… (e.g. --sweep clients.users=1,2,4,8)")]
    Empty,
    /// The same path is swept twice.
    #[error("--sweep {0} is given twice; give each parameter once, with all its values")]
    Duplicate(String),
    /// A `--set` of a field that a `--sweep` also gives (or holds): every point would take
    /// the swept value, and the `--set` would be ignored.
    #[error(
        "--set {set} and --sweep {axis}=… both give {}: every point takes the swept value, so the \
         --set would be ignored; drop the --set (or the --sweep, to run the set value alone)",
        set.split_once('=').map_or(set.as_str(), |(p, _)| p)
    )]
    SetAndSwept {
        /// The `--set` argument (`clients.users=4`).
        set: String,
        /// The swept path (`clients.users`), the set one or a table that holds it.
        axis: String,
    },
    /// Too many points.
    #[error("the grid has {0} points, more than the {MAX_POINTS} allowed; split it into several sweeps")]
    TooLarge(u128),
    /// A `--shard` argument is malformed or out of range.
    #[error("--shard {arg}: {message}")]
    Shard {
        /// The argument.
        arg: String,
        /// What is wrong.
        message: String,
    },
}

/// One swept parameter: a dotted scenario path and its values (TOML).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Axis {
    /// Dotted path (`clients.users`).
    pub path: String,
    /// Values in the order given.
    pub values: Vec<toml::Value>,
}

/// Splits on commas that are not inside `{}`, `[]` or quotes.
fn split_top_level(s: &str) -> Vec<String> {
    let (mut out, mut cur, mut depth, mut quote) = (Vec::new(), String::new(), 0i32, false);
    for ch in s.chars() {
        match ch {
            '"' => quote = !quote,
            '{' | '[' if !quote => depth += 1,
            '}' | ']' if !quote => depth -= 1,
            ',' if !quote && depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    out.push(cur);
    out
}

/// `a..=b` (or `a..=b:step`) as integers.
fn int_range(item: &str) -> Option<Result<Vec<i64>, String>> {
    let (range, step) = match item.split_once(':') {
        Some((r, s)) => (r, Some(s)),
        None => (item, None),
    };
    let (a, b) = range.split_once("..=")?;
    let parse = |x: &str| x.trim().parse::<i64>().map_err(|_| format!("`{item}`: `{x}` is not an integer"));
    Some((|| {
        let (a, b) = (parse(a)?, parse(b)?);
        let step = step.map(parse).transpose()?.unwrap_or(1);
        if step < 1 || b < a {
            return Err(format!("`{item}` is empty: write start..=end[:step] with start ≤ end and step ≥ 1"));
        }
        if (b - a) / step >= MAX_POINTS as i64 {
            return Err(format!("`{item}` has more than {MAX_POINTS} values"));
        }
        Ok((a..=b).step_by(step as usize).collect())
    })())
}

/// The positions of the first two of a value given twice, if any. Found by sorting rather
/// than by comparing pairs: a range may give millions of values.
fn repeated(values: &[toml::Value]) -> Option<(usize, usize)> {
    let mut ints: Vec<i64> = values.iter().filter_map(toml::Value::as_integer).collect();
    ints.sort_unstable();
    let same: Box<dyn Fn(&toml::Value) -> bool> = match ints.windows(2).find(|w| w[0] == w[1]) {
        Some(w) => {
            let i = w[0];
            Box::new(move |v| v.as_integer() == Some(i))
        }
        None => {
            let mut texts: Vec<String> =
                values.iter().filter(|v| !v.is_integer()).map(ToString::to_string).collect();
            texts.sort_unstable();
            let t = texts.windows(2).find(|w| w[0] == w[1])?[0].clone();
            Box::new(move |v| !v.is_integer() && v.to_string() == t)
        }
    };
    let mut at = values.iter().enumerate().filter(|(_, v)| same(v)).map(|(i, _)| i);
    Some((at.next()?, at.next()?))
}

impl FromStr for Axis {
    type Err = GridError;

    fn from_str(arg: &str) -> Result<Self, GridError> {
        let err = |m: String| GridError::Sweep { arg: arg.into(), message: m };
        let (path, list) = arg.split_once('=').ok_or_else(|| {
            err("expected PATH=V1,V2,…, e.g. clients.users=1,2,4,8 or worker.threads=1..=8".into())
        })?;
        let mut values = Vec::new();
        for item in split_top_level(list).iter().map(|s| s.trim()) {
            if item.is_empty() {
                return Err(err("a value is empty; separate values with single commas".into()));
            }
            match int_range(item) {
                Some(r) => values.extend(r.map_err(err)?.into_iter().map(toml::Value::Integer)),
                None => {
                    let o: Override = format!("{path}={item}")
                        .parse()
                        .map_err(|e: crate::scenario::ScenarioError| err(e.to_string()))?;
                    values.push(o.value);
                }
            }
        }
        let path = path.trim().to_owned();
        if path.is_empty() || path.split('.').any(str::is_empty) {
            return Err(err("the path must be dotted keys, e.g. worker.threads".into()));
        }
        // The same value twice is the same point twice: twice the work for no new point, and
        // two points of one label that a comparison by label (validate --from) cannot tell
        // apart. Repeats are run.replications (sweep) or --repeats (validate).
        if let Some((first, second)) = repeated(&values) {
            return Err(err(format!(
                "the value {} is given twice (values {} and {}); give each value once",
                show(&values[first]),
                first + 1,
                second + 1
            )));
        }
        Ok(Axis { path, values })
    }
}

/// Shows a TOML value the way a user writes it (strings without quotes).
pub fn show(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The cartesian product of axes; point `i` has the first axis varying slowest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    /// The swept parameters, outermost first.
    pub axes: Vec<Axis>,
}

impl Grid {
    /// Checks the axes: at least one, none repeated, not too many points.
    pub fn new(axes: Vec<Axis>) -> Result<Self, GridError> {
        if axes.is_empty() {
            return Err(GridError::Empty);
        }
        for (i, a) in axes.iter().enumerate() {
            if axes[..i].iter().any(|b| b.path == a.path) {
                return Err(GridError::Duplicate(a.path.clone()));
            }
        }
        let n: u128 = axes.iter().map(|a| a.values.len() as u128).product();
        if n > MAX_POINTS as u128 {
            return Err(GridError::TooLarge(n));
        }
        Ok(Self { axes })
    }

    /// Checks that no override of `fixed` (`--set`) gives a field the grid sweeps: its path
    /// is not an axis's, nor inside one's (`--set cost.x.mean=2` with `--sweep cost.x=…`).
    /// An axis inside a set table (`--set cost.x={…}` with `--sweep cost.x.mean=…`) changes
    /// one of its fields at each point, and is allowed.
    pub fn check_fixed(&self, fixed: &[Override]) -> Result<(), GridError> {
        for o in fixed {
            let inside = |axis: &str| {
                o.path == axis || o.path.strip_prefix(axis).is_some_and(|rest| rest.starts_with('.'))
            };
            if let Some(axis) = self.axes.iter().find(|a| inside(&a.path)) {
                let value: String = show(&o.value).chars().take(40).collect();
                return Err(GridError::SetAndSwept {
                    set: format!("{}={value}", o.path),
                    axis: axis.path.clone(),
                });
            }
        }
        Ok(())
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.axes.iter().map(|a| a.values.len()).product()
    }

    /// Whether the grid has no point (never, once built by [`Grid::new`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The overrides that make point `index`.
    pub fn point(&self, index: usize) -> Vec<Override> {
        let mut rest = index;
        let mut out = vec![None; self.axes.len()];
        for (k, axis) in self.axes.iter().enumerate().rev() {
            let n = axis.values.len();
            out[k] = Some(Override { path: axis.path.clone(), value: axis.values[rest % n].clone() });
            rest /= n;
        }
        out.into_iter().flatten().collect()
    }
}

/// A slice of a grid: points `i` with `i % count == index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// This shard, 0-based.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl Default for Shard {
    fn default() -> Self {
        Self { index: 0, count: 1 }
    }
}

impl FromStr for Shard {
    type Err = GridError;

    fn from_str(arg: &str) -> Result<Self, GridError> {
        let err = |m: &str| GridError::Shard { arg: arg.into(), message: m.into() };
        let (i, n) = arg.split_once('/').ok_or_else(|| err("expected INDEX/COUNT, e.g. 0/10 (0-based)"))?;
        let i: usize = i.trim().parse().map_err(|_| err("INDEX must be a whole number"))?;
        let n: usize = n.trim().parse().map_err(|_| err("COUNT must be a whole number"))?;
        if n == 0 {
            return Err(err("COUNT must be ≥ 1"));
        }
        if i >= n {
            return Err(GridError::Shard {
                arg: arg.into(),
                message: format!(
                    "INDEX must be in 0..{n} (0-based), got {i}; with Slurm use $SLURM_ARRAY_TASK_ID and --array=0-{}",
                    n - 1
                ),
            });
        }
        Ok(Shard { index: i, count: n })
    }
}

impl Shard {
    /// The points of `grid` in this shard.
    pub fn points(&self, grid: &Grid) -> Vec<usize> {
        (self.index..grid.len()).step_by(self.count).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_parse_lists_ranges_and_tables() {
        let a: Axis = "clients.users=1,2,4..=8:2".parse().unwrap();
        let ints: Vec<i64> = a.values.iter().map(|v| v.as_integer().unwrap()).collect();
        assert_eq!(ints, [1, 2, 4, 6, 8]);
        let a: Axis = "worker.lock=none,gil".parse().unwrap();
        assert_eq!(a.values.iter().map(show).collect::<Vec<_>>(), ["none", "gil"]);
        let a: Axis = "cost.token_free_ms={dist=\"gamma\",mean=1,cv=0.5},2".parse().unwrap();
        assert_eq!(a.values.len(), 2);
        assert!(a.values[0].is_table());
    }

    #[test]
    fn bad_axes_and_shards_say_how_to_fix() {
        for (arg, want) in [
            ("clients.users", "expected PATH=V1,V2"),
            ("clients.users=1,,2", "a value is empty"),
            ("clients.users=8..=1", "is empty"),
            ("=1,2", "dotted keys"),
        ] {
            let e = arg.parse::<Axis>().unwrap_err().to_string();
            assert!(e.contains(want), "{arg}: {e}");
        }
        for (arg, want) in
            [("3/3", "INDEX must be in 0..3"), ("1/0", "COUNT must be ≥ 1"), ("x", "INDEX/COUNT")]
        {
            let e = arg.parse::<Shard>().unwrap_err().to_string();
            assert!(e.contains(want), "{arg}: {e}");
        }
        for (arg, want) in [
            ("clients.users=1,2,1", "the value 1 is given twice (values 1 and 3)"),
            ("clients.users=1..=4,2", "the value 2 is given twice (values 2 and 5)"),
            ("worker.lock=gil,none,\"gil\"", "the value gil is given twice"),
        ] {
            let e = arg.parse::<Axis>().unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("give each value once"), "{arg}: {e}");
        }
        assert_eq!(Grid::new(vec![]).unwrap_err(), GridError::Empty);
        let a: Axis = "worker.threads=1,2".parse().unwrap();
        assert!(matches!(Grid::new(vec![a.clone(), a]), Err(GridError::Duplicate(_))));
    }

    #[test]
    fn a_set_field_that_is_also_swept_is_refused() {
        let g = Grid::new(vec!["clients.users=1,2".parse().unwrap(), "cost.x=1,2".parse().unwrap()]).unwrap();
        let set = |s: &str| s.parse::<Override>().unwrap();
        let e = g.check_fixed(&[set("worker.threads=8"), set("clients.users=4")]).unwrap_err();
        assert_eq!(e, GridError::SetAndSwept { set: "clients.users=4".into(), axis: "clients.users".into() });
        let e = e.to_string();
        assert!(
            e.starts_with("--set clients.users=4 and --sweep clients.users=… both give clients.users"),
            "{e}"
        );
        assert!(e.contains("drop the --set"), "{e}");
        // A field inside a swept table is replaced with it; a prefix of a key is another key.
        let e = g.check_fixed(&[set("cost.x.mean=2")]).unwrap_err().to_string();
        assert!(e.contains("--sweep cost.x=… both give cost.x.mean"), "{e}");
        assert!(g.check_fixed(&[set("clients.users_x=4")]).is_ok());
        // An axis inside a set table changes one of its fields.
        let inner = Grid::new(vec!["cost.x.mean=1,2".parse().unwrap()]).unwrap();
        assert!(inner.check_fixed(&[set("cost.x={dist=\"gamma\",mean=1,cv=0.5}")]).is_ok());
    }

    #[test]
    fn points_enumerate_the_product_and_shards_partition_it() {
        let g = Grid::new(vec!["a.x=1,2".parse().unwrap(), "b.y=10,20,30".parse().unwrap()]).unwrap();
        assert_eq!(g.len(), 6);
        let p = g.point(4);
        assert_eq!((show(&p[0].value), show(&p[1].value)), ("2".into(), "20".into()));
        let mut all: Vec<usize> = (0..4).flat_map(|i| Shard { index: i, count: 4 }.points(&g)).collect();
        all.sort();
        assert_eq!(all, (0..6).collect::<Vec<_>>());
    }
}
