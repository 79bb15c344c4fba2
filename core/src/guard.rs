//! Containment of panics inside third-party code. wgpu's `Device::poll`
//! panics on a device that a real driver lost (see `Gpu::poll`), and the
//! `tokenizers` crate panics on some malformed `tokenizer.json` files
//! instead of returning an error (e.g. `expect("Helper")` in its decoder
//! deserializer and `expect("Precompiled")` in its normalizer one, found by
//! `core/tests/fuzz_loaders.rs`); both must still end in a clear error. The
//! panic message is kept quiet while contained: the process-wide hook is
//! wrapped once so that every other panic is reported as before.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    static CONTAINING: Cell<bool> = const { Cell::new(false) };
}

static QUIET_HOOK: Once = Once::new();

/// Runs `f`; a panic inside it becomes `Err(its message)`.
pub(crate) fn contain<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    QUIET_HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !CONTAINING.with(Cell::get) {
                previous(info);
            }
        }));
    });
    let outer = CONTAINING.with(|c| c.replace(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    CONTAINING.with(|c| c.set(outer));
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into())
            .replace('\n', " ")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_its_message_and_values_pass_through() {
        assert_eq!(contain(|| 7), Ok(7));
        let err = contain(|| -> u32 { panic!("bad\nfile") }).unwrap_err();
        assert_eq!(err, "bad file");
        let nested = contain(|| contain(|| panic!("inner")).unwrap_err());
        assert_eq!(nested, Ok("inner".to_string()));
    }
}
