//! Cleaning steps on a [`Frame`], each a plain function so it can be switched
//! off and tested alone: order, duplicates, interval detection,
//! regularisation, long gaps, gap filling, unfilled rows. Outliers are not
//! handled here: the trainers clip model inputs (`series::outliers`).

use series::{Column, Frame};

use crate::error::PreprocessError;

/// `YYYY-MM-DD HH:MM:SS` UTC for messages.
pub fn show_ts(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|dt| dt.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| format!("{ms} ms"))
}

fn data_err(part: &str, message: String) -> PreprocessError {
    PreprocessError::Data { part: part.to_string(), message }
}

/// Replace infinities with NaN: they are treated as missing values.
pub fn non_finite_to_nan(frame: &mut Frame) {
    for c in &mut frame.columns {
        for v in c.values.iter_mut().filter(|v| v.is_infinite()) {
            *v = f64::NAN;
        }
    }
}

/// Keep rows `idx` in that order.
fn take(frame: &Frame, idx: &[usize]) -> Frame {
    Frame {
        timestamps: idx.iter().map(|&i| frame.timestamps[i]).collect(),
        columns: frame
            .columns
            .iter()
            .map(|c| Column { name: c.name.clone(), values: idx.iter().map(|&i| c.values[i]).collect() })
            .collect(),
    }
}

/// Sort rows by timestamp (stable). With `allow` false an unsorted part is
/// an error. Returns whether rows moved.
pub fn sort(frame: &mut Frame, allow: bool, part: &str) -> Result<bool, PreprocessError> {
    let Some(i) = frame.timestamps.windows(2).position(|w| w[1] < w[0]) else { return Ok(false) };
    if !allow {
        return Err(data_err(
            part,
            format!(
                "timestamps go backwards at row {} ({} after {}); enable clean.sort",
                i + 2,
                show_ts(frame.timestamps[i + 1]),
                show_ts(frame.timestamps[i])
            ),
        ));
    }
    let mut idx: Vec<usize> = (0..frame.len()).collect();
    idx.sort_by_key(|&i| frame.timestamps[i]);
    *frame = take(frame, &idx);
    Ok(true)
}

/// Drop rows whose timestamp equals the previous row's (keep the first; the
/// frame is sorted). With `allow` false a duplicate is an error. Returns the
/// number dropped.
pub fn drop_duplicates(frame: &mut Frame, allow: bool, part: &str) -> Result<usize, PreprocessError> {
    let Some(first) = frame.timestamps.windows(2).position(|w| w[1] == w[0]) else { return Ok(0) };
    if !allow {
        return Err(data_err(
            part,
            format!(
                "timestamp {} appears more than once (sorted rows {} and {}); enable clean.drop_duplicates",
                show_ts(frame.timestamps[first]),
                first + 1,
                first + 2
            ),
        ));
    }
    let keep: Vec<usize> =
        (0..frame.len()).filter(|&i| i == 0 || frame.timestamps[i] != frame.timestamps[i - 1]).collect();
    let dropped = frame.len() - keep.len();
    *frame = take(frame, &keep);
    Ok(dropped)
}

/// The most common positive step between consecutive timestamps (ties: the
/// smaller step).
pub fn detect_interval(timestamps: &[i64]) -> Option<i64> {
    let mut steps: Vec<i64> = timestamps.windows(2).map(|w| w[1].saturating_sub(w[0])).filter(|d| *d > 0).collect();
    steps.sort_unstable();
    let mut best: Option<(i64, usize)> = None;
    for run in steps.chunk_by(|a, b| a == b) {
        if best.is_none_or(|(_, n)| run.len() > n) {
            best = Some((run[0], run.len()));
        }
    }
    best.map(|(step, _)| step)
}

/// Put the rows on the grid `anchor + k * interval`: each row goes to the
/// nearest slot, rows sharing a slot are averaged (NaN ignored), and slots
/// without rows become NaN rows. Returns the new frame and the number of
/// slots added.
pub fn regularize(frame: Frame, interval: i64, anchor: i64, part: &str) -> Result<(Frame, usize), PreprocessError> {
    let n = frame.len();
    if n == 0 {
        return Ok((frame, 0));
    }
    // Slot arithmetic in i128: timestamps and intervals from input cannot overflow it.
    let (anchor_w, interval_w) = (i128::from(anchor), i128::from(interval));
    let slot = |ts: i64| (i128::from(ts) - anchor_w + interval_w / 2).div_euclid(interval_w);
    let first = slot(frame.timestamps[0]);
    let last = slot(frame.timestamps[n - 1]);
    let already =
        frame.timestamps.iter().enumerate().all(|(i, &t)| i128::from(t) == anchor_w + (first + i as i128) * interval_w);
    if already {
        return Ok((frame, 0));
    }
    let slots = last - first + 1;
    // A wrong interval or a stray timestamp years away would explode the grid.
    if slots > (n as i128).saturating_mul(10).saturating_add(10_000) {
        return Err(data_err(
            part,
            format!(
                "regularising {n} rows from {} to {} at {interval} ms would create {slots} rows; \
                 check interval_ms and the timestamps",
                show_ts(frame.timestamps[0]),
                show_ts(frame.timestamps[n - 1])
            ),
        ));
    }
    let grid: Option<Vec<i64>> = (0..slots).map(|k| i64::try_from(anchor_w + (first + k) * interval_w).ok()).collect();
    let Some(timestamps) = grid else {
        return Err(data_err(part, format!("regularising at {interval} ms puts a row outside the timestamp range")));
    };
    let slots = slots as usize;
    let index: Vec<usize> = frame.timestamps.iter().map(|&t| (slot(t) - first) as usize).collect();
    // Sorted rows: slots never decrease, so distinct slots are where they change.
    let occupied = 1 + index.windows(2).filter(|w| w[1] != w[0]).count();
    let mut counts = vec![0u32; slots];
    let mut columns = Vec::with_capacity(frame.columns.len());
    // Old columns are dropped one by one: the data never exists twice.
    for c in frame.columns {
        let mut values = vec![0.0f64; slots];
        counts.fill(0);
        for (&k, &v) in index.iter().zip(&c.values) {
            if !v.is_nan() {
                values[k] += v;
                counts[k] += 1;
            }
        }
        for (v, &k) in values.iter_mut().zip(&counts) {
            *v = if k == 0 { f64::NAN } else { *v / k as f64 };
        }
        columns.push(Column { name: c.name, values });
    }
    Ok((Frame { timestamps, columns }, slots - occupied))
}

/// A part with more than this share of its rows inside gaps longer than
/// `clean.fill_limit` fails ("mostly gap"): too little of it was measured.
pub const MAX_LONG_GAP_SHARE: f64 = 0.5;

/// Rows inside a run of missing values longer than `limit` rows in any
/// column (`limit` 0: no run is too long).
pub fn long_gap_rows(frame: &Frame, limit: usize) -> Vec<bool> {
    let mut mask = vec![false; frame.len()];
    if limit == 0 {
        return mask;
    }
    for c in &frame.columns {
        let mut i = 0;
        while i < c.values.len() {
            let run = c.values[i..].iter().take_while(|v| v.is_nan()).count();
            if run > limit {
                mask[i..i + run].iter_mut().for_each(|m| *m = true);
            }
            i += run.max(1);
        }
    }
    mask
}

/// Runs of `true` in `mask` as inclusive `[first, last]` timestamps.
pub fn ranges(timestamps: &[i64], mask: &[bool]) -> Vec<[i64; 2]> {
    let mut out: Vec<[i64; 2]> = Vec::new();
    let mut open = false;
    for (&t, &m) in timestamps.iter().zip(mask) {
        match (m, open, out.last_mut()) {
            (true, true, Some(r)) => r[1] = t,
            (true, _, _) => out.push([t, t]),
            _ => {}
        }
        open = m;
    }
    out
}

/// Whether each row of `timestamps` lies inside one of `ranges` (sorted).
pub fn in_ranges(timestamps: &[i64], ranges: &[[i64; 2]]) -> Vec<bool> {
    timestamps
        .iter()
        .map(|t| {
            let i = ranges.partition_point(|r| r[1] < *t);
            ranges.get(i).is_some_and(|r| r[0] <= *t)
        })
        .collect()
}

/// The rows of `frame` where `mask` is false.
pub fn without(frame: &Frame, mask: &[bool]) -> Frame {
    let keep: Vec<usize> = (0..frame.len()).filter(|&i| !mask[i]).collect();
    take(frame, &keep)
}

/// Fill runs of NaN, whatever their length (long ones are recorded apart,
/// see [`long_gap_rows`]). Forward fill needs a value before the run, linear
/// one on both sides; constant fills any run. Returns the number of values filled.
pub fn fill(frame: &mut Frame, method: crate::config::FillMethod, value: f64) -> usize {
    use crate::config::FillMethod;
    if method == FillMethod::None {
        return 0;
    }
    let mut filled = 0;
    for c in &mut frame.columns {
        let v = &mut c.values;
        let n = v.len();
        let mut i = 0;
        while i < n {
            if !v[i].is_nan() {
                i += 1;
                continue;
            }
            let start = i;
            while i < n && v[i].is_nan() {
                i += 1;
            }
            let (len, before, after) = (i - start, start.checked_sub(1).map(|j| v[j]), (i < n).then(|| v[i]));
            match (method, before, after) {
                (FillMethod::Constant, _, _) => v[start..i].iter_mut().for_each(|x| *x = value),
                (FillMethod::Ffill, Some(b), _) => v[start..i].iter_mut().for_each(|x| *x = b),
                (FillMethod::Linear, Some(b), Some(a)) => {
                    for (k, x) in v[start..i].iter_mut().enumerate() {
                        *x = b + (a - b) * (k + 1) as f64 / (len + 1) as f64;
                    }
                }
                _ => continue,
            }
            filled += len;
        }
    }
    filled
}

/// Drop leading and trailing rows that miss a value; interior rows that
/// still miss one (only `fill = "none"` leaves any) are dropped with `drop`
/// or are an error naming the column and the time. Returns the number of
/// rows dropped.
pub fn drop_unfilled(frame: &mut Frame, drop: bool, part: &str) -> Result<usize, PreprocessError> {
    let complete = |i: usize| frame.columns.iter().all(|c| !c.values[i].is_nan());
    let n = frame.len();
    let Some(start) = (0..n).find(|&i| complete(i)) else {
        let column = frame.columns.iter().find(|c| c.values.iter().all(|v| v.is_nan())).map(|c| c.name.clone());
        return Err(data_err(
            part,
            match column {
                Some(c) => format!("column `{c}` has no values at all"),
                None => "no row has a value in every column".to_string(),
            },
        ));
    };
    let end = (0..n).rev().find(|&i| complete(i)).map_or(n, |i| i + 1);
    let mut keep: Vec<usize> = Vec::with_capacity(end - start);
    for i in start..end {
        if complete(i) {
            keep.push(i);
        } else if !drop {
            let c = frame.columns.iter().find(|c| c.values[i].is_nan()).map(|c| c.name.as_str()).unwrap_or_default();
            let run = frame.columns.iter().find(|col| col.name == c).map_or(1, |col| {
                col.values[i..].iter().take_while(|v| v.is_nan()).count()
                    + col.values[..i].iter().rev().take_while(|v| v.is_nan()).count()
            });
            return Err(data_err(
                part,
                format!(
                    "column `{c}` has no value at {} (row {} after cleaning): a gap of {run} rows left unfilled \
                     by clean.fill = none; choose a fill method, set clean.drop_unfilled, or fix the input",
                    show_ts(frame.timestamps[i]),
                    i + 1
                ),
            ));
        }
    }
    let dropped = n - keep.len();
    if dropped > 0 {
        *frame = take(frame, &keep);
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FillMethod;

    fn frame(ts: &[i64], v: &[f64]) -> Frame {
        Frame::new(ts.to_vec(), vec![Column::new("v", v.to_vec())]).unwrap()
    }

    #[test]
    fn sort_and_duplicates() {
        let mut f = frame(&[3, 1, 2, 2], &[30., 10., 20., 21.]);
        assert!(sort(&mut f, true, "train").unwrap());
        assert_eq!(f.timestamps, vec![1, 2, 2, 3]);
        assert_eq!(f.column("v").unwrap(), &[10., 20., 21., 30.], "stable");
        assert_eq!(drop_duplicates(&mut f, true, "train").unwrap(), 1);
        assert_eq!(f.column("v").unwrap(), &[10., 20., 30.]);
        let e = sort(&mut frame(&[0, 120_000, 60_000], &[1., 2., 3.]), false, "train").unwrap_err();
        assert_eq!(
            e.to_string(),
            "train part: timestamps go backwards at row 3 (1970-01-01 00:01:00 after 1970-01-01 00:02:00); enable clean.sort"
        );
        let e = drop_duplicates(&mut frame(&[0, 0], &[1., 2.]), false, "test").unwrap_err();
        assert!(e.to_string().contains("appears more than once"), "{e}");
    }

    #[test]
    fn interval_is_the_most_common_step() {
        assert_eq!(detect_interval(&[0, 120, 240, 600, 720, 840]), Some(120));
        assert_eq!(detect_interval(&[0, 60, 120, 240]), Some(60));
        assert_eq!(detect_interval(&[5]), None);
    }

    #[test]
    fn regularize_snaps_averages_and_opens_gaps() {
        // interval 10, anchor 0: rows at 0, 11 (-> 10), 9 (-> 10), 40
        let f = frame(&[0, 9, 11, 40], &[1., 2., 4., 5.]);
        let (r, added) = regularize(f, 10, 0, "train").unwrap();
        assert_eq!(r.timestamps, vec![0, 10, 20, 30, 40]);
        let v = r.column("v").unwrap();
        assert_eq!(&v[..2], &[1., 3.]);
        assert!(v[2].is_nan() && v[3].is_nan());
        assert_eq!(v[4], 5.);
        assert_eq!(added, 2);
        // A test part continues the training grid.
        let (t, _) = regularize(frame(&[52, 61], &[1., 2.]), 10, 0, "test").unwrap();
        assert_eq!(t.timestamps, vec![50, 60]);
        let e = regularize(frame(&[0, 10, 10_000_000], &[1., 2., 3.]), 10, 0, "train").unwrap_err();
        assert!(e.to_string().contains("would create 1000001 rows"), "{e}");
    }

    #[test]
    fn fill_methods_and_limit() {
        let nan = f64::NAN;
        let base = [nan, 1., nan, nan, 4., nan, nan, nan, nan, 9., nan];
        let run = |m| {
            let mut f = frame(&(0..11).collect::<Vec<_>>(), &base);
            let n = fill(&mut f, m, -1.0);
            (n, f.column("v").unwrap().to_vec())
        };
        let (n, v) = run(FillMethod::Linear);
        assert_eq!(n, 6, "every interior run, however long");
        assert_eq!(&v[1..10], &[1., 2., 3., 4., 5., 6., 7., 8., 9.]);
        assert!(v[0].is_nan() && v[10].is_nan(), "edges stay");
        let (n, v) = run(FillMethod::Ffill);
        assert_eq!(n, 7);
        assert_eq!(&v[1..11], &[1., 1., 1., 4., 4., 4., 4., 4., 9., 9.]);
        let (n, v) = run(FillMethod::Constant);
        assert_eq!(n, 8);
        assert_eq!((v[0], v[2], v[10]), (-1., -1., -1.));
        assert_eq!(run(FillMethod::None).0, 0);
    }

    #[test]
    fn long_gaps_are_rows_in_a_run_over_the_limit_in_any_column() {
        let nan = f64::NAN;
        let f = Frame::new(
            (0..10).map(|i| i * 10).collect(),
            vec![
                Column::new("a", vec![1., nan, nan, nan, 5., 6., nan, nan, 9., 10.]),
                Column::new("b", vec![1., 2., 3., 4., 5., nan, nan, nan, 9., 10.]),
            ],
        )
        .unwrap();
        let m = long_gap_rows(&f, 2);
        let want = [false, true, true, true, false, true, true, true, false, false];
        assert_eq!(m, want, "a: rows 1-3; b: rows 5-7; a's 2-row run is short");
        assert_eq!(ranges(&f.timestamps, &m), vec![[10, 30], [50, 70]]);
        assert_eq!(long_gap_rows(&f, 3), vec![false; 10]);
        assert_eq!(long_gap_rows(&f, 0), vec![false; 10], "0: no limit");
        assert_eq!(
            in_ranges(&[0, 10, 30, 40, 50, 70, 80], &[[10, 30], [50, 70]]),
            [false, true, true, false, true, true, false]
        );
        assert_eq!(without(&f, &m).timestamps, vec![0, 40, 80, 90]);
        assert_eq!(ranges(&[1, 2, 3], &[true, true, true]), vec![[1, 3]]);
        assert!(ranges(&[1, 2], &[false, false]).is_empty());
    }

    #[test]
    fn unfilled_rows_are_trimmed_dropped_or_reported() {
        let nan = f64::NAN;
        let mut f = frame(&[0, 1, 2, 3, 4], &[nan, 1., 2., 3., nan]);
        assert_eq!(drop_unfilled(&mut f, false, "train").unwrap(), 2);
        assert_eq!(f.timestamps, vec![1, 2, 3]);
        let mut f = frame(&[0, 120_000, 240_000], &[1., nan, 3.]);
        let e = drop_unfilled(&mut f.clone(), false, "train").unwrap_err();
        assert!(
            e.to_string().starts_with(
                "train part: column `v` has no value at 1970-01-01 00:02:00 (row 2 after cleaning): a gap of 1 rows \
                 left unfilled by clean.fill = none"
            ),
            "{e}"
        );
        assert_eq!(drop_unfilled(&mut f, true, "train").unwrap(), 1);
        let e = drop_unfilled(&mut frame(&[0, 1], &[nan, nan]), true, "test").unwrap_err();
        assert_eq!(e.to_string(), "test part: column `v` has no values at all");
    }
}
