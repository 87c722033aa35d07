//! The ggml tensor type table (type ids 0–41), as GGUF files store them.
//!
//! Facts from ggml.h / ggml-common.h (block sizes and bytes per block). Ids that ggml
//! removed (4, 5, 31–33, 36–38) are still named so errors can say what they were.

use std::fmt;

/// A ggml tensor type id as stored in a GGUF tensor info.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum GgmlType {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q4_2 = 4,
    Q4_3 = 5,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    IQ2_XXS = 16,
    IQ2_XS = 17,
    IQ3_XXS = 18,
    IQ1_S = 19,
    IQ4_NL = 20,
    IQ3_S = 21,
    IQ2_S = 22,
    IQ4_XS = 23,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    IQ1_M = 29,
    BF16 = 30,
    Q4_0_4_4 = 31,
    Q4_0_4_8 = 32,
    Q4_0_8_8 = 33,
    TQ1_0 = 34,
    TQ2_0 = 35,
    IQ4_NL_4_4 = 36,
    IQ4_NL_4_8 = 37,
    IQ4_NL_8_8 = 38,
    MXFP4 = 39,
    NVFP4 = 40,
    Q1_0 = 41,
}

/// Size facts of one type: `block_size` elements are stored in `type_size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeTraits {
    pub name: &'static str,
    pub block_size: usize,
    pub type_size: usize,
    /// False for ids ggml removed from GGUF files (their data cannot be interpreted).
    pub in_gguf: bool,
}

impl GgmlType {
    pub const ALL: [GgmlType; 42] = {
        use GgmlType::*;
        [
            F32, F16, Q4_0, Q4_1, Q4_2, Q4_3, Q5_0, Q5_1, Q8_0, Q8_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
            Q8_K, IQ2_XXS, IQ2_XS, IQ3_XXS, IQ1_S, IQ4_NL, IQ3_S, IQ2_S, IQ4_XS, I8, I16, I32, I64,
            F64, IQ1_M, BF16, Q4_0_4_4, Q4_0_4_8, Q4_0_8_8, TQ1_0, TQ2_0, IQ4_NL_4_4, IQ4_NL_4_8,
            IQ4_NL_8_8, MXFP4, NVFP4, Q1_0,
        ]
    };

    /// The type for a raw id, or `None` past the table.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        Self::ALL.get(id as usize).copied()
    }

    pub fn id(self) -> u32 {
        self as u32
    }

    pub fn traits(self) -> TypeTraits {
        use GgmlType::*;
        let (name, block_size, type_size, in_gguf) = match self {
            F32 => ("F32", 1, 4, true),
            F16 => ("F16", 1, 2, true),
            Q4_0 => ("Q4_0", 32, 18, true),
            Q4_1 => ("Q4_1", 32, 20, true),
            Q4_2 => ("Q4_2", 32, 0, false),
            Q4_3 => ("Q4_3", 32, 0, false),
            Q5_0 => ("Q5_0", 32, 22, true),
            Q5_1 => ("Q5_1", 32, 24, true),
            Q8_0 => ("Q8_0", 32, 34, true),
            // ggml's block_q8_1 is {f16 d, f16 s, i8[32]} = 36 bytes.
            Q8_1 => ("Q8_1", 32, 36, true),
            Q2_K => ("Q2_K", 256, 84, true),
            Q3_K => ("Q3_K", 256, 110, true),
            Q4_K => ("Q4_K", 256, 144, true),
            Q5_K => ("Q5_K", 256, 176, true),
            Q6_K => ("Q6_K", 256, 210, true),
            Q8_K => ("Q8_K", 256, 292, true),
            IQ2_XXS => ("IQ2_XXS", 256, 66, true),
            IQ2_XS => ("IQ2_XS", 256, 74, true),
            IQ3_XXS => ("IQ3_XXS", 256, 98, true),
            IQ1_S => ("IQ1_S", 256, 50, true),
            IQ4_NL => ("IQ4_NL", 32, 18, true),
            IQ3_S => ("IQ3_S", 256, 110, true),
            IQ2_S => ("IQ2_S", 256, 82, true),
            IQ4_XS => ("IQ4_XS", 256, 136, true),
            I8 => ("I8", 1, 1, true),
            I16 => ("I16", 1, 2, true),
            I32 => ("I32", 1, 4, true),
            I64 => ("I64", 1, 8, true),
            F64 => ("F64", 1, 8, true),
            IQ1_M => ("IQ1_M", 256, 56, true),
            BF16 => ("BF16", 1, 2, true),
            Q4_0_4_4 => ("Q4_0_4_4", 32, 18, false),
            Q4_0_4_8 => ("Q4_0_4_8", 32, 18, false),
            Q4_0_8_8 => ("Q4_0_8_8", 32, 18, false),
            TQ1_0 => ("TQ1_0", 256, 54, true),
            TQ2_0 => ("TQ2_0", 256, 66, true),
            IQ4_NL_4_4 => ("IQ4_NL_4_4", 32, 18, false),
            IQ4_NL_4_8 => ("IQ4_NL_4_8", 32, 18, false),
            IQ4_NL_8_8 => ("IQ4_NL_8_8", 32, 18, false),
            MXFP4 => ("MXFP4", 32, 17, true),
            NVFP4 => ("NVFP4", 64, 36, true),
            Q1_0 => ("Q1_0", 128, 18, true),
        };
        TypeTraits {
            name,
            block_size,
            type_size,
            in_gguf,
        }
    }

    pub fn name(self) -> &'static str {
        self.traits().name
    }
    pub fn block_size(self) -> usize {
        self.traits().block_size
    }
    pub fn type_size(self) -> usize {
        self.traits().type_size
    }

    /// Parse a type name, case-insensitively ("q4_k", "Q4_K", "bf16").
    pub fn from_name(name: &str) -> Option<GgmlType> {
        Self::ALL
            .iter()
            .copied()
            .find(|t| t.name().eq_ignore_ascii_case(name))
    }

    /// Bytes needed for a row of `n` elements, or `None` when `n` is not a whole number of
    /// blocks, the type has no GGUF layout, or the size overflows.
    pub fn row_size(self, n: u64) -> Option<u64> {
        let t = self.traits();
        if !t.in_gguf || !n.is_multiple_of(t.block_size as u64) {
            return None;
        }
        (n / t.block_size as u64).checked_mul(t.type_size as u64)
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (type {})", self.name(), self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_position() {
        for (i, t) in GgmlType::ALL.iter().enumerate() {
            assert_eq!(t.id() as usize, i, "{t:?}");
            assert_eq!(GgmlType::from_id(i as u32), Some(*t));
            assert_eq!(GgmlType::from_name(t.name()), Some(*t));
        }
        assert_eq!(GgmlType::from_id(42), None);
    }

    #[test]
    fn row_size_checks_blocks_and_overflow() {
        assert_eq!(GgmlType::Q4_K.row_size(512), Some(288));
        assert_eq!(GgmlType::Q4_K.row_size(100), None);
        assert_eq!(GgmlType::F32.row_size(u64::MAX), None);
        assert_eq!(GgmlType::Q4_2.row_size(32), None);
        assert_eq!(format!("{}", GgmlType::IQ2_XXS), "IQ2_XXS (type 16)");
    }
}
