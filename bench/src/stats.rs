//! Samples and what the report says about them: median, spread, percentiles, and the ratio of
//! Cabinet to its baseline taken round by round (A and B measured back to back), because on a
//! shared machine only same-run ratios mean anything.

/// A set of measurements of one thing.
#[derive(Debug, Clone, Default)]
pub struct Samples(Vec<f64>);

impl Samples {
    pub fn push(&mut self, value: f64) {
        self.0.push(value);
    }

    pub fn last(&self) -> Option<f64> {
        self.0.last().copied()
    }

    pub fn extend(&mut self, other: &Samples) {
        self.0.extend_from_slice(&other.0);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    fn sorted(&self) -> Vec<f64> {
        let mut values = self.0.clone();
        values.sort_by(f64::total_cmp);
        values
    }

    /// The value below which `p` percent of the samples lie (nearest rank).
    pub fn percentile(&self, p: f64) -> f64 {
        let values = self.sorted();
        if values.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
        values[rank.clamp(1, values.len()) - 1]
    }

    pub fn median(&self) -> f64 {
        let values = self.sorted();
        match values.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => values[n / 2],
            n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
        }
    }

    pub fn min(&self) -> f64 {
        self.0.iter().copied().fold(f64::INFINITY, f64::min)
    }

    pub fn max(&self) -> f64 {
        self.0.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    }

    /// `median (min–max)`, with `digits` decimals.
    pub fn spread(&self, digits: usize) -> String {
        format!("{:.digits$} ({:.digits$}–{:.digits$})", self.median(), self.min(), self.max())
    }
}

/// Which way a target points.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// The ratio must be at least this.
    AtLeast(f64),
    /// The value must stay below this.
    Below(f64),
    /// The value must not exceed this.
    AtMost(f64),
    /// Reported only.
    None,
}

impl Target {
    pub fn describe(self, unit: &str) -> String {
        match self {
            Target::AtLeast(x) => format!("≥ {x}{unit}"),
            Target::Below(x) => format!("< {x}{unit}"),
            Target::AtMost(x) => format!("≤ {x}{unit}"),
            Target::None => "report".into(),
        }
    }

    /// Whether `value` meets the target (`None` for report-only figures).
    pub fn met(self, value: f64) -> Option<bool> {
        match self {
            Target::AtLeast(x) => Some(value >= x),
            Target::Below(x) => Some(value < x),
            Target::AtMost(x) => Some(value <= x),
            Target::None => None,
        }
    }
}

/// One line of the results table.
#[derive(Debug, Clone)]
pub struct Row {
    pub figure: String,
    pub cabinet: String,
    pub baseline: String,
    /// The ratio (or, for absolute figures, the value) the target is judged on.
    pub judged: Samples,
    pub judged_digits: usize,
    pub target: Target,
    pub unit: &'static str,
}

impl Row {
    pub fn markdown(&self) -> String {
        let met = match self.target.met(self.judged.median()) {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "—",
        };
        format!(
            "| {} | {} | {} | {}{} | {} | {} |",
            self.figure,
            self.cabinet,
            self.baseline,
            self.judged.spread(self.judged_digits),
            self.unit,
            self.target.describe(self.unit),
            met
        )
    }
}

/// The table's header.
pub const TABLE_HEADER: &str = "| figure | Cabinet (median) | baseline (median) | ratio or value: median (min–max) | target | |\n|---|---|---|---|---|---|";
