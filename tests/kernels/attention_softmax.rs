use samnet_core::ops::attention::AttnShape;
use samnet_core::ops::attention_softmax::{SoftmaxAttention, Span};
use samnet_core::reference::attention::HeadLayout;
use samnet_core::reference::{attention_softmax as reference, attention_topk};
use samnet_tests::*;

fn layout(s: AttnShape) -> HeadLayout {
    HeadLayout {
        seq: s.seq,
        d: s.d_model(),
        head_dim: s.head_dim,
    }
}

fn case(head_dim: usize, span: Span, q_scale: f64, seed: u64) {
    let s = AttnShape {
        batch: 2,
        seq: 37,
        n_heads: 3,
        head_dim,
        head_start: 1,
        head_count: 2,
    };
    let (rows, d) = (s.batch * s.seq, s.d_model());
    let label = format!("softmax {span:?} dh={head_dim} q×{q_scale}");
    let half_window = match span {
        Span::Full => None,
        Span::HalfWindow(w) => Some(w),
    };
    let mut rng = Rng::new(seed);
    let mut qkv = rng.normals(rows * 3 * d);
    for (i, x) in qkv.iter_mut().enumerate() {
        if (i % (3 * d)) < d {
            *x *= q_scale;
        }
    }
    let dout = rng.normals(rows * d);
    let heads = s.head_start..s.head_start + s.head_count;
    let fwd = |v: &[f64]| reference::forward(v, s.batch, layout(s), heads.clone(), half_window);
    let head0 = |i: usize, width: usize| (i % width) % d < head_dim;
    let masked = |v: Vec<f64>| {
        v.into_iter()
            .enumerate()
            .map(|(i, x)| if head0(i, d) { 0.0 } else { x })
            .collect::<Vec<_>>()
    };

    let attn = SoftmaxAttention::new(gpu(), s, span, "softmax").unwrap();
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
    check(&format!("{label} fwd"), &masked(got), &fwd(&qkv), TOL_F32);

    let want = reference::backward(&qkv, &dout, s.batch, layout(s), heads.clone(), half_window);
    let (gdout, gdqkv) = (
        upload("dout", &[rows, d], &dout),
        upload("dqkv", &[rows, 3 * d], &vec![5.0; rows * 3 * d]),
    );
    run(attn.backward(gpu(), &gqkv, &gout, &gdout, &gdqkv).unwrap());
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

#[test]
fn windows_of_zero_and_four() {
    case(8, Span::HalfWindow(0), 1.0, 150);
    case(12, Span::HalfWindow(4), 1.0, 151);
}

#[test]
fn full_attention_and_window_wider_than_the_sequence() {
    case(12, Span::Full, 1.0, 152);
    case(8, Span::HalfWindow(100), 1.0, 153);
}

#[test]
fn large_scores_stay_stable() {
    case(8, Span::Full, 30.0, 154);
}

#[test]
fn full_attention_equals_topk_with_k_at_least_the_sequence() {
    let s = AttnShape {
        batch: 1,
        seq: 19,
        n_heads: 2,
        head_dim: 8,
        head_start: 0,
        head_count: 2,
    };
    let mut rng = Rng::new(155);
    let qkv = rng.normals(s.seq * 3 * s.d_model());
    let full = reference::forward(&qkv, 1, layout(s), 0..2, None);
    let topk = attention_topk::forward(&qkv, 1, layout(s), 0..2, 64).0;
    check("full = topk(k ≥ L) reference", &topk, &full, 1e-12);
}
