//! Plain-text tables that fit a terminal: the one formatter of the rewrite's and `inspect`'s
//! human output.
//!
//! Rendering never fails and never panics, whatever the cells hold: padding is counted by
//! hand (no `{:<w$}`, whose width is limited to `u16`), and every cell is elided in the middle
//! to at most [`MAX_CELL`] characters, so a 70,000-character initializer name prints as its
//! start, `…` and its end. This matters because the rewrite renders its report before the
//! output is renamed into place and prints it after: nothing after the commit point may fail.
//!
//! Fitting a width `W` (see [`Table::render`]): each column has a natural width (its longest
//! cell); while the line is wider than `W`, the elidable columns (names, schemes) shrink towards
//! [`SOFT_MIN`], then droppable columns are removed lowest priority first, then the elidable
//! columns shrink down to [`HARD_MIN`]. A table that still does not fit is printed as it is.

/// The longest a cell may print, in characters, even in `--wide` tables.
pub const MAX_CELL: usize = 120;
/// An elidable column shrinks to this width before any column is dropped.
pub const SOFT_MIN: usize = 16;
/// The narrowest an elidable column gets.
pub const HARD_MIN: usize = 10;
/// Spaces between columns.
const GAP: usize = 2;

/// One column's title and how it gives way when the table is too wide.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    /// The header cell.
    pub title: String,
    /// 0: never dropped; otherwise columns with a higher value are dropped first.
    pub drop: u8,
    /// Whether cells may be elided in the middle to fit (names, schemes).
    pub elide: bool,
}

impl Column {
    /// A column that is never dropped nor elided.
    pub fn fixed(title: impl Into<String>) -> Column {
        Column::new(title, 0, false)
    }

    /// A column with a title, a drop priority and whether it may be elided.
    pub fn new(title: impl Into<String>, drop: u8, elide: bool) -> Column {
        Column {
            title: title.into(),
            drop,
            elide,
        }
    }
}

/// A table: columns and rows of cells (a row shorter than the columns is padded with blanks).
#[derive(Clone, Debug, Default)]
pub struct Table {
    /// The columns.
    pub columns: Vec<Column>,
    /// The rows.
    pub rows: Vec<Vec<String>>,
}

/// `s` with at most `max` characters: when longer, its start and end joined by `…`, so both a
/// name's prefix (the module) and suffix (the parameter) stay readable.
pub fn elide_middle(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_owned();
    }
    if max == 0 {
        return String::new();
    }
    let keep = max - 1;
    let head = keep.div_ceil(2);
    let tail = keep - head;
    let mut out: String = s.chars().take(head).collect();
    out.push('…');
    out.extend(s.chars().skip(n - tail));
    out
}

/// `text` as lines of at most `width` characters (`None`: one line), broken at blanks;
/// continuation lines are indented by two spaces. A word longer than a line is elided in the
/// middle. Every line ends in `\n`.
pub fn wrap(text: &str, width: Option<usize>) -> String {
    let Some(width) = width else {
        return format!("{text}\n");
    };
    let width = width.max(HARD_MIN);
    let mut out = String::new();
    let mut line = String::new();
    let mut len = 0;
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let word = elide_middle(word, width - 2);
        let n = word.chars().count();
        if len > 0 && len + 1 + n > width {
            out.push_str(&line);
            out.push('\n');
            line.clear();
            line.push_str("  ");
            len = 2;
        } else if len > 0 {
            line.push(' ');
            len += 1;
        }
        line.push_str(&word);
        len += n;
    }
    out.push_str(&line);
    out.push('\n');
    out
}

impl Table {
    /// A table with these columns and no rows.
    pub fn new(columns: Vec<Column>) -> Table {
        Table {
            columns,
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// The table as lines ending in `\n`: a header, then the rows; columns left-aligned, two
    /// spaces apart, trailing blanks trimmed. `width`: fit that many columns (see the module
    /// doc); `None`: every column at its natural width (cells still capped at [`MAX_CELL`]).
    pub fn render(&self, width: Option<usize>) -> String {
        let n = self.columns.len();
        let cell = |r: &Vec<String>, i: usize| r.get(i).map_or(0, |c| c.chars().count());
        let mut widths: Vec<usize> = (0..n)
            .map(|i| {
                let body = self.rows.iter().map(|r| cell(r, i)).max().unwrap_or(0);
                body.max(self.columns[i].title.chars().count())
                    .min(MAX_CELL)
            })
            .collect();
        let mut shown = vec![true; n];
        if let Some(w) = width {
            fit(&self.columns, &mut widths, &mut shown, w);
        }
        let mut out = String::new();
        let header: Vec<String> = self.columns.iter().map(|c| c.title.clone()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for i in (0..n).filter(|&i| shown[i]) {
                let text = elide_middle(row.get(i).map_or("", String::as_str), widths[i]);
                let pad = widths[i].saturating_sub(text.chars().count());
                line.push_str(&text);
                line.extend(std::iter::repeat_n(' ', pad + GAP));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Shrinks `widths` and clears `shown` until the shown columns fit in `width` (see the module
/// doc for the order).
fn fit(cols: &[Column], widths: &mut [usize], shown: &mut [bool], width: usize) {
    let total = |widths: &[usize], shown: &[bool]| {
        let k = shown.iter().filter(|&&s| s).count();
        widths
            .iter()
            .zip(shown)
            .filter(|(_, s)| **s)
            .map(|(w, _)| *w)
            .sum::<usize>()
            + GAP * k.saturating_sub(1)
    };
    let natural = widths.to_vec();
    shrink(cols, widths, shown, width, SOFT_MIN, &total);
    let mut order: Vec<usize> = (0..cols.len()).filter(|&i| cols[i].drop > 0).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(cols[i].drop));
    for i in order {
        if total(widths, shown) <= width {
            break;
        }
        shown[i] = false;
    }
    shrink(cols, widths, shown, width, HARD_MIN, &total);
    // A dropped column may have freed more room than needed: give it back to the elided
    // columns, narrowest first, up to their natural width.
    while total(widths, shown) < width {
        let narrowest = (0..cols.len())
            .filter(|&i| shown[i] && widths[i] < natural[i])
            .min_by_key(|&i| (widths[i], i));
        match narrowest {
            Some(i) => widths[i] += 1,
            None => break,
        }
    }
}

/// Narrows the widest shown elidable column by one character at a time, down to `min`, until
/// the table fits.
fn shrink(
    cols: &[Column],
    widths: &mut [usize],
    shown: &[bool],
    width: usize,
    min: usize,
    total: &dyn Fn(&[usize], &[bool]) -> usize,
) {
    while total(widths, shown) > width {
        let widest = (0..cols.len())
            .filter(|&i| shown[i] && cols[i].elide && widths[i] > min)
            .max_by_key(|&i| (widths[i], std::cmp::Reverse(i)));
        match widest {
            Some(i) => widths[i] -= 1,
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elision_keeps_both_ends() {
        assert_eq!(elide_middle("abcdefghij", 10), "abcdefghij");
        assert_eq!(elide_middle("abcdefghij", 5), "ab…ij");
        assert_eq!(elide_middle("abcdefghij", 6), "abc…ij");
        assert_eq!(elide_middle("abcdefghij", 1), "…");
        assert_eq!(elide_middle("abc", 0), "");
        assert_eq!(elide_middle(&"é".repeat(70_000), 9).chars().count(), 9);
    }

    #[test]
    fn wrapping_breaks_at_blanks_and_indents() {
        assert_eq!(wrap("a bb ccc dddd", Some(10)), "a bb ccc\n  dddd\n");
        assert_eq!(wrap("a bb ccc dddd", None), "a bb ccc dddd\n");
        let long = wrap(&format!("x {}", "y".repeat(100)), Some(20));
        assert!(long.lines().all(|l| l.chars().count() <= 20), "{long}");
    }

    #[test]
    fn huge_cells_render_without_panicking() {
        let mut t = Table::new(vec![Column::new("name", 0, true), Column::fixed("shape")]);
        t.push(vec!["n".repeat(70_000), format!("{:?}", vec![1; 100_001])]);
        for w in [None, Some(80), Some(0)] {
            let s = t.render(w);
            assert!(s.lines().all(|l| l.chars().count() <= 2 * MAX_CELL + GAP));
        }
    }

    #[test]
    fn fitting_elides_then_drops_by_priority() {
        let mut t = Table::new(vec![
            Column::new("name", 0, true),
            Column::new("op", 1, false),
            Column::new("fans", 2, false),
        ]);
        t.push(vec!["x".repeat(40), "MatMul".into(), "1024/1024".into()]);
        let full = t.render(None);
        assert_eq!(
            full.lines().nth(1).unwrap().chars().count(),
            40 + 2 + 6 + 2 + 9
        );
        // 30 columns: the name shrinks to 20, then `fans` (drop 2) goes (20 + 2 + 6 = 28), and
        // the name gets the 2 freed characters back.
        let s = t.render(Some(30));
        assert_eq!(
            s.lines().next().unwrap(),
            format!("name{}op", " ".repeat(20))
        );
        assert!(s.lines().all(|l| l.chars().count() <= 30), "{s}");
        // 20 columns: `op` goes too, and the name shrinks to 20.
        let s = t.render(Some(20));
        assert_eq!(s.lines().nth(1).unwrap(), "xxxxxxxxxx…xxxxxxxxx");
    }
}
