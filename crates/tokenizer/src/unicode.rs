//! Unicode facts the tokenizers need, shaped like llama.cpp's `unicode.cpp`: one category flag
//! per codepoint (from the Unicode general categories), a whitespace bit (`White_Space`), the
//! GPT-2 byte <-> unicode mapping, and the two single-codepoint maps llama.cpp uses (simple
//! lowercase, first codepoint of the NFD decomposition).

use std::sync::OnceLock;

use regex_syntax::hir::{Class, HirKind};

pub(crate) const UNDEFINED: u16 = 0x0001;
pub(crate) const NUMBER: u16 = 0x0002;
pub(crate) const LETTER: u16 = 0x0004;
pub(crate) const SEPARATOR: u16 = 0x0008;
pub(crate) const ACCENT_MARK: u16 = 0x0010;
pub(crate) const PUNCTUATION: u16 = 0x0020;
pub(crate) const SYMBOL: u16 = 0x0040;
pub(crate) const CONTROL: u16 = 0x0080;
pub(crate) const MASK_CATEGORIES: u16 = 0x00FF;
pub(crate) const WHITESPACE: u16 = 0x0100;

pub(crate) const MAX_CODEPOINTS: u32 = 0x110000;

/// Flags of one codepoint. `Flags(0)` is what llama.cpp returns outside the text being split.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Flags(pub u16);

impl Flags {
    pub fn is_number(self) -> bool {
        self.0 & NUMBER != 0
    }
    pub fn is_letter(self) -> bool {
        self.0 & LETTER != 0
    }
    pub fn is_accent_mark(self) -> bool {
        self.0 & ACCENT_MARK != 0
    }
    pub fn is_punctuation(self) -> bool {
        self.0 & PUNCTUATION != 0
    }
    pub fn is_symbol(self) -> bool {
        self.0 & SYMBOL != 0
    }
    pub fn is_control(self) -> bool {
        self.0 & CONTROL != 0
    }
    pub fn is_whitespace(self) -> bool {
        self.0 & WHITESPACE != 0
    }
    pub fn any(self) -> bool {
        self.0 != 0
    }
    pub fn category(self) -> u16 {
        self.0 & MASK_CATEGORIES
    }
}

/// Ranges of a Unicode class written in regex syntax (`\p{L}`, `\s`).
fn class_ranges(pattern: &str) -> Vec<(u32, u32)> {
    let hir = regex_syntax::Parser::new()
        .parse(pattern)
        .expect("built-in Unicode class pattern parses");
    match hir.kind() {
        HirKind::Class(Class::Unicode(c)) => c
            .ranges()
            .iter()
            .map(|r| (r.start() as u32, r.end() as u32))
            .collect(),
        _ => unreachable!("a single class pattern gives a class"),
    }
}

fn flags_table() -> &'static [u16] {
    static TABLE: OnceLock<Vec<u16>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = vec![UNDEFINED; MAX_CODEPOINTS as usize];
        for (pat, flag) in [
            (r"\p{N}", NUMBER),
            (r"\p{L}", LETTER),
            (r"\p{Z}", SEPARATOR),
            (r"\p{M}", ACCENT_MARK),
            (r"\p{P}", PUNCTUATION),
            (r"\p{S}", SYMBOL),
            (r"[\p{Cc}\p{Cf}\p{Co}]", CONTROL),
        ] {
            for (a, b) in class_ranges(pat) {
                t[a as usize..=b as usize].fill(flag);
            }
        }
        // Surrogates (Cs) are control in llama.cpp's table; Rust chars never hold them.
        t[0xD800..=0xDFFF].fill(CONTROL);
        for (a, b) in class_ranges(r"\s") {
            for f in &mut t[a as usize..=b as usize] {
                *f |= WHITESPACE;
            }
        }
        t
    })
}

pub(crate) fn flags(cpt: u32) -> Flags {
    let t = flags_table();
    Flags(if cpt < MAX_CODEPOINTS {
        t[cpt as usize]
    } else {
        UNDEFINED
    })
}

/// Simple lowercase mapping (one codepoint to one codepoint), as llama.cpp's `unicode_tolower`.
pub(crate) fn to_lower(cpt: u32) -> u32 {
    match char::from_u32(cpt) {
        Some(c) => c.to_lowercase().next().map_or(cpt, |l| l as u32),
        None => cpt,
    }
}

/// First codepoint of the canonical decomposition, as llama.cpp's `unicode_cpts_normalize_nfd`.
pub(crate) fn nfd_first(cpt: u32) -> u32 {
    match char::from_u32(cpt) {
        Some(c) => {
            let mut first = None;
            unicode_normalization::char::decompose_canonical(c, |d| {
                if first.is_none() {
                    first = Some(d as u32);
                }
            });
            first.unwrap_or(cpt)
        }
        None => cpt,
    }
}

/// Length of the UTF-8 sequence a lead byte announces (llama.cpp's `unicode_len_utf8`).
pub(crate) fn utf8_len(lead: u8) -> usize {
    const LOOKUP: [usize; 16] = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4];
    LOOKUP[(lead >> 4) as usize]
}

pub(crate) fn push_utf8(out: &mut Vec<u8>, cpt: u32) {
    let c = char::from_u32(cpt).unwrap_or('\u{FFFD}');
    let mut buf = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

/// The GPT-2 byte-level alphabet: byte -> codepoint.
pub(crate) fn byte_to_cpt_table() -> &'static [u32; 256] {
    static T: OnceLock<[u32; 256]> = OnceLock::new();
    T.get_or_init(|| {
        let mut t = [0u32; 256];
        let mut direct = [false; 256];
        for b in (0x21..=0x7E).chain(0xA1..=0xAC).chain(0xAE..=0xFF) {
            t[b] = b as u32;
            direct[b] = true;
        }
        let mut n = 0;
        for b in 0..256 {
            if !direct[b] {
                t[b] = 256 + n;
                n += 1;
            }
        }
        t
    })
}

/// The GPT-2 byte-level alphabet reversed: codepoint -> byte.
pub(crate) fn cpt_to_byte(cpt: u32) -> Option<u8> {
    static T: OnceLock<Vec<i16>> = OnceLock::new();
    let t = T.get_or_init(|| {
        let mut t = vec![-1i16; 512];
        for (b, &c) in byte_to_cpt_table().iter().enumerate() {
            t[c as usize] = b as i16;
        }
        t
    });
    t.get(cpt as usize)
        .and_then(|&b| if b >= 0 { Some(b as u8) } else { None })
}

/// Encode raw bytes into the GPT-2 byte-level alphabet (UTF-8 of the mapped codepoints).
pub(crate) fn byte_encode(bytes: &[u8], out: &mut Vec<u8>) {
    let t = byte_to_cpt_table();
    for &b in bytes {
        push_utf8(out, t[b as usize]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_of_known_codepoints() {
        assert_eq!(flags('a' as u32).category(), LETTER);
        assert_eq!(flags('7' as u32).category(), NUMBER);
        assert_eq!(flags('!' as u32).category(), PUNCTUATION);
        assert_eq!(flags('$' as u32).category(), SYMBOL);
        assert!(flags(' ' as u32).is_whitespace());
        assert_eq!(flags(' ' as u32).category(), SEPARATOR);
        assert!(flags('\n' as u32).is_whitespace());
        assert!(flags('\n' as u32).is_control());
        assert!(flags(0x3000).is_whitespace());
        assert_eq!(flags(0x0301).category(), ACCENT_MARK);
        assert_eq!(flags(0x10FFFF).category(), UNDEFINED);
        assert_eq!(flags(0x110000).0, UNDEFINED);
    }

    #[test]
    fn gpt2_byte_alphabet_round_trips() {
        for b in 0..=255u8 {
            assert_eq!(cpt_to_byte(byte_to_cpt_table()[b as usize]), Some(b));
        }
        assert_eq!(byte_to_cpt_table()[b' ' as usize], 0x120); // 'Ġ'
        assert_eq!(byte_to_cpt_table()[b'\n' as usize], 0x10A); // 'Ċ'
    }

    #[test]
    fn lower_and_nfd() {
        assert_eq!(to_lower('A' as u32), 'a' as u32);
        assert_eq!(to_lower(0x0130), 'i' as u32);
        assert_eq!(nfd_first('é' as u32), 'e' as u32);
        assert_eq!(nfd_first('x' as u32), 'x' as u32);
    }
}
