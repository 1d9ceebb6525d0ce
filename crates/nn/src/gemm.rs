//! Matrix products on plain `f32` slices through `matrixmultiply::sgemm`, which
//! picks its AVX2/FMA kernel at run time. Transposes are free: they only swap strides.

/// A read-only matrix view: element `(i, j)` is `data[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Mat<'a> {
    /// The row-major `rows x cols` matrix at the start of `data`.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Mat<'a> {
        assert!(
            data.len() >= rows * cols,
            "matrix {rows}x{cols} needs {} values, slice has {}",
            rows * cols,
            data.len()
        );
        Mat { data, rows, cols, row_stride: cols, col_stride: 1 }
    }

    /// The transpose, without copying.
    pub fn t(self) -> Mat<'a> {
        Mat { rows: self.cols, cols: self.rows, row_stride: self.col_stride, col_stride: self.row_stride, ..self }
    }
}

/// `c = a * b + beta * c`, with `c` the row-major `a.rows x b.cols` matrix at the
/// start of the slice. With `beta = 0`, `c`'s old contents are ignored (even NaN).
pub(crate) fn gemm(a: Mat, b: Mat, beta: f32, c: &mut [f32]) {
    assert_eq!(a.cols, b.rows, "inner dimensions differ");
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(c.len() >= m * n, "output {m}x{n} needs {} values, slice has {}", m * n, c.len());
    // SAFETY: `Mat::new` checked that `rows * cols` values fit in each input slice,
    // which bounds every element a row-major view or its transpose can address, and
    // `c` holds `m * n` values with row stride `n`.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.data.as_ptr(),
            a.row_stride as isize,
            a.col_stride as isize,
            b.data.as_ptr(),
            b.row_stride as isize,
            b.col_stride as isize,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// Copy `row` into every row of the row-major matrix `m` (rows of `row.len()` values).
pub(crate) fn fill_rows(m: &mut [f32], row: &[f32]) {
    for dst in m.chunks_exact_mut(row.len()) {
        dst.copy_from_slice(row);
    }
}

/// Add every row of the row-major matrix `m` (rows of `sum.len()` values) to `sum`.
pub(crate) fn add_column_sums(m: &[f32], sum: &mut [f32]) {
    for src in m.chunks_exact(sum.len()) {
        for (s, x) in sum.iter_mut().zip(src) {
            *s += x;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_and_transposes() {
        // a = [[1, 2, 3], [4, 5, 6]], b = [[1, 0], [0, 1], [1, 1]]
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let mut c = [f32::NAN; 4];
        gemm(Mat::new(&a, 2, 3), Mat::new(&b, 3, 2), 0.0, &mut c);
        assert_eq!(c, [4.0, 5.0, 10.0, 11.0]);
        // a * a^T = [[14, 32], [32, 77]], accumulated onto c
        gemm(Mat::new(&a, 2, 3), Mat::new(&a, 2, 3).t(), 1.0, &mut c);
        assert_eq!(c, [18.0, 37.0, 42.0, 88.0]);
        // a^T * a is 3x3
        let mut d = [0.0; 9];
        gemm(Mat::new(&a, 2, 3).t(), Mat::new(&a, 2, 3), 0.0, &mut d);
        assert_eq!(d, [17.0, 22.0, 27.0, 22.0, 29.0, 36.0, 27.0, 36.0, 45.0]);
    }

    #[test]
    fn rows_and_column_sums() {
        let mut m = [0.0; 6];
        fill_rows(&mut m, &[1.0, 2.0]);
        assert_eq!(m, [1.0, 2.0, 1.0, 2.0, 1.0, 2.0]);
        let mut s = [10.0, 0.0];
        add_column_sums(&m, &mut s);
        assert_eq!(s, [13.0, 6.0]);
    }
}
