use samnet_core::ops::attention::AttnShape;
use samnet_core::ops::attention_topk::TopkAttention;
use samnet_core::reference::attention::HeadLayout;
use samnet_core::reference::attention_topk as reference;
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
    check(&format!("{label} fwd"), &masked(got), &fwd(&qkv), TOL_F32);

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

    // Finite differences are only meaningful where ±eps keeps every selection.
    let base = selections(&qkv, s, topk);
    let candidates = coords(&mut rng, qkv.len(), 40);
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
    assert!(stable.len() >= 20, "{label}: too few stable coordinates");
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
}

#[test]
fn topk_of_one_and_at_least_the_sequence() {
    case(8, 1, 142);
    case(12, 40, 143);
}

#[test]
fn ties_keep_the_lower_key_index() {
    // Every key identical: all scores tie, so keys 0..k must be kept, in order.
    let s = AttnShape {
        batch: 1,
        seq: 10,
        n_heads: 1,
        head_dim: 4,
        head_start: 0,
        head_count: 1,
    };
    let qkv: Vec<f64> = (0..10)
        .flat_map(|i| {
            [
                1.0, 0.5, -0.5, 0.25, 0.3, 0.3, 0.3, 0.3, i as f64, 0.0, 0.0, 0.0,
            ]
        })
        .collect();
    let attn = TopkAttention::new(gpu(), s, 3, "ties").unwrap();
    let (gqkv, gout) = (upload("qkv", &[10, 12], &qkv), zeros("out", &[10, 4]));
    run(vec![attn.forward(gpu(), &gqkv, &gout).unwrap()]);
    // Each query averages v of keys 0, 1, 2: first component (0 + 1 + 2) / 3.
    let out = read(&gout);
    assert!(
        out.chunks(4).all(|row| (row[0] - 1.0).abs() < 1e-6),
        "{out:?}"
    );
}

#[test]
fn topk_beyond_capacity_is_an_error() {
    let s = AttnShape {
        batch: 1,
        seq: 100,
        n_heads: 1,
        head_dim: 4,
        head_start: 0,
        head_count: 1,
    };
    assert!(TopkAttention::new(gpu(), s, 65, "big").is_err());
    assert!(TopkAttention::new(gpu(), s, 0, "zero").is_err());
}
