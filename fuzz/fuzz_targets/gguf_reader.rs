//! Any byte string: the reader returns Ok or Err, never panics, and every accessor of a file
//! it accepted stays in bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = ferrite_gguf::GgufFile::from_bytes(data.to_vec()) {
        for (_, v) in f.metadata() {
            if let Some(a) = v.as_array() {
                for e in a.iter() {
                    let _ = e.type_name();
                }
            }
            let _ = v.to_string();
        }
        for t in f.tensors() {
            let _ = f.data_of(t).len();
        }
        let _ = f.get::<u32>("general.alignment");
    }
});
