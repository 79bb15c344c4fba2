use samnet_core::ops::attention::AttnShape;
use samnet_core::ops::attention_topk::TopkAttention;
use samnet_core::reference::attention::HeadLayout;
use samnet_core::reference::{attention_softmax, attention_topk as reference};
use samnet_tests::*;

fn layout(s: AttnShape) -> HeadLayout {
    HeadLayout {
        seq: s.seq,
        d: s.d_model(),
        head_dim: s.head_dim,
    }
}

/// The kept key sets (order within a set does not change the output).
fn selections(qkv: &[f64], s: AttnShape, topk: usize) -> Vec<Vec<usize>> {
    let heads = s.head_start..s.head_start + s.head_count;
    let selected = reference::forward(qkv, s.batch, layout(s), heads, topk).1;
    let mut sets: Vec<Vec<usize>> = selected.into_iter().flat_map(|sel| sel.kept).collect();
    sets.iter_mut().for_each(|set| set.sort_unstable());
    sets
}

fn case(head_dim: usize, topk: usize, seed: u64) {
    let s = AttnShape {
        batch: 2,
        seq: 37,
        n_heads: 3,
        head_dim,
        head_start: 1,
        head_count: 2,
    };
    let (rows, d) = (s.batch * s.seq, s.d_model());
    let label = format!("topk k={topk} dh={head_dim}");
    let mut rng = Rng::new(seed);
    let qkv = rng.normals(rows * 3 * d);
    let dout = rng.normals(rows * d);
    let heads = s.head_start..s.head_start + s.head_count;
    let fwd = |v: &[f64]| reference::forward(v, s.batch, layout(s), heads.clone(), topk).0;
    let head0 = |i: usize, width: usize| (i % width) % d < head_dim;

    let attn = TopkAttention::new(gpu(), s, topk, "topk").unwrap();
    let (gqkv, gout) = (
        upload("qkv", &[rows, 3 * d], &qkv),
        upload("out", &[rows, d], &vec![9.0; rows * d]),
    );
    let forward = vec![attn.forward(gpu(), &gqkv, &gout).unwrap()];
    run(forward.clone());
    let got = read(&gout);
    assert!(
        (0..got.len())
            .filter(|&i| head0(i, d))
            .all(|i| got[i] == 9.0),
        "{label}: head 0 written"
    );
    let masked = |v: Vec<f64>| {
        v.into_iter()
            .enumerate()
            .map(|(i, x)| if head0(i, d) { 0.0 } else { x })
            .collect::<Vec<_>>()
    };
    let got = masked(got);
    check(&format!("{label} fwd"), &got, &fwd(&qkv), TOL_F32);
    let full_softmax = topk >= s.seq;
    if full_softmax {
        let want = attention_softmax::forward(&qkv, s.batch, layout(s), heads.clone(), None);
        check(
            &format!("{label} fwd vs full softmax ref"),
            &got,
            &want,
            TOL_F32,
        );
    }

    let want = reference::backward(&qkv, &dout, s.batch, layout(s), heads.clone(), topk);
    let (gdout, gdqkv) = (
        upload("dout", &[rows, d], &dout),
        upload("dqkv", &[rows, 3 * d], &vec![5.0; rows * 3 * d]),
    );
    run(attn.backward(gpu(), &gqkv, &gdout, &gdqkv).unwrap());
    let got = read(&gdqkv);
    assert!(
        (0..got.len())
            .filter(|&i| head0(i, 3 * d))
            .all(|i| got[i] == 5.0),
        "{label}: head 0 of dqkv written"
    );
    let got: Vec<f64> = got
        .iter()
        .enumerate()
        .map(|(i, g)| if head0(i, 3 * d) { 0.0 } else { *g })
        .collect();
    check(&format!("{label} bwd gpu vs ref"), &got, &want, TOL_F32);
    if full_softmax {
        let full =
            attention_softmax::backward(&qkv, &dout, s.batch, layout(s), heads.clone(), None);
        check(
            &format!("{label} bwd vs full softmax ref"),
            &got,
            &full,
            TOL_F32,
        );
    }

    // Finite differences are only meaningful where ±eps keeps every selection.
    // Candidates come from the handled heads only (head 0's zero gradient is
    // covered by the untouched-columns check above).
    let base = selections(&qkv, s, topk);
    let handled: Vec<usize> = (0..qkv.len()).filter(|&i| !head0(i, 3 * d)).collect();
    let candidates: Vec<usize> = coords(&mut rng, handled.len(), 60)
        .into_iter()
        .map(|c| handled[c])
        .collect();
    let mut stable = Vec::new();
    let mut skipped = 0;
    for &i in &candidates {
        let shifted = |delta: f64| {
            let mut v = qkv.clone();
            v[i] += delta;
            selections(&v, s, topk)
        };
        if shifted(1e-2) == base && shifted(-1e-2) == base {
            stable.push(i);
        } else {
            skipped += 1;
        }
    }
    println!(
        "{label}: {skipped} of {} coordinates skipped (selection changes within ±1e-2)",
        candidates.len()
    );
    assert!(stable.len() >= 45, "{label}: too few stable coordinates");
    check_fd(
        &format!("{label} ref vs fd"),
        &want,
        |v| dot(&fwd(v), &dout),
        &qkv,
        &stable,
        1e-6,
        TOL_FD_F64,
    );
    let mut gpu_fwd = gpu_forward(&gqkv, &qkv, &forward, &gout);
    check_fd(
        &format!("{label} gpu vs fd"),
        &got,
        |v| dot(&masked(gpu_fwd(v)), &dout),
        &qkv,
        &stable,
        1e-2,
        TOL_FD_F32,
    );
}

#[test]
fn topk_5_and_16() {
    case(8, 5, 140);
    case(12, 16, 141);
    // Head vectors that do not start on quads: read an element at a time.
    case(7, 5, 146);
}

#[test]
fn topk_and_head_dim_of_the_32_capacity() {
    case(24, 24, 144);
}

#[test]
fn topk_of_one_and_at_least_the_sequence() {
    case(8, 1, 142);
    case(12, 40, 143);
    case(8, 37, 145);
}

#[test]
fn ties_keep_the_lower_key_index() {
    // One query direction, keys scoring a_j·scale, and v_j = e_j, so that each
    // output row is the probability vector over keys: it shows the kept set.
    let a = [2.0, 2.0, 1.0, 2.0, 3.0, 2.0, 1.0, 3.0, 2.0];
    let (n, dh) = (a.len(), a.len());
    let s = AttnShape {
        batch: 1,
        seq: n,
        n_heads: 1,
        head_dim: dh,
        head_start: 0,
        head_count: 1,
    };
    let qkv: Vec<f64> = (0..n)
        .flat_map(|j| {
            let q = (0..dh).map(|c| if c == 0 { 1.0 } else { 0.0 });
            let k = (0..dh).map(move |c| if c == 0 { a[j] } else { 0.0 });
            let v = (0..dh).map(move |c| if c == j { 1.0 } else { 0.0 });
            q.chain(k).chain(v).collect::<Vec<_>>()
        })
        .collect();
    let gqkv = upload("qkv", &[n, 3 * dh], &qkv);
    // Scores 3 (keys 4, 7), 2 (keys 0, 1, 3, 5, 8), 1 (keys 2, 6). The tied
    // 2s fill the list first and are pushed out by the later 3s, so a kernel
    // that orders equal scores wrongly drops the wrong one; the last key ties
    // with the list's last entry and must not displace it. k = 3 keeps key 0
    // of the 2s, k = 5 keeps keys 0, 1, 3.
    for (topk, kept) in [(3, vec![0, 4, 7]), (5, vec![0, 1, 3, 4, 7])] {
        let attn = TopkAttention::new(gpu(), s, topk, "ties").unwrap();
        let gout = zeros("out", &[n, dh]);
        run(vec![attn.forward(gpu(), &gqkv, &gout).unwrap()]);
        let out = read(&gout);
        for row in out.chunks(dh) {
            let nonzero: Vec<usize> = (0..dh).filter(|&j| row[j] != 0.0).collect();
            assert_eq!(nonzero, kept, "k={topk}: kept keys, row {row:?}");
        }
        let want = reference::forward(&qkv, 1, layout(s), 0..1, topk).0;
        check(&format!("topk ties k={topk} fwd"), &out, &want, TOL_F32);
    }
}

#[test]
fn topk_beyond_capacity_is_an_error() {
    for seq in [37, 100] {
        let s = AttnShape {
            batch: 1,
            seq,
            n_heads: 1,
            head_dim: 4,
            head_start: 0,
            head_count: 1,
        };
        assert!(TopkAttention::new(gpu(), s, 65, "big").is_err());
        assert!(TopkAttention::new(gpu(), s, 0, "zero").is_err());
        assert!(TopkAttention::new(gpu(), s, 64, "largest").is_ok());
    }
}
