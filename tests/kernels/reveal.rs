//! The hybrid sampler's per-step kernels (shaders/reveal.wgsl) against
//! reference::reveal.

use samnet_core::gpu::DType;
use samnet_core::ops::reveal::{reveal, tempered_softmax};
use samnet_core::reference::reveal as reference;
use samnet_tests::*;

/// The tempered softmax equals the f64 reference on shapes that are not
/// multiples of the workgroup (vocab 300 > 256 threads), stays finite where
/// logits / τ exceed exp's f32 range, sums to 1 per row and is bit-for-bit
/// reproducible.
#[test]
fn reveal_tempered_softmax_matches_reference() {
    let mut rng = Rng::new(41);
    for (rows, vocab) in [(37, 67), (5, 300)] {
        let mut logits: Vec<f64> = rng.normals(rows * vocab).iter().map(|x| 3.0 * x).collect();
        // Row 1 far from 0: exp(logits / τ) alone would overflow f32.
        for x in &mut logits[vocab..2 * vocab] {
            *x += 100.0;
        }
        let (gl, probs) = (
            upload("logits", &[rows, vocab], &logits),
            zeros("probs", &[rows, vocab]),
        );
        for temperature in [0.6f32, 1.0] {
            let d = tempered_softmax(gpu(), &gl, temperature, &probs).unwrap();
            run(vec![d.clone()]);
            let got = read(&probs);
            let want = reference::tempered_softmax(&logits, rows, vocab, temperature as f64);
            check(
                &format!("tempered_softmax {rows}x{vocab} t={temperature}"),
                &got,
                &want,
                TOL_F32,
            );
            for (r, row) in got.chunks(vocab).enumerate() {
                let sum: f64 = row.iter().sum();
                assert!((sum - 1.0).abs() < 1e-5, "row {r} sums to {sum}");
            }
            run(vec![d]);
            assert_eq!(read(&probs), got, "not reproducible");
        }
    }
    let (gl, probs, wrong) = (
        zeros("logits", &[3, 10]),
        zeros("probs", &[3, 10]),
        zeros("wrong", &[3, 11]),
    );
    for bad in [0.0, -1.0, f32::INFINITY, f32::NAN] {
        assert!(
            tempered_softmax(gpu(), &gl, bad, &probs).is_err(),
            "t = {bad}"
        );
    }
    assert!(tempered_softmax(gpu(), &gl, 1.0, &wrong).is_err());
}

/// The per-row state of a reveal step, on the CPU and the GPU.
struct State {
    drawn: Vec<u32>,
    confidence: Vec<f64>,
    frozen: Vec<u32>,
    revealed: Vec<f64>,
}

/// 1000 rows of random draws and confidences; every 97th row starts revealed,
/// frozen to a token that differs from its draw. Hidden rows hold a sentinel
/// in `frozen` so a stray write shows.
fn initial_state(rows: usize) -> State {
    let mut rng = Rng::new(42);
    let drawn: Vec<u32> = (0..rows).map(|_| rng.below(5000) as u32).collect();
    let confidence: Vec<f64> = (0..rows).map(|_| rng.uniform() as f32 as f64).collect();
    let revealed: Vec<f64> = (0..rows)
        .map(|r| if r % 97 == 3 { 1.0 } else { 0.0 })
        .collect();
    let frozen: Vec<u32> = (0..rows)
        .map(|r| {
            if revealed[r] != 0.0 {
                drawn[r] + 7000
            } else {
                u32::MAX
            }
        })
        .collect();
    State {
        drawn,
        confidence,
        frozen,
        revealed,
    }
}

/// Runs one reveal with probability `p` on the GPU and the reference and
/// asserts both end in the same state, which it returns. The rows are
/// `sequences` sequences, the first of them sequence `first` of the run.
fn reveal_both(
    (key, stream): ([u32; 2], u32),
    (sequences, first): (usize, u32),
    p: f32,
    start: &State,
) -> State {
    let rows = start.drawn.len();
    let (gkey, step, drawn, confidence, frozen, revealed) = (
        upload_u32("key", &[3], &[key[0], key[1], first]),
        upload("step", &[4], &[p as f64, 0.0, 0.0, 0.0]),
        upload_u32("drawn", &[rows], &start.drawn),
        upload("confidence", &[rows], &start.confidence),
        upload_u32("frozen", &[rows], &start.frozen),
        upload("revealed", &[rows], &start.revealed),
    );
    run(vec![
        reveal(
            gpu(),
            (&gkey, stream),
            &step,
            (&drawn, sequences),
            &confidence,
            &frozen,
            &revealed,
        )
        .unwrap(),
    ]);
    let mut want = State {
        drawn: start.drawn.clone(),
        confidence: start.confidence.clone(),
        frozen: start.frozen.clone(),
        revealed: start.revealed.clone(),
    };
    let first_row = first as u64 * (rows / sequences) as u64;
    reference::reveal(
        (key, stream, first_row),
        p,
        &mut want.drawn,
        &mut want.confidence,
        &mut want.frozen,
        &mut want.revealed,
    );
    assert_eq!(read(&revealed), want.revealed, "revealed, p = {p}");
    assert_eq!(read_u32(&frozen), want.frozen, "frozen, p = {p}");
    assert_eq!(read_u32(&drawn), want.drawn, "drawn, p = {p}");
    assert_eq!(read(&confidence), want.confidence, "confidence, p = {p}");
    want
}

/// The reveal equals the reference exactly; at p = 0.3 the share revealed
/// among the hidden rows is within 4.5 binomial σ of 0.3; p = 1 reveals
/// every row, p = 0 none; rows revealed at entry show their frozen token with
/// confidence 1; a hidden row left hidden keeps its draw and confidence.
#[test]
fn reveal_freezes_a_random_share_and_shows_frozen_rows() {
    let (rows, key, stream) = (1000, [77u32, 3], 9);
    let start = initial_state(rows);
    let hidden: Vec<usize> = (0..rows).filter(|&r| start.revealed[r] == 0.0).collect();
    let pre: Vec<usize> = (0..rows).filter(|&r| start.revealed[r] != 0.0).collect();
    assert!(pre.len() >= 10);

    let shows_frozen = |s: &State| {
        for &r in &pre {
            assert_eq!(s.revealed[r], 1.0, "row {r}");
            assert_eq!(s.frozen[r], start.frozen[r], "row {r}");
            assert_eq!(s.drawn[r], start.frozen[r], "row {r}");
            assert_eq!(s.confidence[r], 1.0, "row {r}");
        }
    };

    let p = 0.3;
    let s = reveal_both((key, stream), (1, 0), p, &start);
    shows_frozen(&s);
    let newly = hidden.iter().filter(|&&r| s.revealed[r] != 0.0).count();
    let (n, pf) = (hidden.len() as f64, p as f64);
    let share = newly as f64 / n;
    let sigma = (pf * (1.0 - pf) / n).sqrt();
    println!("reveal share {share:.4} of {n} hidden rows, p {p}, sigma {sigma:.4}");
    assert!(
        (share - pf).abs() < 4.5 * sigma,
        "revealed {share:.4} of the hidden rows, p {p}"
    );
    for &r in &hidden {
        if s.revealed[r] != 0.0 {
            assert_eq!(s.frozen[r], start.drawn[r], "row {r}");
        } else {
            assert_eq!(s.frozen[r], u32::MAX, "row {r}");
            assert_eq!(s.confidence[r], start.confidence[r], "row {r}");
        }
        assert_eq!(s.drawn[r], start.drawn[r], "row {r}");
    }
    // Another stream reveals other rows.
    let other = reveal_both((key, stream + 1), (1, 0), p, &start);
    assert_ne!(other.revealed, s.revealed);

    let all = reveal_both((key, stream), (1, 0), 1.0, &start);
    shows_frozen(&all);
    assert!(all.revealed.iter().all(|&v| v == 1.0));
    for &r in &hidden {
        assert_eq!(all.frozen[r], start.drawn[r], "row {r}");
    }

    let none = reveal_both((key, stream), (1, 0), 0.0, &start);
    shows_frozen(&none);
    for &r in &hidden {
        assert_eq!(none.revealed[r], 0.0, "row {r}");
        assert_eq!(none.frozen[r], u32::MAX, "row {r}");
    }
}

#[test]
fn reveal_rejects_mismatched_shapes() {
    let g = gpu();
    let u = |name: &str, n: usize| g.zeros(name, &[n], DType::U32).unwrap();
    let (key, step, drawn, frozen) = (u("key", 3), zeros("step", &[4]), u("d", 10), u("fz", 10));
    let (confidence, revealed) = (zeros("c", &[10]), zeros("r", &[10]));
    let rows = (&drawn, 2);
    assert!(reveal(g, (&key, 0), &step, rows, &confidence, &frozen, &revealed).is_ok());
    let short = zeros("short", &[9]);
    assert!(reveal(g, (&key, 0), &step, rows, &short, &frozen, &revealed).is_err());
    assert!(reveal(g, (&key, 0), &step, rows, &confidence, &frozen, &short).is_err());
    let key2 = u("key2", 2);
    assert!(reveal(g, (&key2, 0), &step, rows, &confidence, &frozen, &revealed).is_err());
    // 10 rows are not 3 equal sequences.
    let uneven = (&drawn, 3);
    assert!(reveal(g, (&key, 0), &step, uneven, &confidence, &frozen, &revealed).is_err());
}

/// A batch whose first sequence is sequence k of the run reveals its rows as
/// one batch of the whole run reveals them: the draws count from the run's
/// first row, also past 2^32 rows, where the hash takes the index's high word.
#[test]
fn reveal_counts_rows_from_the_runs_first_sequence() {
    let (key, stream, seq) = ([5u32, 8], 11, 37);
    let whole = initial_state(5 * seq);
    let all = reveal_both((key, stream), (5, 0), 0.4, &whole);
    let tail = |s: &State| State {
        drawn: s.drawn[2 * seq..].to_vec(),
        confidence: s.confidence[2 * seq..].to_vec(),
        frozen: s.frozen[2 * seq..].to_vec(),
        revealed: s.revealed[2 * seq..].to_vec(),
    };
    let later = reveal_both((key, stream), (3, 2), 0.4, &tail(&whole));
    let want = tail(&all);
    assert_eq!(later.revealed, want.revealed);
    assert_eq!(later.frozen, want.frozen);
    // Sequence 200,000,000 of 37 rows starts past 2^32: the GPU's 64-bit
    // index matches the reference's, and the draws differ from the run's start.
    let far = reveal_both((key, stream), (5, 200_000_000), 0.4, &whole);
    assert_ne!(far.revealed, all.revealed);
}

/// Most confident first, leftmost first, and most confident first within
/// blocks of 8 rows (not dividing 37) counted from each sequence's own first
/// hidden row, on sequences of 37 rows (not a
/// multiple of the workgroup) and of 300 (more rows than threads), with
/// ties: the GPU equals the reference exactly; each sequence reveals
/// k = H − round(H·(1 − p)) of its H noisy rows, exactly those of highest
/// confidence (or the k leftmost, or the blocks' in order); p = 1 reveals all.
#[test]
fn reveal_ranked_freezes_the_first_ranked_rows_of_each_sequence() {
    use samnet_core::ops::reveal::{Rank, reveal_ranked};
    let cases = [(37usize, 5usize, 0.3f32), (300, 2, 0.55), (37, 3, 1.0)];
    for ((seq, count, p), rank) in cases.into_iter().flat_map(|case| {
        [Rank::Confidence, Rank::Blocks(1), Rank::Blocks(8)].map(|rank| (case, rank))
    }) {
        let rows = seq * count;
        let mut start = initial_state(rows);
        // Ties: a few equal confidences within each sequence.
        for r in (0..rows).step_by(5) {
            start.confidence[r] = 0.5;
        }
        // Blocks count from each sequence's first hidden row: its rows
        // before it are known (a prompt), frozen from the start.
        let origins: Vec<u32> = (0..count as u32).map(|b| (b * 5) % 13).collect();
        for (b, &origin) in origins.iter().enumerate() {
            for r in b * seq..b * seq + origin as usize {
                start.revealed[r] = 1.0;
                start.frozen[r] = start.drawn[r] + 7000;
            }
        }
        let block_origin = upload_u32("block_origin", &[count], &origins);
        let buffers = (
            upload("step", &[4], &[p as f64, 0.0, 0.0, 0.0]),
            upload_u32("drawn", &[rows], &start.drawn),
            upload("confidence", &[rows], &start.confidence),
            upload_u32("frozen", &[rows], &start.frozen),
            upload("revealed", &[rows], &start.revealed),
        );
        let (step, drawn, confidence, frozen, revealed) = &buffers;
        let state = [drawn, confidence, frozen, revealed];
        let blocks = (rank, &block_origin);
        run(vec![
            reveal_ranked(gpu(), seq, blocks, step, state).unwrap(),
        ]);
        let one_too_many = upload_u32("block_origin", &[count + 1], &vec![0; count + 1]);
        assert!(reveal_ranked(gpu(), seq, (rank, &one_too_many), step, state).is_err());
        let mut want = start;
        let before = want.revealed.clone();
        let conf_before = want.confidence.clone();
        reference::reveal_ranked(
            seq,
            (rank, &origins),
            p,
            &mut want.drawn,
            &mut want.confidence,
            &mut want.frozen,
            &mut want.revealed,
        );
        assert_eq!(
            read(revealed),
            want.revealed,
            "revealed, seq {seq}, p {p}, {rank:?}"
        );
        assert_eq!(
            read_u32(frozen),
            want.frozen,
            "frozen, seq {seq}, p {p}, {rank:?}"
        );
        assert_eq!(
            read_u32(drawn),
            want.drawn,
            "drawn, seq {seq}, p {p}, {rank:?}"
        );
        assert_eq!(
            read(confidence),
            want.confidence,
            "confidence, seq {seq}, p {p}, {rank:?}"
        );
        for (b, &origin) in origins.iter().enumerate() {
            let seq_rows = b * seq..(b + 1) * seq;
            let noisy: Vec<usize> = seq_rows.clone().filter(|&r| before[r] == 0.0).collect();
            let chosen: Vec<usize> = noisy
                .iter()
                .copied()
                .filter(|&r| want.revealed[r] == 1.0)
                .collect();
            // In f32, as the shader counts: at H·(1 − p) = x.5 f64 may round the other way.
            let h = noisy.len() as f32;
            let k = h - (h * (1.0 - p) + 0.5).floor();
            assert_eq!(
                chosen.len() as f32,
                k,
                "seq {b}: {} of {h} revealed",
                chosen.len()
            );
            // No row left noisy outranks a chosen one: an earlier block, or
            // the same block and a higher confidence.
            let block = |r: usize| match rank.block() {
                0 => 0,
                n => (r - b * seq).saturating_sub(origin as usize) / n as usize,
            };
            for &c in &chosen {
                for &u in noisy.iter().filter(|r| !chosen.contains(r)) {
                    assert!(
                        block(c) < block(u)
                            || (block(c) == block(u) && conf_before[c] >= conf_before[u]),
                        "seq {b}, {rank:?}: chose row {c} over row {u}"
                    );
                }
            }
        }
    }
}
