fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

pub fn silu(x: &[f64]) -> Vec<f64> {
    x.iter().map(|&v| v * sigmoid(v)).collect()
}

pub fn silu_backward(x: &[f64], dy: &[f64]) -> Vec<f64> {
    x.iter()
        .zip(dy)
        .map(|(&v, g)| {
            let s = sigmoid(v);
            g * s * (1.0 + v * (1.0 - s))
        })
        .collect()
}

/// silu(a)·b for rows of h = [a | b] (2·hidden wide).
pub fn swiglu(h: &[f64], hidden: usize) -> Vec<f64> {
    h.chunks(2 * hidden)
        .flat_map(|row| (0..hidden).map(move |c| row[c] * sigmoid(row[c]) * row[hidden + c]))
        .collect()
}

pub fn swiglu_backward(h: &[f64], dout: &[f64], hidden: usize) -> Vec<f64> {
    let mut dh = vec![0.0; h.len()];
    for (r, row) in h.chunks(2 * hidden).enumerate() {
        for c in 0..hidden {
            let (a, b, g) = (row[c], row[hidden + c], dout[r * hidden + c]);
            let s = sigmoid(a);
            dh[r * 2 * hidden + c] = g * b * s * (1.0 + a * (1.0 - s));
            dh[r * 2 * hidden + hidden + c] = g * a * s;
        }
    }
    dh
}
