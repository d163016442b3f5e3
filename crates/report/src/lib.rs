//! One home for tuneup's reports: self-contained HTML pages (inline CSS, no scripts, no network) and inline SVG
//! charts, shared by `tuneup eval`, `tuneup train` and `tuneup ladder`.
//!
//! * [`bars`]: horizontal bars, a histogram, grouped bars;
//! * [`lines`]: line charts of several series over a numeric x axis (loss and metric curves);
//! * [`scatter`]: labelled points with an optional horizontal target line (metric against cost);
//! * [`page`]: the page shell and style every report uses.

pub mod bars;
pub mod lines;
pub mod page;
pub mod scatter;

pub use bars::{escape, grouped_bars, hbars, histogram, PALETTE};
pub use lines::{line_chart, Series};
pub use page::{page_end, page_start, STYLE};
pub use scatter::{scatter, Point};

/// Formats an axis tick value compactly (`0.25`, `12`, `1.5k`).
pub fn tick(v: f64) -> String {
    let a = v.abs();
    if a >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if a >= 1000.0 {
        format!("{:.1}k", v / 1000.0)
    } else if a >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else if a >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// The (low, high) range of `values` (finite ones), widened when flat so a chart never divides by zero.
pub fn range(values: impl IntoIterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.into_iter().filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        let pad = if lo.abs() > 1e-12 {
            lo.abs() * 0.1
        } else {
            1.0
        };
        return (lo - pad, hi + pad);
    }
    (lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_never_collapse() {
        assert_eq!(range([1.0, 3.0, f64::NAN]), (1.0, 3.0));
        let (lo, hi) = range([2.0, 2.0]);
        assert!(lo < 2.0 && hi > 2.0);
        assert_eq!(range(std::iter::empty()), (0.0, 1.0));
    }

    #[test]
    fn ticks_are_compact() {
        assert_eq!(tick(0.25), "0.25");
        assert_eq!(tick(12.0), "12");
        assert_eq!(tick(1500.0), "1.5k");
        assert_eq!(tick(0.012), "0.012");
    }
}
