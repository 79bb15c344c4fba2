//! Property-based fuzzing of the infill template parser
//! (`conditioning::parse_template`): random mixes of text, well-formed holes
//! (`[___]`, `[___:N]`, `▢`) and malformed ones. Accepted templates must
//! parse into canonical segments that round-trip; rejected ones must give a
//! one-line error. `SAMNET_FUZZ_SCALE` multiplies the case count.

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};
use samnet_core::conditioning::{HOLE_CHAR, MAX_SAMPLE_LEN, Segment, parse_template};

/// A piece of a template.
fn piece() -> impl Strategy<Value = String> {
    let text = prop::collection::vec(
        prop::sample::select(vec!['a', 'Z', ' ', '\n', '[', ']', '_', ':', '9', 'é', '—']),
        1..6,
    )
    .prop_map(|c| c.into_iter().collect::<String>());
    let underscores = (1..5usize).prop_map(|n| "_".repeat(n));
    prop_oneof![
        4 => text,
        2 => underscores.clone().prop_map(|u| format!("[{u}]")),
        2 => (underscores.clone(), 1..2 * MAX_SAMPLE_LEN).prop_map(|(u, n)| format!("[{u}:{n}]")),
        2 => Just(HOLE_CHAR.to_string()),
        // Malformed holes.
        1 => Just("[___".to_string()),
        1 => Just("[___:0]".to_string()),
        1 => Just("[___:-2]".to_string()),
        1 => Just("[___:x]".to_string()),
        1 => Just("[_a_]".to_string()),
        1 => Just("[___: 7 ]".to_string()),
    ]
}

/// Segments written back as a template.
fn render(segments: &[Segment]) -> String {
    segments
        .iter()
        .map(|s| match s {
            Segment::Text(t) => t.clone(),
            Segment::Hole(n) => format!("[_:{n}]"),
        })
        .collect()
}

#[test]
fn infill_templates_parse_canonically_or_fail_clearly() {
    let scale: u32 = std::env::var("SAMNET_FUZZ_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let cases = 20_000 * scale.max(1);
    let mut runner = TestRunner::new(RunnerConfig {
        cases,
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let accepted = std::sync::atomic::AtomicU32::new(0);
    let strategy = (prop::collection::vec(piece(), 0..8), 1..64usize);
    let result = runner.run(&strategy, |(pieces, default_hole)| {
        let template: String = pieces.concat();
        match parse_template(&template, default_hole) {
            Ok(segments) => {
                accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                prop_assert!(segments.iter().any(|s| matches!(s, Segment::Hole(_))));
                for pair in segments.windows(2) {
                    let same_kind = matches!(
                        pair,
                        [Segment::Text(_), Segment::Text(_)] | [Segment::Hole(_), Segment::Hole(_)]
                    );
                    prop_assert!(!same_kind, "adjacent segments of one kind: {segments:?}");
                }
                let positions: usize = segments
                    .iter()
                    .map(|s| match s {
                        Segment::Hole(n) => *n,
                        Segment::Text(_) => 0,
                    })
                    .sum();
                prop_assert!(positions <= MAX_SAMPLE_LEN, "{positions} hole positions");
                for s in &segments {
                    match s {
                        Segment::Hole(n) => prop_assert!(*n >= 1),
                        Segment::Text(t) => {
                            prop_assert!(!t.is_empty());
                            prop_assert!(
                                !t.contains(HOLE_CHAR) && !t.contains("[_"),
                                "hole markup left in text {t:?} of {template:?}"
                            );
                        }
                    }
                }
                let again = parse_template(&render(&segments), default_hole);
                prop_assert_eq!(again.ok(), Some(segments), "round trip of {:?}", template);
            }
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(
                    !msg.contains('\n') && msg.contains("hole") && msg.len() > 20,
                    "unclear: {msg:?}"
                );
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("infill templates: {e}");
    }
    println!(
        "FUZZ infill templates: {cases} cases, {} accepted, all others clear errors",
        accepted.into_inner()
    );
}

/// Found by the property test above (then fixed in `conditioning`): a hole
/// length that overflowed when adjacent holes merged (a panic), one that
/// made `Known::infill` allocate 400 GB (an abort), and a hole body with a
/// newline quoted across two lines.
#[test]
fn hostile_hole_lengths_and_bodies_fail_clearly() {
    let huge = format!("[___:{}]▢", usize::MAX);
    let many = format!("[___:{MAX_SAMPLE_LEN}]▢");
    for template in [
        huge.as_str(),
        "[___:100000000000]",
        "a[___\nb]",
        many.as_str(),
    ] {
        let err = parse_template(template, 4).expect_err(template).to_string();
        assert!(
            !err.contains('\n') && err.contains("hole"),
            "{template:?}: {err:?}"
        );
    }
}
