//! A scenario's expected outcome (`[expect]`): for each invariant of the JSON summary,
//! whether it must be zero (the default), must be caught (`some`: a deliberately unsafe
//! setting whose violation the checker has to find), or is not judged (`any`);
//! `converged` must be true unless the scenario says otherwise.

use anyhow::{bail, Result};
use serde_json::Value;
use std::collections::BTreeMap;

/// What one invariant must show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    Zero,
    Some,
    Any,
    Is(bool),
}

/// Invariant fields of the summary that are counts of work, not violations.
const NOT_JUDGED: [&str; 1] = ["keys_checked"];

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expectations(BTreeMap<String, Expect>);

impl Expectations {
    pub fn parse(raw: &BTreeMap<String, toml::Value>) -> Result<Expectations> {
        let mut expectations = BTreeMap::new();
        for (name, value) in raw {
            let expect = match value {
                toml::Value::String(text) => match text.as_str() {
                    "zero" => Expect::Zero,
                    "some" => Expect::Some,
                    "any" => Expect::Any,
                    other => bail!("expect.{name}: {other:?} is not zero, some or any"),
                },
                toml::Value::Boolean(flag) => Expect::Is(*flag),
                other => bail!("expect.{name}: {other} is not zero, some, any, true or false"),
            };
            expectations.insert(name.clone(), expect);
        }
        Ok(Expectations(expectations))
    }

    /// Whether `name` is judged at all (not `any`).
    pub fn judges(&self, name: &str) -> bool {
        self.0.get(name) != Some(&Expect::Any)
    }

    /// Whether the scenario expects the checker to find a violation somewhere.
    pub fn expects_violation(&self) -> bool {
        self.0.values().any(|expect| *expect == Expect::Some)
    }

    /// Checks `invariants` (the summary's object) and names every expectation missed;
    /// an expectation about an invariant the run did not report is missed too.
    pub fn misses(&self, invariants: &Value) -> Vec<String> {
        let mut misses = Vec::new();
        let Some(fields) = invariants.as_object() else {
            return vec!["the summary has no invariants".to_string()];
        };
        for (name, value) in fields {
            if NOT_JUDGED.contains(&name.as_str()) {
                continue;
            }
            let default = match value {
                Value::Bool(_) => Expect::Is(true),
                _ => Expect::Zero,
            };
            let expect = self.0.get(name).cloned().unwrap_or(default);
            let met = match (&expect, value) {
                (Expect::Any, _) => true,
                (Expect::Zero, Value::Number(n)) => n.as_f64() == Some(0.0),
                (Expect::Some, Value::Number(n)) => n.as_f64().is_some_and(|n| n > 0.0),
                (Expect::Is(flag), Value::Bool(found)) => flag == found,
                _ => false,
            };
            if !met {
                misses.push(format!("{name} = {value}, expected {expect:?}"));
            }
        }
        for name in self.0.keys().filter(|name| !fields.contains_key(*name)) {
            misses.push(format!("{name}: expected, but the run does not report it"));
        }
        misses
    }
}

#[cfg(test)]
mod tests;
