//! The hybrid sampler's per-step ops (shaders/reveal.wgsl) in f64.

use super::random::uniform;
use crate::ops::reveal::Rank;

/// The salt of `reveal`'s draws in shaders/reveal.wgsl (`REVEAL_SALT`).
pub const REVEAL_SALT: u32 = 0x1656_67b1;

/// `softmax(logits[r, ·] / temperature)` per row of a (rows, vocab) matrix.
pub fn tempered_softmax(logits: &[f64], rows: usize, vocab: usize, temperature: f64) -> Vec<f64> {
    assert_eq!(logits.len(), rows * vocab, "logits must be (rows, vocab)");
    let mut out = Vec::with_capacity(logits.len());
    for row in logits.chunks(vocab) {
        let m = row
            .iter()
            .fold(f64::NEG_INFINITY, |m, &x| m.max(x / temperature));
        let e: Vec<f64> = row.iter().map(|x| (x / temperature - m).exp()).collect();
        let z: f64 = e.iter().sum();
        out.extend(e.iter().map(|x| x / z));
    }
    out
}

/// One reveal step with probability `p`, exactly as the shader, over rows
/// whose first is row `first_row` of the run: a row with `revealed[r] == 0`
/// is revealed (`revealed[r] = 1`, `frozen[r] = drawn[r]`) when
/// `uniform(first_row + r, REVEAL_SALT, key, stream) as f32 <= p`; a row
/// already revealed gets `drawn[r] = frozen[r]`, `confidence[r] = 1`.
pub fn reveal(
    (key, stream, first_row): ([u32; 2], u32, u64),
    p: f32,
    drawn: &mut [u32],
    confidence: &mut [f64],
    frozen: &mut [u32],
    revealed: &mut [f64],
) {
    let rows = drawn.len();
    assert!(
        confidence.len() == rows && frozen.len() == rows && revealed.len() == rows,
        "reveal: every per-row slice must hold {rows} rows"
    );
    for r in 0..rows {
        if revealed[r] == 0.0 {
            // The shader compares the f32 uniform with the f32 p.
            if uniform(first_row + r as u64, REVEAL_SALT, key, stream) as f32 <= p {
                revealed[r] = 1.0;
                frozen[r] = drawn[r];
            }
        } else {
            drawn[r] = frozen[r];
            confidence[r] = 1.0;
        }
    }
}

/// `reveal_ranked` exactly as the shader: per sequence of `seq` rows, of
/// its H noisy rows the k = H − floor(H·(1 − p) + 0.5) (in f32) that rank
/// first are revealed: the earlier block (`Rank::Blocks`, counted from the
/// sequence's `block_origin`), then the highest confidence, then the lower
/// row.
pub fn reveal_ranked(
    seq: usize,
    (rank, block_origin): (Rank, &[u32]),
    p: f32,
    drawn: &mut [u32],
    confidence: &mut [f64],
    frozen: &mut [u32],
    revealed: &mut [f64],
) {
    assert_eq!(
        block_origin.len(),
        drawn.len() / seq,
        "one origin per sequence"
    );
    for (b, &first) in block_origin.iter().enumerate() {
        let rows = b * seq..(b + 1) * seq;
        let noisy: Vec<usize> = rows.clone().filter(|&r| revealed[r] == 0.0).collect();
        let total = noisy.len() as f32;
        let k = (total - (total * (1.0 - p) + 0.5).floor()) as usize;
        let origin = b * seq + first as usize;
        let block = |r: usize| match rank.block() {
            0 => 0,
            n => r.saturating_sub(origin) / n as usize,
        };
        let mut order = noisy.clone();
        order.sort_by(|&i, &j| {
            (block(i).cmp(&block(j)))
                .then(confidence[j].total_cmp(&confidence[i]))
                .then(i.cmp(&j))
        });
        for r in rows {
            if revealed[r] != 0.0 {
                drawn[r] = frozen[r];
                confidence[r] = 1.0;
            }
        }
        for &r in &order[..k] {
            revealed[r] = 1.0;
            frozen[r] = drawn[r];
        }
    }
}
