pub fn forward(tokens: &[u32], table: &[f64], d: usize, scale: f64) -> Vec<f64> {
    tokens
        .iter()
        .flat_map(|&t| table[t as usize * d..][..d].iter().map(move |v| scale * v))
        .collect()
}

pub fn backward(tokens: &[u32], dout: &[f64], vocab: usize, d: usize, scale: f64) -> Vec<f64> {
    let mut dt = vec![0.0; vocab * d];
    for (r, &t) in tokens.iter().enumerate() {
        for c in 0..d {
            dt[t as usize * d + c] += scale * dout[r * d + c];
        }
    }
    dt
}
