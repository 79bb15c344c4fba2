use samnet_core::ops::attention::AttnShape;
use samnet_core::ops::attention_linear::LinearAttention;
use samnet_core::reference::attention::HeadLayout;
use samnet_core::reference::attention_linear as reference;
use samnet_tests::*;

/// The kernels handle heads 1..n_heads, so head 0's columns must stay as they were.
fn shape(n_heads: usize, head_dim: usize) -> AttnShape {
    shape_of(37, n_heads, head_dim)
}

fn shape_of(seq: usize, n_heads: usize, head_dim: usize) -> AttnShape {
    AttnShape {
        batch: 2,
        seq,
        n_heads,
        head_dim,
        head_start: 1,
        head_count: n_heads - 1,
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
    // Each register capacity (16, 32, 64), head_dims that are not a multiple
    // of 4 (a partial quad), and (4, 64): the model's d = 256 with the
    // largest head_dim the kernels take; 37 positions, and 150 for the
    // gradient kernels' chunks of 64 (the last one partial).
    let cases = [(3, 7), (3, 12), (3, 22), (3, 32), (2, 45), (4, 64)]
        .map(|(n_heads, head_dim)| shape(n_heads, head_dim));
    for s in cases.into_iter().chain([shape_of(150, 3, 22)]) {
        let head_dim = s.head_dim;
        let (rows, d) = (s.batch * s.seq, s.d_model());
        let label = format!("linear attention L={} dh={head_dim}", s.seq);
        let mut rng = Rng::new(120 + (head_dim + s.seq) as u64);
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
fn linear_attention_is_repeatable_and_rejects_wide_heads() {
    assert!(LinearAttention::new(gpu(), shape(2, 72), 1e-6, "wide").is_err());

    let s = shape(4, 64);
    let (rows, d) = (s.batch * s.seq, s.d_model());
    let mut rng = Rng::new(140);
    let attn = LinearAttention::new(gpu(), s, 1e-6, "lin").unwrap();
    let qkv = upload("qkv", &[rows, 3 * d], &rng.normals(rows * 3 * d));
    let dout = upload("dout", &[rows, d], &rng.normals(rows * d));
    let (out, dqkv) = (zeros("out", &[rows, d]), zeros("dqkv", &[rows, 3 * d]));
    let mut pass = attn.forward(gpu(), &qkv, &out).unwrap();
    pass.extend(attn.backward(gpu(), &qkv, &out, &dout, &dqkv).unwrap());
    run(pass.clone());
    let first = (read(&out), read(&dqkv));
    run(pass);
    assert!(first == (read(&out), read(&dqkv)), "second run differs");
}
