//! A configuration file through the whole compiler (`sipacd check` and
//! reload run the same): errors are reported, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Prompts and schedules are looked up next to the file: a folder
    // that holds nothing, so every named file is simply missing.
    let path = Path::new("/nonexistent-sipacd-fuzz/sipacd.toml");
    if let Err(errs) = sipacd::config::parse_str(text, path) {
        let _ = errs.to_string();
    }
});
