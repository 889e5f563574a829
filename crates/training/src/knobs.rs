//! Knob spaces and knob values.
//!
//! A template declares a [`KnobConfig`]: one [`KnobSpec`] per knob, in the
//! kinds of the seeds (fixed, categorical, integer, float) plus an optional
//! early-stopping policy. A trial runs with [`Knobs`]: one [`KnobValue`] per
//! knob. Advisors search in the unit cube: every non-fixed knob maps to
//! `[0, 1]` ([`KnobSpec::to_unit`] / [`KnobSpec::from_unit`]), with the log
//! scale applied there, so every advisor honours it.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// One knob's value. Serialised untagged, so a JSON knob map reads naturally:
/// `{"hidden": 64, "lr": 0.01, "activation": "relu", "bias": true}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum KnobValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl KnobValue {
    /// The value's type name, for error messages and type checks.
    pub fn kind(&self) -> &'static str {
        match self {
            KnobValue::Bool(_) => "bool",
            KnobValue::Int(_) => "integer",
            KnobValue::Float(_) => "float",
            KnobValue::Str(_) => "string",
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            KnobValue::Int(v) => Some(*v as f64),
            KnobValue::Float(v) => Some(*v),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            KnobValue::Int(v) => Some(*v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            KnobValue::Str(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            KnobValue::Bool(v) => Some(*v),
            _ => None,
        }
    }
}

impl fmt::Display for KnobValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KnobValue::Bool(v) => write!(f, "{v}"),
            KnobValue::Int(v) => write!(f, "{v}"),
            KnobValue::Float(v) => write!(f, "{v}"),
            KnobValue::Str(v) => write!(f, "{v}"),
        }
    }
}

/// One knob's space.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KnobSpec {
    /// Always this value; advisors do not search it.
    Fixed { value: KnobValue },
    /// One of these values, all of one type.
    Categorical { values: Vec<KnobValue> },
    /// An integer in `[min, max]`; `log` searches it on a log scale (min ≥ 1).
    Integer {
        min: i64,
        max: i64,
        #[serde(default)]
        log: bool,
    },
    /// A float in `[min, max]`; `log` searches it on a log scale (min > 0).
    Float {
        min: f64,
        max: f64,
        #[serde(default)]
        log: bool,
    },
}

/// When a trial stops training early: after `patience` epochs in a row whose
/// validation score did not beat the best so far by at least `min_delta`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    pub patience: u32,
    #[serde(default)]
    pub min_delta: f64,
}

/// A template's knob space.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KnobConfig {
    pub knobs: BTreeMap<String, KnobSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stopping: Option<EarlyStopping>,
}

/// The knob values of one trial.
pub type Knobs = BTreeMap<String, KnobValue>;

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum KnobError {
    #[error("unknown knob '{0}'")]
    Unknown(String),
    #[error("knob '{0}' is missing")]
    Missing(String),
    #[error("knob '{name}' wants {want}, got {got}")]
    WrongType { name: String, want: &'static str, got: &'static str },
    #[error("knob '{name}' = {value} is out of its range {range}")]
    OutOfRange { name: String, value: String, range: String },
    #[error("knob '{name}' has an invalid space: {reason}")]
    InvalidSpec { name: String, reason: String },
}

impl KnobSpec {
    /// Checks the space itself: bounds in order, log scales positive,
    /// categorical values present and of one type.
    pub fn check(&self, name: &str) -> Result<(), KnobError> {
        let invalid = |reason: &str| KnobError::InvalidSpec { name: name.to_string(), reason: reason.to_string() };
        match self {
            KnobSpec::Fixed { .. } => Ok(()),
            KnobSpec::Categorical { values } => {
                let Some(first) = values.first() else {
                    return Err(invalid("no values"));
                };
                if values.iter().any(|v| v.kind() != first.kind()) {
                    return Err(invalid("values are not all of one type"));
                }
                Ok(())
            }
            KnobSpec::Integer { min, max, log } => {
                if min > max {
                    return Err(invalid("min is above max"));
                }
                if *log && *min < 1 {
                    return Err(invalid("a log scale needs min >= 1"));
                }
                Ok(())
            }
            KnobSpec::Float { min, max, log } => {
                if !(min.is_finite() && max.is_finite()) || min > max {
                    return Err(invalid("min and max must be finite with min <= max"));
                }
                if *log && *min <= 0.0 {
                    return Err(invalid("a log scale needs min > 0"));
                }
                Ok(())
            }
        }
    }

    /// Whether advisors search this knob (everything but `Fixed`).
    pub fn is_searched(&self) -> bool {
        !matches!(self, KnobSpec::Fixed { .. })
    }

    /// Number of choices of a categorical knob; `None` for the others.
    pub fn choices(&self) -> Option<usize> {
        match self {
            KnobSpec::Categorical { values } => Some(values.len()),
            _ => None,
        }
    }

    /// Checks one value against this space.
    pub fn validate(&self, name: &str, value: &KnobValue) -> Result<(), KnobError> {
        let wrong = |want| KnobError::WrongType { name: name.to_string(), want, got: value.kind() };
        let out = |range: String| KnobError::OutOfRange { name: name.to_string(), value: value.to_string(), range };
        match self {
            KnobSpec::Fixed { value: fixed } => {
                if fixed == value {
                    Ok(())
                } else {
                    Err(out(format!("(fixed at {fixed})")))
                }
            }
            KnobSpec::Categorical { values } => {
                if values.first().is_some_and(|v| v.kind() != value.kind()) {
                    return Err(wrong(values[0].kind()));
                }
                if values.contains(value) {
                    Ok(())
                } else {
                    let list: Vec<String> = values.iter().map(|v| v.to_string()).collect();
                    Err(out(format!("{{{}}}", list.join(", "))))
                }
            }
            KnobSpec::Integer { min, max, .. } => {
                let v = value.as_i64().ok_or_else(|| wrong("integer"))?;
                if (*min..=*max).contains(&v) {
                    Ok(())
                } else {
                    Err(out(format!("[{min}, {max}]")))
                }
            }
            KnobSpec::Float { min, max, .. } => {
                let v = value.as_f64().ok_or_else(|| wrong("float"))?;
                if v.is_finite() && *min <= v && v <= *max {
                    Ok(())
                } else {
                    Err(out(format!("[{min}, {max}]")))
                }
            }
        }
    }

    /// Maps a valid value into `[0, 1]`: position in the range (after the
    /// log when the knob has one), or the centre of a categorical value's
    /// slot. Fixed knobs map to 0.5.
    pub fn to_unit(&self, value: &KnobValue) -> f64 {
        let unit = match self {
            KnobSpec::Fixed { .. } => 0.5,
            KnobSpec::Categorical { values } => {
                let i = values.iter().position(|v| v == value).unwrap_or(0);
                (i as f64 + 0.5) / values.len() as f64
            }
            KnobSpec::Integer { min, max, log } => {
                let v = value.as_f64().unwrap_or(*min as f64);
                // Integers own the interval [k - 0.5, k + 0.5], so every
                // value gets an equal share of the unit line.
                scale_to_unit(v, *min as f64 - 0.5, *max as f64 + 0.5, *log)
            }
            KnobSpec::Float { min, max, log } => scale_to_unit(value.as_f64().unwrap_or(*min), *min, *max, *log),
        };
        unit.clamp(0.0, 1.0)
    }

    /// Maps a point of `[0, 1]` back to a valid value of this space.
    pub fn from_unit(&self, u: f64) -> KnobValue {
        let u = if u.is_finite() { u.clamp(0.0, 1.0) } else { 0.5 };
        match self {
            KnobSpec::Fixed { value } => value.clone(),
            KnobSpec::Categorical { values } => {
                let i = ((u * values.len() as f64) as usize).min(values.len() - 1);
                values[i].clone()
            }
            KnobSpec::Integer { min, max, log } => {
                let v = unit_to_scale(u, *min as f64 - 0.5, *max as f64 + 0.5, *log);
                KnobValue::Int((v.round() as i64).clamp(*min, *max))
            }
            KnobSpec::Float { min, max, log } => KnobValue::Float(unit_to_scale(u, *min, *max, *log).clamp(*min, *max)),
        }
    }
}

/// The lower edge of a log-scaled integer range, `min - 0.5`, can be 0.5 at
/// least (min ≥ 1), so the log stays finite.
fn scale_to_unit(v: f64, lo: f64, hi: f64, log: bool) -> f64 {
    if hi <= lo {
        return 0.5;
    }
    if log {
        (v.max(lo).ln() - lo.ln()) / (hi.ln() - lo.ln())
    } else {
        (v - lo) / (hi - lo)
    }
}

fn unit_to_scale(u: f64, lo: f64, hi: f64, log: bool) -> f64 {
    if hi <= lo {
        return lo;
    }
    if log {
        (lo.ln() + u * (hi.ln() - lo.ln())).exp()
    } else {
        lo + u * (hi - lo)
    }
}

impl KnobConfig {
    /// Checks every knob's space.
    pub fn check(&self) -> Result<(), KnobError> {
        for (name, spec) in &self.knobs {
            spec.check(name)?;
        }
        Ok(())
    }

    /// Checks a full knob map: every knob known, present and in its space.
    pub fn validate(&self, knobs: &Knobs) -> Result<(), KnobError> {
        for name in knobs.keys() {
            if !self.knobs.contains_key(name) {
                return Err(KnobError::Unknown(name.clone()));
            }
        }
        for (name, spec) in &self.knobs {
            let value = knobs.get(name).ok_or_else(|| KnobError::Missing(name.clone()))?;
            spec.validate(name, value)?;
        }
        Ok(())
    }

    /// The knobs advisors search, in a stable (name) order.
    pub fn searched(&self) -> Vec<(&str, &KnobSpec)> {
        self.knobs.iter().filter(|(_, s)| s.is_searched()).map(|(n, s)| (n.as_str(), s)).collect()
    }

    /// Builds a knob map from one unit-cube point over [`Self::searched`]
    /// (one coordinate per searched knob, in that order); fixed knobs take
    /// their value.
    pub fn from_unit_point(&self, point: &[f64]) -> Knobs {
        let mut coords = point.iter();
        self.knobs
            .iter()
            .map(|(name, spec)| {
                let value = if spec.is_searched() {
                    spec.from_unit(coords.next().copied().unwrap_or(0.5))
                } else {
                    spec.from_unit(0.5)
                };
                (name.clone(), value)
            })
            .collect()
    }

    /// The unit-cube point of a knob map over [`Self::searched`].
    pub fn to_unit_point(&self, knobs: &Knobs) -> Vec<f64> {
        self.searched()
            .into_iter()
            .map(|(name, spec)| knobs.get(name).map(|v| spec.to_unit(v)).unwrap_or(0.5))
            .collect()
    }

    /// Narrows this space with a job's overrides: each override names a
    /// known knob and is either a value inside the template's space (the knob
    /// becomes fixed at it) or a space inside the template's space.
    pub fn with_overrides(&self, overrides: &BTreeMap<String, KnobOverride>) -> Result<KnobConfig, KnobError> {
        let mut out = self.clone();
        for (name, ov) in overrides {
            let spec = self.knobs.get(name).ok_or_else(|| KnobError::Unknown(name.clone()))?;
            let narrowed = match ov {
                KnobOverride::Value(v) => {
                    spec.validate(name, v)?;
                    KnobSpec::Fixed { value: v.clone() }
                }
                KnobOverride::Space(s) => {
                    s.check(name)?;
                    check_inside(name, s, spec)?;
                    s.clone()
                }
            };
            out.knobs.insert(name.clone(), narrowed);
        }
        Ok(out)
    }
}

/// A job's override of one knob: a plain value, or a narrower space.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum KnobOverride {
    Space(KnobSpec),
    Value(KnobValue),
}

/// Checks that the space `inner` lies inside `outer`.
fn check_inside(name: &str, inner: &KnobSpec, outer: &KnobSpec) -> Result<(), KnobError> {
    match inner {
        KnobSpec::Fixed { value } => outer.validate(name, value),
        KnobSpec::Categorical { values } => values.iter().try_for_each(|v| outer.validate(name, v)),
        KnobSpec::Integer { min, max, .. } => {
            outer.validate(name, &KnobValue::Int(*min))?;
            outer.validate(name, &KnobValue::Int(*max))
        }
        KnobSpec::Float { min, max, .. } => {
            outer.validate(name, &KnobValue::Float(*min))?;
            outer.validate(name, &KnobValue::Float(*max))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space() -> KnobConfig {
        let mut knobs = BTreeMap::new();
        knobs.insert("epochs".into(), KnobSpec::Fixed { value: KnobValue::Int(30) });
        knobs.insert(
            "activation".into(),
            KnobSpec::Categorical { values: vec![KnobValue::Str("relu".into()), KnobValue::Str("tanh".into())] },
        );
        knobs.insert("hidden".into(), KnobSpec::Integer { min: 4, max: 256, log: true });
        knobs.insert("lr".into(), KnobSpec::Float { min: 1e-4, max: 1e-1, log: true });
        knobs.insert("dropout".into(), KnobSpec::Float { min: 0.0, max: 0.5, log: false });
        KnobConfig { knobs, early_stopping: Some(EarlyStopping { patience: 5, min_delta: 0.0 }) }
    }

    #[test]
    fn values_read_from_plain_json() {
        let knobs: Knobs =
            serde_json::from_str(r#"{"epochs":30,"activation":"tanh","hidden":16,"lr":0.01,"dropout":0.1}"#).unwrap();
        assert_eq!(knobs["hidden"], KnobValue::Int(16));
        assert_eq!(knobs["lr"], KnobValue::Float(0.01));
        space().validate(&knobs).unwrap();
    }

    #[test]
    fn validation_names_the_fault() {
        let c = space();
        let mut knobs = c.from_unit_point(&[0.5; 4]);
        knobs.insert("colour".into(), KnobValue::Str("red".into()));
        assert_eq!(c.validate(&knobs), Err(KnobError::Unknown("colour".into())));
        knobs.remove("colour");
        knobs.insert("hidden".into(), KnobValue::Int(1000));
        assert!(matches!(c.validate(&knobs), Err(KnobError::OutOfRange { name, .. }) if name == "hidden"));
        knobs.insert("hidden".into(), KnobValue::Str("many".into()));
        assert!(matches!(c.validate(&knobs), Err(KnobError::WrongType { .. })));
        knobs.remove("hidden");
        assert_eq!(c.validate(&knobs), Err(KnobError::Missing("hidden".into())));
    }

    #[test]
    fn log_scale_spreads_evenly_in_log_space() {
        let lr = KnobSpec::Float { min: 1e-4, max: 1e-1, log: true };
        let mid = lr.from_unit(0.5).as_f64().unwrap();
        // Geometric, not arithmetic, midpoint of [1e-4, 1e-1].
        assert!((mid - (1e-4f64 * 1e-1).sqrt()).abs() < 1e-9, "{mid}");
        let hidden = KnobSpec::Integer { min: 4, max: 256, log: true };
        let below_16 = (0..1000).filter(|i| hidden.from_unit(*i as f64 / 999.0).as_i64().unwrap() < 16).count();
        // On a log scale a third of [4, 256] lies below 16; linearly, under 5 %.
        assert!((250..450).contains(&below_16), "{below_16}");
    }

    #[test]
    fn unit_mapping_round_trips_and_stays_valid() {
        let c = space();
        for i in 0..=20 {
            let u = i as f64 / 20.0;
            let knobs = c.from_unit_point(&[u, u, u, u]);
            c.validate(&knobs).unwrap();
            let back = c.from_unit_point(&c.to_unit_point(&knobs));
            assert_eq!(back, knobs);
        }
        // Integers at both ends are reachable.
        let h = KnobSpec::Integer { min: 4, max: 6, log: false };
        assert_eq!(h.from_unit(0.0), KnobValue::Int(4));
        assert_eq!(h.from_unit(1.0), KnobValue::Int(6));
    }

    #[test]
    fn overrides_narrow_but_never_widen() {
        let c = space();
        let mut ov = BTreeMap::new();
        ov.insert("hidden".into(), KnobOverride::Value(KnobValue::Int(32)));
        ov.insert("lr".into(), KnobOverride::Space(KnobSpec::Float { min: 1e-3, max: 1e-2, log: true }));
        let narrowed = c.with_overrides(&ov).unwrap();
        assert_eq!(narrowed.knobs["hidden"], KnobSpec::Fixed { value: KnobValue::Int(32) });
        let mut wide = BTreeMap::new();
        wide.insert("lr".into(), KnobOverride::Space(KnobSpec::Float { min: 1e-6, max: 1.0, log: true }));
        assert!(matches!(c.with_overrides(&wide), Err(KnobError::OutOfRange { .. })));
        let mut unknown = BTreeMap::new();
        unknown.insert("momentum".into(), KnobOverride::Value(KnobValue::Float(0.9)));
        assert_eq!(c.with_overrides(&unknown), Err(KnobError::Unknown("momentum".into())));
    }

    #[test]
    fn invalid_spaces_are_refused() {
        assert!(KnobSpec::Float { min: 0.0, max: 1.0, log: true }.check("x").is_err());
        assert!(KnobSpec::Integer { min: 5, max: 1, log: false }.check("x").is_err());
        let mixed = KnobSpec::Categorical { values: vec![KnobValue::Int(1), KnobValue::Str("a".into())] };
        assert!(mixed.check("x").is_err());
        assert!(KnobSpec::Categorical { values: vec![] }.check("x").is_err());
    }
}
