use samnet_core::ops::attention::AttnShape;
use samnet_core::ops::rope::{self, RopeTables};
use samnet_core::reference::attention::HeadLayout;
use samnet_core::reference::rope as reference;
use samnet_tests::*;

const BASE: f64 = 10_000.0;

/// Three heads; the kernels handle heads 1..3, so head 0 must stay as it was.
fn shape(head_dim: usize) -> AttnShape {
    AttnShape {
        batch: 2,
        seq: 37,
        n_heads: 3,
        head_dim,
        head_start: 1,
        head_count: 2,
    }
}

fn layout(s: AttnShape) -> HeadLayout {
    HeadLayout {
        seq: s.seq,
        d: s.d_model(),
        head_dim: s.head_dim,
    }
}

/// Asserts that every column RoPE must not touch (all of v, and q and k of
/// head 0) holds exactly the f32 value it was uploaded with.
fn assert_untouched(label: &str, got: &[f64], before: &[f64], s: AttnShape) {
    let d = s.d_model();
    for (i, (g, b)) in got.iter().zip(before).enumerate() {
        let col = i % (3 * d);
        let rotated = col < 2 * d && (col % d) >= s.head_dim;
        assert!(
            rotated || *g == f64::from(*b as f32),
            "{label}: element {i} (column {col}) changed from {b} to {g}"
        );
    }
}

#[test]
fn rope_forward_backward_and_identity() {
    for head_dim in [8, 12, 32] {
        let s = shape(head_dim);
        let (rows, d) = (s.batch * s.seq, s.d_model());
        let label = format!("rope dh={head_dim}");
        let mut rng = Rng::new(130 + head_dim as u64);
        let qkv = rng.normals(rows * 3 * d);
        let r = rng.normals(rows * 3 * d);
        let heads = s.head_start..s.head_start + s.head_count;
        let fwd = |v: &[f64]| reference::rotate(v, s.batch, layout(s), heads.clone(), BASE, 1.0);
        let tables = RopeTables::new(gpu(), 64, head_dim, BASE).unwrap();

        let gqkv = upload("qkv", &[rows, 3 * d], &qkv);
        run(vec![rope::forward(gpu(), s, &tables, &gqkv).unwrap()]);
        let rotated = read(&gqkv);
        assert_untouched(&format!("{label} fwd"), &rotated, &qkv, s);
        check(&format!("{label} fwd"), &rotated, &fwd(&qkv), TOL_F32);

        // Forward then backward is the identity (up to f32 rounding).
        run(vec![rope::backward(gpu(), s, &tables, &gqkv).unwrap()]);
        check(&format!("{label} bwd∘fwd"), &read(&gqkv), &qkv, TOL_F32);

        // The backward of a rotation is its transpose: dx = R(−θ) r.
        let want = reference::rotate(&r, s.batch, layout(s), heads.clone(), BASE, -1.0);
        let gr = upload("dqkv", &[rows, 3 * d], &r);
        run(vec![rope::backward(gpu(), s, &tables, &gr).unwrap()]);
        let got = read(&gr);
        assert_untouched(&format!("{label} bwd"), &got, &r, s);

        let fresh = upload("qkv", &[rows, 3 * d], &qkv);
        let forward = vec![rope::forward(gpu(), s, &tables, &fresh).unwrap()];
        let gpu_fwd = |v: &[f64]| {
            write(&fresh, v);
            run(forward.clone());
            read(&fresh)
        };
        check_backward(&label, &qkv, &r, &want, &got, fwd, gpu_fwd, &mut rng);
    }
}

#[test]
fn rope_rejects_odd_head_dims_and_short_tables() {
    let odd = RopeTables::new(gpu(), 8, 7, BASE)
        .err()
        .expect("odd head_dim accepted");
    assert!(odd.to_string().contains("even"), "unclear error: {odd}");
    let s = shape(8);
    let qkv = zeros("qkv", &[s.batch * s.seq, 3 * s.d_model()]);
    let short = RopeTables::new(gpu(), 16, 8, BASE).unwrap();
    assert!(rope::forward(gpu(), s, &short, &qkv).is_err());
    let wrong_dim = RopeTables::new(gpu(), 64, 12, BASE).unwrap();
    assert!(rope::backward(gpu(), s, &wrong_dim, &qkv).is_err());
}
