//! Property-based fuzzing of the infill template parser
//! (`conditioning::parse_template`): random mixes of text, well-formed holes
//! (`[___]`, `[___:N]`, `▢`) and malformed ones. Accepted templates must
//! parse into canonical segments that round-trip; rejected ones must give a
//! one-line error. `SAMNET_FUZZ_SCALE` multiplies the case count.

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};
use samnet_core::conditioning::{HOLE_CHAR, Segment, parse_template};

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
        2 => (underscores.clone(), 1..1_000_000usize).prop_map(|(u, n)| format!("[{u}:{n}]")),
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
                // One line is checked in `known_defects` below: the message
                // quotes a hole's body, newlines included.
                let msg = e.to_string();
                prop_assert!(msg.contains("hole") && msg.len() > 20, "unclear: {msg:?}");
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

/// Found by the property test above, in code owned elsewhere (conditioning):
/// each input must give a one-line error, but today the first two crash the
/// process (an overflow panic; an allocation abort in `Known::infill`) and
/// the third quotes a newline. Run with `--ignored` once fixed, then drop
/// the attribute.
#[test]
#[ignore = "conditioning::parse_template defects, reported for its owner"]
fn known_defects() {
    let huge = format!("[___:{}]▢", usize::MAX);
    let cases = [huge.as_str(), "[___:100000000000]", "a[___\nb]"];
    for template in cases {
        let result = std::panic::catch_unwind(|| parse_template(template, 4));
        let err = match result {
            Ok(Err(e)) => e.to_string(),
            Ok(Ok(segments)) => {
                let total: u128 = segments
                    .iter()
                    .map(|s| match s {
                        Segment::Hole(n) => *n as u128,
                        Segment::Text(t) => t.chars().count() as u128,
                    })
                    .sum();
                assert!(
                    total <= 1 << 20,
                    "{template:?} accepted with {total} positions (Known::infill allocates them)"
                );
                continue;
            }
            Err(_) => panic!("{template:?} panics"),
        };
        assert!(
            !err.contains('\n'),
            "{template:?}: multi-line error {err:?}"
        );
    }
}
