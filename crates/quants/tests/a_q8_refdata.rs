//! Activation quantizers against ggml's own outputs (refdata/ggml-quants/*.act.*.bin).
mod a_util;
use a_util::*;
use ferrite_quants::{quantize_row, GgmlType};

/// Oracle: `T.act.V.bin` = ggml `from_float` of `act_f32.npy` (16 rows × 256); must be
/// byte-identical (tolerance: none). Checks every V used by ggml_ref.json that is a q8 type.
#[test]
fn q8_activation_bytes_match_ggml() {
    let act = read_npy_f32("ggml-quants/act_f32.npy");
    assert_eq!(act.len(), 4096);
    let mut checked = 0;
    for e in ggml_ref() {
        let vt = match e.vec_dot_type.as_str() {
            "q8_0" => GgmlType::Q8_0,
            "q8_1" => GgmlType::Q8_1,
            "q8_K" => GgmlType::Q8_K,
            _ => continue,
        };
        let want = read(&format!(
            "ggml-quants/{}.act.{}.bin",
            e.name, e.vec_dot_type
        ));
        let rb = ferrite_quants::row_bytes(vt, 256).unwrap();
        assert_eq!(want.len(), rb * 16);
        for r in 0..16 {
            let row = &act[r * 256..(r + 1) * 256];
            let mut got = vec![0u8; rb];
            quantize_row(vt, row, &mut got).unwrap();
            assert_eq!(
                got,
                &want[r * rb..(r + 1) * rb],
                "{} act {} row {r} (reference)",
                e.name,
                e.vec_dot_type
            );
            // The fast (SIMD-dispatched) quantizer must give the same bytes.
            let mut fast = vec![0u8; rb];
            match vt {
                GgmlType::Q8_0 => ferrite_quants::q8::quantize_bytes_q8_0(row, &mut fast),
                GgmlType::Q8_1 => ferrite_quants::q8::quantize_bytes_q8_1(row, &mut fast),
                _ => ferrite_quants::q8::quantize_bytes_q8_k(row, &mut fast),
            }
            assert_eq!(fast, got, "{} fast act {} row {r}", e.name, e.vec_dot_type);
        }
        checked += 1;
    }
    assert!(
        checked >= 10,
        "expected q8 activation files for most types, got {checked}"
    );
}
