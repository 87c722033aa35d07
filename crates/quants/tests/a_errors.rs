//! Bad sizes must come back as `QuantError`, never a panic. Oracle: the error contract in lib.rs.
use ferrite_quants::*;

const TYPES: &[GgmlType] = &[
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q8_1,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::Q8_K,
];

#[test]
fn bad_sizes_are_errors() {
    for &ty in TYPES {
        let k = kernels(ty).unwrap();
        let bs = ty.block_size();
        let n = 2 * bs.max(32);
        let rb = row_bytes(ty, n).unwrap();
        let ab = row_bytes(k.vec_dot_type, n).unwrap();
        let x = vec![1.0f32; n];
        // source one byte short / long
        let mut out = vec![0f32; n];
        assert!(matches!(
            dequantize_row(ty, &vec![0u8; rb - 1], &mut out),
            Err(QuantError::BadLength { .. })
        ));
        assert!(matches!(
            dequantize_row(ty, &vec![0u8; rb + 1], &mut out),
            Err(QuantError::BadLength { .. })
        ));
        // destination wrong
        assert!(matches!(
            quantize_row(ty, &x, &mut vec![0u8; rb + 1]),
            Err(QuantError::BadLength { .. })
        ));
        assert!(matches!(
            quantize_row_imatrix(ty, &x, &mut vec![0u8; rb], Some(&vec![1.0; n - 1])),
            Err(QuantError::BadLength { .. })
        ));
        // not block aligned
        if bs > 1 {
            let mut d = vec![0u8; rb];
            assert!(matches!(
                quantize_row(ty, &x[..n - 1], &mut d),
                Err(QuantError::NotBlockAligned { .. })
            ));
            assert!(matches!(
                vec_dot(ty, n - 1, &d, &vec![0u8; ab]),
                Err(QuantError::NotBlockAligned { .. })
            ));
        }
        // vec_dot with a short activation / weight
        let w = vec![0u8; rb];
        assert!(matches!(
            vec_dot(ty, n, &w, &vec![0u8; ab - 1]),
            Err(QuantError::BadLength { .. })
        ));
        assert!(matches!(
            vec_dot(ty, n, &w[..rb - 1], &vec![0u8; ab]),
            Err(QuantError::BadLength { .. })
        ));
        // vec_dot_rows: rows don't match out.len()
        let mut o = vec![0f32; 3];
        assert!(matches!(
            vec_dot_rows(ty, n, &vec![0u8; 2 * rb], &vec![0u8; ab], &mut o),
            Err(QuantError::BadLength { .. })
        ));
        assert!(vec_dot_rows(ty, n, &vec![0u8; 3 * rb], &vec![0u8; ab], &mut o).is_ok());
    }
    assert_eq!(
        kernels(GgmlType::Q4_2).err(),
        Some(QuantError::Unsupported(GgmlType::Q4_2))
    );
}
