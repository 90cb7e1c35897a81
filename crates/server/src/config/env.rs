//! Reading the environment: the [`Env`] snapshot, the problems found while reading it
//! ([`ConfigError`] reports them all at once), and the number and flag parsers every
//! setting shares.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::io::IsTerminal;

/// A snapshot of the environment. Tests build one from pairs instead of touching the
/// process environment.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, OsString>,
    pub(super) stderr_is_terminal: bool,
}

impl Env {
    /// The process environment, read once.
    pub fn from_process() -> Self {
        Self {
            // Names that are not UTF-8 cannot be ours; values are checked when read.
            vars: std::env::vars_os()
                .filter_map(|(k, v)| k.into_string().ok().map(|k| (k, v)))
                .collect(),
            stderr_is_terminal: std::io::stderr().is_terminal(),
        }
    }

    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<OsString>,
    {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            stderr_is_terminal: false,
        }
    }

    /// Pretend stderr is (or is not) a terminal; it picks the default log format.
    #[must_use]
    pub fn with_terminal(mut self, is_terminal: bool) -> Self {
        self.stderr_is_terminal = is_terminal;
        self
    }

    /// This environment with `name` set to `value` (`None`: removed); `trunkline dev` lays
    /// its emulators' settings over the developer's environment this way.
    #[must_use]
    pub fn with_var(mut self, name: &str, value: Option<OsString>) -> Self {
        match value {
            Some(v) => self.vars.insert(name.to_owned(), v),
            None => self.vars.remove(name),
        };
        self
    }

    /// The names set in this environment.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.vars.keys().map(String::as_str)
    }

    /// A set, non-blank value. Blank counts as unset: orchestrators often render an unset
    /// variable as `NAME=`.
    pub(super) fn get(&self, name: &'static str, problems: &mut Problems) -> Option<String> {
        let raw = self.vars.get(name)?;
        let Some(s) = raw.to_str() else {
            problems.push(name, "is not valid UTF-8");
            return None;
        };
        let s = s.trim();
        (!s.is_empty()).then(|| s.to_owned())
    }

    /// The value for an adapter's own parser. Not UTF-8 becomes replacement characters,
    /// which no adapter accepts, so the adapter names the variable instead of using its
    /// default.
    pub(super) fn lossy(&self, name: &str) -> Option<String> {
        self.vars
            .get(name)
            .map(|v| v.to_string_lossy().into_owned())
    }

    pub(super) fn is_set(&self, name: &str) -> bool {
        self.vars
            .get(name)
            .is_some_and(|v| !v.to_string_lossy().trim().is_empty())
    }
}

/// One problem with one variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub variable: &'static str,
    pub message: String,
}

/// Everything wrong with the configuration. `Display` is one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl ConfigError {
    pub fn single(variable: &'static str, message: impl Into<String>) -> Self {
        let mut p = Problems::default();
        p.push(variable, message);
        Self { problems: p.0 }
    }

    /// Whether `variable` is named by some problem.
    pub fn names(&self, variable: &str) -> bool {
        self.problems.iter().any(|p| p.variable == variable)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid configuration: ")?;
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", p.variable, p.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

#[derive(Debug, Default)]
pub(super) struct Problems(pub(super) Vec<Problem>);

impl Problems {
    pub(super) fn push(&mut self, variable: &'static str, message: impl Into<String>) {
        // The report is one line whatever a parser put in its message.
        let message = message.into().replace(['\n', '\r'], " ");
        self.0.push(Problem { variable, message });
    }
}

pub(super) fn parse_number<T>(
    env: &Env,
    name: &'static str,
    default: T,
    range: std::ops::RangeInclusive<T>,
    p: &mut Problems,
) -> T
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
{
    let Some(raw) = env.get(name, p) else {
        return default;
    };
    match raw.parse::<T>() {
        Ok(v) if range.contains(&v) => v,
        _ => {
            p.push(
                name,
                format!(
                    "must be a whole number from {} to {}",
                    range.start(),
                    range.end()
                ),
            );
            default
        }
    }
}

pub(super) fn parse_bool(env: &Env, name: &'static str, default: bool, p: &mut Problems) -> bool {
    let Some(raw) = env.get(name, p) else {
        return default;
    };
    match raw.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => true,
        "false" | "0" | "no" | "off" => false,
        _ => {
            p.push(name, "must be true or false");
            default
        }
    }
}
