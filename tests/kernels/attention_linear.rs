use samnet_core::ops::attention::AttnShape;
use samnet_core::ops::attention_linear::LinearAttention;
use samnet_core::ops::rope::{self, RopeTables};
use samnet_core::reference::attention::HeadLayout;
use samnet_core::reference::{attention_linear as reference, rope as ref_rope};
use samnet_tests::*;

/// Three heads; the kernels handle heads 1..3, so head 0's columns must stay as they were.
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

/// Columns of head 0 (untouched by kernels on heads 1..3) in a row-major buffer of `width` per row.
fn head0_columns(len: usize, width: usize, s: AttnShape) -> Vec<usize> {
    (0..len)
        .filter(|i| (i % width) % s.d_model() < s.head_dim)
        .collect()
}

#[test]
fn linear_attention_forward_and_backward() {
    for head_dim in [8, 12, 32] {
        let s = shape(head_dim);
        let (rows, d) = (s.batch * s.seq, s.d_model());
        let label = format!("linear attention dh={head_dim}");
        let mut rng = Rng::new(120 + head_dim as u64);
        let qkv = rng.normals(rows * 3 * d);
        let dout = rng.normals(rows * d);
        let eps = 1e-6;
        let heads = s.head_start..s.head_start + s.head_count;
        let fwd = |v: &[f64]| reference::forward(v, s.batch, layout(s), heads.clone(), eps);

        let attn = LinearAttention::new(gpu(), s, eps as f32, "lin").unwrap();
        let (gqkv, gout) = (
            upload("qkv", &[rows, 3 * d], &qkv),
            upload("out", &[rows, d], &vec![9.0; rows * d]),
        );
        let forward = attn.forward(gpu(), &gqkv, &gout).unwrap();
        run(forward.clone());
        let got = read(&gout);
        assert!(
            head0_columns(got.len(), d, s)
                .iter()
                .all(|&i| got[i] == 9.0),
            "{label}: head 0 was written"
        );
        let masked = |v: Vec<f64>| {
            v.into_iter()
                .enumerate()
                .map(|(i, x)| if (i % d) < s.head_dim { 0.0 } else { x })
                .collect::<Vec<_>>()
        };
        check(&format!("{label} fwd"), &masked(got), &fwd(&qkv), TOL_F32);

        let want = reference::backward(&qkv, &dout, s.batch, layout(s), heads.clone(), eps);
        let (gdout, gdqkv) = (
            upload("dout", &[rows, d], &dout),
            upload("dqkv", &[rows, 3 * d], &vec![5.0; rows * 3 * d]),
        );
        run(attn.backward(gpu(), &gqkv, &gout, &gdout, &gdqkv).unwrap());
        let got = read(&gdqkv);
        assert!(
            head0_columns(got.len(), 3 * d, s)
                .iter()
                .all(|&i| got[i] == 5.0),
            "{label}: head 0 of dqkv was written"
        );
        let got: Vec<f64> = got
            .iter()
            .zip(&want)
            .map(|(g, w)| if *g == 5.0 && *w == 0.0 { 0.0 } else { *g })
            .collect();
        let mut gpu_fwd = gpu_forward(&gqkv, &qkv, &forward, &gout);
        check_backward(
            &label,
            &qkv,
            &dout,
            &want,
            &got,
            fwd,
            |v| masked(gpu_fwd(v)),
            &mut rng,
        );
    }
}

#[test]
fn rope_forward_backward_and_identity() {
    for head_dim in [8, 12] {
        let s = shape(head_dim);
        let (rows, d) = (s.batch * s.seq, s.d_model());
        let label = format!("rope dh={head_dim}");
        let mut rng = Rng::new(130 + head_dim as u64);
        let qkv = rng.normals(rows * 3 * d);
        let r = rng.normals(rows * 3 * d);
        let base = 10_000.0;
        let heads = s.head_start..s.head_start + s.head_count;
        let tables = RopeTables::new(gpu(), 64, head_dim, base).unwrap();
        let gqkv = upload("qkv", &[rows, 3 * d], &qkv);
        let forward = vec![rope::forward(gpu(), s, &tables, &gqkv).unwrap()];
        run(forward.clone());
        let fwd = |v: &[f64]| ref_rope::rotate(v, s.batch, layout(s), heads.clone(), base, 1.0);
        check(&format!("{label} fwd"), &read(&gqkv), &fwd(&qkv), TOL_F32);
        // Backward then forward is the identity on the rotated buffer.
        run(vec![rope::backward(gpu(), s, &tables, &gqkv).unwrap()]);
        check(&format!("{label} bwd∘fwd"), &read(&gqkv), &qkv, TOL_F32);

        // The backward of a rotation is its transpose: dx = R(−θ) r.
        let want = ref_rope::rotate(&r, s.batch, layout(s), heads.clone(), base, -1.0);
        let gr = upload("dqkv", &[rows, 3 * d], &r);
        run(vec![rope::backward(gpu(), s, &tables, &gr).unwrap()]);
        let fresh = upload("qkv", &[rows, 3 * d], &qkv);
        let forward = vec![rope::forward(gpu(), s, &tables, &fresh).unwrap()];
        let gpu_fwd = |v: &[f64]| {
            write(&fresh, v);
            run(forward.clone());
            read(&fresh)
        };
        check_backward(&label, &qkv, &r, &want, &read(&gr), fwd, gpu_fwd, &mut rng);
    }
}

#[test]
fn rope_rejects_odd_head_dims_and_short_tables() {
    assert!(RopeTables::new(gpu(), 8, 7, 10_000.0).is_err());
    let s = shape(8);
    let tables = RopeTables::new(gpu(), 16, 8, 10_000.0).unwrap();
    let qkv = zeros("qkv", &[s.batch * s.seq, 3 * s.d_model()]);
    assert!(rope::forward(gpu(), s, &tables, &qkv).is_err());
}
