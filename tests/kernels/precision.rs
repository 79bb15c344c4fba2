use samnet_core::gpu::{DType, Tensor};
use samnet_core::ops::matmul::{Matmul, MatmulKernel, matmul};
use samnet_core::ops::precision::half_copy;
use samnet_core::reference::matmul::{matmul as reference, round_to_half};
use samnet_tests::*;

fn half_zeros(name: &str, n: usize) -> Tensor {
    gpu().zeros(name, &[n], DType::F16).expect("alloc")
}

fn read_half(t: &Tensor) -> Vec<u16> {
    let bytes = pollster::block_on(gpu().read_bytes(t)).expect("read");
    bytes[..2 * t.len()]
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect()
}

#[test]
fn lavapipe_offers_shader_f16() {
    // SPEC §6: without it every mixed-precision test below would only test
    // the refusal.
    assert!(gpu().features.shader_f16, "{}", gpu().describe());
}

#[test]
fn half_copy_rounds_each_weight_to_the_nearest_half() {
    let n = 1001;
    let mut rng = Rng::new(11);
    // Normal weights, plus values that sit on and between halves' steps.
    let mut w: Vec<f64> = rng.normals(n).iter().map(|x| x * 0.05).collect();
    w[..6].copy_from_slice(&[
        1.0,
        1.0 + 1.0 / 2048.0,
        1.0 + 3.0 / 2048.0,
        -2049.0,
        65504.0,
        1e-3,
    ]);
    let (gw, gh) = (upload("w", &[n], &w), half_zeros("w.half", n));
    run(vec![half_copy(gpu(), &gw, &gh).unwrap()]);
    let got = read_half(&gh);
    for (i, (&bits, &x)) in got.iter().zip(&w).enumerate() {
        let want = half::f16::from_f32(x as f32);
        // f16 subnormals (|x| < 6.1e-5) may flush to zero on some GPUs.
        if want.is_normal() || want == half::f16::ZERO {
            assert_eq!(
                bits,
                want.to_bits(),
                "element {i}: {x} → {:?}",
                half::f16::from_bits(bits)
            );
        }
    }
}

/// Every transpose on both kernels with operands rounded to f16: against
/// the f64 product of the rounded operands (and measurably away from the
/// unrounded one, so the rounding is really there); B is once an f32 tensor
/// and once a weight's half copy.
#[test]
fn half_operand_products_match_the_product_of_rounded_operands() {
    for (kernel, (m, n, k)) in [
        (MatmulKernel::Simple, (37, 29, 45)),
        (MatmulKernel::Tiled, (133, 141, 21)),
    ] {
        let mut rng = Rng::new(12);
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            for b_in_half in [false, true] {
                let a = rng.normals(m * k);
                let b = rng.normals(k * n);
                let (ga, gb, gc) = (
                    upload("a", &[a.len()], &a),
                    upload("b", &[b.len()], &b),
                    zeros("c", &[m * n]),
                );
                let mut mm = Matmul::new(m, n, k).kernel(kernel).half_operands(true);
                if ta {
                    mm = mm.trans_a();
                }
                if tb {
                    mm = mm.trans_b();
                }
                let gb_half = half_zeros("b.half", b.len());
                let mut dispatches = vec![half_copy(gpu(), &gb, &gb_half).unwrap()];
                let b_operand = if b_in_half { &gb_half } else { &gb };
                dispatches.push(matmul(gpu(), &ga, b_operand, &gc, mm).unwrap());
                run(dispatches);
                let round = |v: &[f64]| v.iter().map(|&x| round_to_half(x)).collect::<Vec<_>>();
                let want = reference(&round(&a), &round(&b), m, n, k, ta, tb);
                let unrounded = reference(&a, &b, m, n, k, ta, tb);
                let got = read(&gc);
                let label = format!(
                    "matmul half {kernel:?} {m}x{n}x{k} ta={ta} tb={tb} b_half={b_in_half}"
                );
                check(&label, &got, &want, TOL_F32);
                let off = rel_err(&got, &unrounded);
                assert!(
                    off > 1e-5,
                    "{label}: {off:.1e} from the f32 product: were the operands rounded?"
                );
            }
        }
    }
}

#[test]
fn an_operand_beyond_half_range_overflows_the_product() {
    let (m, n, k) = (5, 7, 9);
    let mut rng = Rng::new(13);
    let mut a = rng.normals(m * k);
    a[2 * k + 4] = 7.0e4; // row 2: finite in f32, beyond f16's 65504
    let b = rng.normals(k * n);
    let (ga, gb) = (upload("a", &[m * k], &a), upload("b", &[k * n], &b));
    for half in [false, true] {
        let gc = zeros("c", &[m * n]);
        run(vec![
            matmul(
                gpu(),
                &ga,
                &gb,
                &gc,
                Matmul::new(m, n, k).half_operands(half),
            )
            .unwrap(),
        ]);
        let c = read(&gc);
        for (i, v) in c.iter().enumerate() {
            let row = i / n;
            assert_eq!(
                v.is_finite(),
                !(half && row == 2),
                "half={half}: C[{row}, {}] = {v}",
                i % n
            );
        }
    }
}

#[test]
fn a_half_b_without_half_operands_is_refused() {
    let (ga, gh, gc) = (
        zeros("a", &[4, 4]),
        half_zeros("b.half", 16),
        zeros("c", &[4, 4]),
    );
    let err = matmul(gpu(), &ga, &gh, &gc, Matmul::new(4, 4, 4)).unwrap_err();
    assert!(err.to_string().contains("f16 with half operands"), "{err}");
    let err = half_copy(gpu(), &ga, &gc).unwrap_err();
    assert!(err.to_string().contains("half_copy"), "{err}");
}
