use samnet_core::ops::matmul::{Layout, Matmul, MatmulKernel, matmul, matmul_split_k};
use samnet_core::reference::matmul as reference;
use samnet_tests::*;

#[test]
fn forward_every_transpose_batched_with_alpha_beta() {
    // Odd sizes for the simple kernel; for the tiled one, sizes crossing the 128 tile.
    for (kernel, (m, n, k)) in [
        (MatmulKernel::Simple, (37, 29, 45)),
        (MatmulKernel::Tiled, (37, 29, 45)),
        (MatmulKernel::Tiled, (133, 257, 21)),
    ] {
        every_transpose(kernel, m, n, k);
    }
}

fn every_transpose(kernel: MatmulKernel, m: usize, n: usize, k: usize) {
    let batch = 3;
    let mut rng = Rng::new(1);
    for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
        let a = rng.normals(batch * m * k);
        let b = rng.normals(batch * k * n);
        let c0 = rng.normals(batch * m * n);
        let (ga, gb, gc) = (
            upload("a", &[a.len()], &a),
            upload("b", &[b.len()], &b),
            upload("c", &[c0.len()], &c0),
        );
        let mut mm = Matmul::new(m, n, k).batch(batch).alpha(0.7).kernel(kernel);
        mm.beta = 0.3;
        if ta {
            mm = mm.trans_a();
        }
        if tb {
            mm = mm.trans_b();
        }
        run(vec![matmul(gpu(), &ga, &gb, &gc, mm).unwrap()]);
        let mut want = Vec::new();
        for i in 0..batch {
            let prod = reference::matmul(
                &a[i * m * k..][..m * k],
                &b[i * k * n..][..k * n],
                m,
                n,
                k,
                ta,
                tb,
            );
            want.extend(
                prod.iter()
                    .zip(&c0[i * m * n..])
                    .map(|(p, c)| 0.7 * p + 0.3 * c),
            );
        }
        check(
            &format!("matmul {kernel:?} {m}x{n}x{k} fwd ta={ta} tb={tb}"),
            &read(&gc),
            &want,
            TOL_F32,
        );
    }
}

#[test]
fn forward_on_strided_views() {
    // A is columns 5..5+K of a (M, 70) buffer; C lands in columns 3..3+N of a (M, 40) buffer.
    let (m, n, k) = (33, 21, 50);
    let mut rng = Rng::new(2);
    let wide_a = rng.normals(m * 70);
    let b = rng.normals(k * n);
    let (ga, gb, gc) = (
        upload("a", &[m, 70], &wide_a),
        upload("b", &[k, n], &b),
        zeros("c", &[m, 40]),
    );
    let mm = Matmul::new(m, n, k).layouts(
        Layout {
            offset: 5,
            ld: 70,
            batch_stride: 0,
        },
        Layout {
            offset: 0,
            ld: n,
            batch_stride: 0,
        },
        Layout {
            offset: 3,
            ld: 40,
            batch_stride: 0,
        },
    );
    run(vec![matmul(gpu(), &ga, &gb, &gc, mm).unwrap()]);
    let a: Vec<f64> = (0..m)
        .flat_map(|r| wide_a[r * 70 + 5..r * 70 + 5 + k].to_vec())
        .collect();
    let prod = reference::matmul(&a, &b, m, n, k, false, false);
    let got = read(&gc);
    let got: Vec<f64> = (0..m)
        .flat_map(|r| got[r * 40 + 3..r * 40 + 3 + n].to_vec())
        .collect();
    check("matmul fwd strided", &got, &prod, TOL_F32);
}

#[test]
fn rejects_views_outside_the_buffer() {
    let (ga, gb, gc) = (
        zeros("a", &[10, 10]),
        zeros("b", &[10, 10]),
        zeros("c", &[10, 10]),
    );
    let err = matmul(gpu(), &ga, &gb, &gc, Matmul::new(11, 10, 10)).unwrap_err();
    assert!(err.to_string().contains("operand A"), "{err}");
}

/// y = x·Wᵀ (W stored out×in, as a linear layer); backward is two more products.
#[test]
fn backward_of_x_times_w_transposed() {
    let (rows, d_in, d_out) = (37, 24, 29);
    let mut rng = Rng::new(3);
    let x = rng.normals(rows * d_in);
    let w = rng.normals(d_out * d_in);
    let dy = rng.normals(rows * d_out);
    let forward = |x: &[f64], w: &[f64]| reference::matmul(x, w, rows, d_out, d_in, false, true);
    let (want_dx, want_dw) = reference::matmul_nt_backward(&x, &w, &dy, rows, d_out, d_in);

    // Reference backward against f64 central differences of the reference forward.
    let pick_x = coords(&mut rng, x.len(), 12);
    let pick_w = coords(&mut rng, w.len(), 12);
    check_fd(
        "matmul ref dx vs fd",
        &want_dx,
        |xp| dot(&forward(xp, &w), &dy),
        &x,
        &pick_x,
        1e-6,
        TOL_FD_F64,
    );
    check_fd(
        "matmul ref dw vs fd",
        &want_dw,
        |wp| dot(&forward(&x, wp), &dy),
        &w,
        &pick_w,
        1e-6,
        TOL_FD_F64,
    );

    // GPU backward against the reference backward.
    let (gx, gw, gdy) = (
        upload("x", &[rows, d_in], &x),
        upload("w", &[d_out, d_in], &w),
        upload("dy", &[rows, d_out], &dy),
    );
    let (gdx, gdw) = (zeros("dx", &[rows, d_in]), zeros("dw", &[d_out, d_in]));
    run(vec![
        matmul(gpu(), &gdy, &gw, &gdx, Matmul::new(rows, d_in, d_out)).unwrap(),
        matmul(
            gpu(),
            &gdy,
            &gx,
            &gdw,
            Matmul::new(d_out, d_in, rows).trans_a(),
        )
        .unwrap(),
    ]);
    let (got_dx, got_dw) = (read(&gdx), read(&gdw));
    check("matmul bwd dx", &got_dx, &want_dx, TOL_F32);
    check("matmul bwd dw", &got_dw, &want_dw, TOL_F32);

    // GPU backward against central differences of the GPU forward.
    let gy = zeros("y", &[rows, d_out]);
    let fwd = matmul(
        gpu(),
        &gx,
        &gw,
        &gy,
        Matmul::new(rows, d_out, d_in).trans_b(),
    )
    .unwrap();
    let gpu_loss = |input: &samnet_core::gpu::Tensor, values: &[f64]| {
        write(input, values);
        run(vec![fwd.clone()]);
        dot(&read(&gy), &dy)
    };
    check_fd(
        "matmul gpu dx vs fd",
        &got_dx,
        |xp| gpu_loss(&gx, xp),
        &x,
        &pick_x,
        1e-2,
        TOL_FD_F32,
    );
    write(&gx, &x);
    check_fd(
        "matmul gpu dw vs fd",
        &got_dw,
        |wp| gpu_loss(&gw, wp),
        &w,
        &pick_w,
        1e-2,
        TOL_FD_F32,
    );
}

/// A weight gradient (dW = dyᵀ·x, K long, few outputs) is split along K into
/// a batch of partial products and a fixed-order sum; same result, with
/// accumulation into C, and bitwise repeatable.
#[test]
fn split_k_weight_gradient() {
    let (rows, d_out, d_in) = (4096, 29, 37);
    let mut rng = Rng::new(4);
    let (dy, x, prior) = (
        rng.normals(rows * d_out),
        rng.normals(rows * d_in),
        rng.normals(d_out * d_in),
    );
    let (gdy, gx, gw) = (
        upload("dy", &[rows, d_out], &dy),
        upload("x", &[rows, d_in], &x),
        upload("dw", &[d_out, d_in], &prior),
    );
    let mm = Matmul::new(d_out, d_in, rows)
        .trans_a()
        .alpha(0.5)
        .accumulate();
    let dispatches = matmul_split_k(gpu(), &gdy, &gx, &gw, mm).unwrap();
    assert!(dispatches.len() > 1, "this shape should be split");
    run(dispatches.clone());
    let want: Vec<f64> = reference::matmul(&dy, &x, d_out, d_in, rows, true, false)
        .iter()
        .zip(&prior)
        .map(|(p, c)| 0.5 * p + c)
        .collect();
    let got = read(&gw);
    check("matmul split-K dW accumulate", &got, &want, TOL_F32);
    write(&gw, &prior);
    run(dispatches);
    assert_eq!(read(&gw), got, "split-K is not bitwise repeatable");
}

/// Where the tensor-core kernel is unavailable (lavapipe: no cooperative
/// matrices), every variant reports so, a mixed-precision product whose shape
/// would suit it runs the fallback unchanged (bitwise what the simple kernel
/// gives), and asking for it by name is a clear error. On a device that has
/// it, Auto gives bitwise what the tensor-core kernel gives.
#[test]
fn tensor_core_selection_and_fallback() {
    use samnet_core::ops::matmul_coop::Status;
    let gpu = gpu();
    let (m, n, k) = (32, 48, 40);
    let mut rng = Rng::new(9);
    let (a, b) = (rng.normals(m * k), rng.normals(k * n));
    let (ga, gb) = (upload("a", &[m, k], &a), upload("b", &[k, n], &b));
    let product = |kernel| {
        let gc = zeros("c", &[m, n]);
        let mm = Matmul::new(m, n, k).half_operands(true).kernel(kernel);
        run(vec![matmul(gpu, &ga, &gb, &gc, mm).unwrap()]);
        read(&gc)
    };
    let auto = product(MatmulKernel::Auto);
    let rounded = |v: &[f64]| {
        v.iter()
            .map(|&x| reference::round_to_half(x))
            .collect::<Vec<_>>()
    };
    let want = reference::matmul(&rounded(&a), &rounded(&b), m, n, k, false, false);
    check("matmul half operands, Auto", &auto, &want, TOL_F32);
    if gpu.features.cooperative_matrix {
        assert_eq!(gpu.cooperative_matmul.len(), 4);
        if gpu.cooperative_matmul_passed(false, false) {
            assert_eq!(auto, product(MatmulKernel::Cooperative));
        }
        return;
    }
    assert!(
        gpu.cooperative_matmul
            .iter()
            .all(|c| c.status == Status::Unavailable && c.max_rel_err.is_none())
    );
    assert_eq!(auto, product(MatmulKernel::Simple), "the fallback changed");
    let gc = zeros("c", &[m, n]);
    let forced = Matmul::new(m, n, k)
        .half_operands(true)
        .kernel(MatmulKernel::Cooperative);
    let err = matmul(gpu, &ga, &gb, &gc, forced).unwrap_err().to_string();
    assert!(err.contains("needs cooperative matrices"), "{err}");
}
