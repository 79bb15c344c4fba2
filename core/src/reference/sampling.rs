//! Decoding during sampling (shaders/sampling.wgsl) in f64.

use super::random::gumbel;
use super::reveal::tempered_softmax;

/// The nucleus of one probability row, found by sorting: the smallest set
/// of likeliest tokens whose mass reaches `top_p` (every token at 1). With
/// it, how far `top_p` lies from the partial sums on either side of the cut,
/// so that a test can leave out rows where f32 rounding could move the cut.
pub fn nucleus(probs: &[f64], top_p: f64) -> (Vec<bool>, f64) {
    if top_p >= 1.0 {
        return (vec![true; probs.len()], f64::INFINITY);
    }
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    let mut kept = vec![false; probs.len()];
    let mut before = 0.0;
    for &v in &order {
        kept[v] = true;
        let after = before + probs[v];
        if after >= top_p {
            return (kept, (top_p - before).min(after - top_p));
        }
        before = after;
    }
    (kept, 0.0)
}

/// `sample_rows` per row of a (rows, vocab) matrix whose first row is row
/// `first_row` of the run: the Gumbel-max draw over the nucleus of
/// softmax(logits / temperature), its probability renormalised over the
/// nucleus, and the row's margin from [`nucleus`].
pub fn sample_rows(
    logits: &[f64],
    (rows, vocab): (usize, usize),
    (temperature, top_p): (f64, f64),
    (key, stream, first_row): ([u32; 2], u32, u64),
) -> Vec<(u32, f64, f64)> {
    let probs = tempered_softmax(logits, rows, vocab, temperature);
    (0..rows)
        .map(|r| {
            let (row, q) = (&logits[r * vocab..][..vocab], &probs[r * vocab..][..vocab]);
            let (kept, margin) = nucleus(q, top_p);
            let at = (first_row + r as u64) * vocab as u64;
            let score = |v: usize| row[v] / temperature + gumbel(at + v as u64, key, stream);
            let best = (0..vocab)
                .filter(|&v| kept[v])
                .fold(None, |b: Option<usize>, v| match b {
                    Some(b) if score(b) >= score(v) => Some(b),
                    _ => Some(v),
                })
                .expect("a nucleus holds at least one token");
            let mass: f64 = (0..vocab).filter(|&v| kept[v]).map(|v| q[v]).sum();
            (best as u32, q[best] / mass, margin)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nucleus_is_the_shortest_likeliest_prefix_reaching_top_p() {
        let probs = [0.1, 0.5, 0.15, 0.25];
        let (kept, margin) = nucleus(&probs, 0.7);
        assert_eq!(kept, [false, true, false, true]);
        assert!((margin - 0.05).abs() < 1e-12);
        assert_eq!(nucleus(&probs, 0.5).0, [false, true, false, false]);
        assert_eq!(nucleus(&probs, 0.9).0, [false, true, true, true]);
        assert_eq!(nucleus(&probs, 1.0).0, [true; 4]);
    }
}
