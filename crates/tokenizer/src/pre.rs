//! BPE pre-tokenization: split the text into words the way llama.cpp's `unicode_regex_split`
//! does. Each regex of the pre type's list refines the pieces of the previous one. Three regexes
//! (GPT-2's, Llama 3's, Qwen 2's) have hand-written splitters in llama.cpp, mirrored here; the
//! others run through a backtracking regex engine (fancy-regex, which has the lookaheads the
//! lists use) in llama.cpp's two modes:
//! - a regex with `\p{..}` classes runs on a *collapsed* text where every non-ASCII codepoint
//!   is replaced by one marker per category (and `\p{X}` by `[marker + ASCII members]`), as
//!   llama.cpp does to feed `std::regex`;
//! - any other regex runs on the codepoints, with non-ASCII whitespace replaced by U+000B
//!   (llama.cpp's `std::wregex` only knows ASCII whitespace).

use fancy_regex::Regex;

use crate::pre_table::PreInfo;
use crate::unicode::{self, Flags};

const GPT2_RE: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
const LLAMA3_RE_ORIG: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const LLAMA3_RE: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_RE: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const NEWLINES_RE: &str = r"[^\n]+|[\n]+";
const DIGIT_GROUPS_RE: &str = r"\d{1,3}(?=(?:\d{3})*\b)";
const AFMOE_DIGITS_RE: &str = r"\p{AFMoE_digits}";

/// Unicode categories llama.cpp collapses, with the marker codepoint and the ASCII members.
const UCATS: &[(&str, u16)] = &[
    (r"\p{N}", unicode::NUMBER),
    (r"\p{L}", unicode::LETTER),
    (r"\p{P}", unicode::PUNCTUATION),
    (r"\p{M}", unicode::ACCENT_MARK),
    (r"\p{S}", unicode::SYMBOL),
    (r"\p{Lu}", unicode::LETTER),
    (r"\p{Ll}", unicode::LETTER),
    (r"\p{Lt}", unicode::LETTER),
    (r"\p{Lm}", unicode::LETTER),
    (r"\p{Lo}", unicode::LETTER),
];

fn ucat_marker(cat: u16) -> Option<u32> {
    Some(match cat {
        unicode::NUMBER => 0xD1,
        unicode::LETTER => 0xD2,
        unicode::PUNCTUATION => 0xD3,
        unicode::ACCENT_MARK => 0xD4,
        unicode::SYMBOL => 0xD5,
        _ => return None,
    })
}

/// The ASCII members of a collapsed category, as a regex class body.
fn ucat_ascii(cat: u16) -> &'static str {
    match cat {
        unicode::NUMBER => r"\x30-\x39",
        unicode::LETTER => r"\x41-\x5A\x61-\x7A",
        unicode::PUNCTUATION => {
            r"\x21-\x23\x25-\x2A\x2C-\x2F\x3A-\x3B\x3F-\x40\x5B-\x5D\x5F\x7B\x7D"
        }
        unicode::SYMBOL => r"\x24\x2B\x3C-\x3E\x5E\x60\x7C",
        _ => "",
    }
}

enum Step {
    Gpt2,
    /// Llama 3 (`digits` = 3) and Qwen 2 (`digits` = 1) splitters.
    Llama3 {
        digits: usize,
    },
    Newlines,
    /// Digit runs cut into groups of three from the right (afmoe, tiny_aya).
    DigitGroups,
    Regex {
        re: Box<Regex>,
        collapsed: bool,
    },
}

pub(crate) struct PreTokenizer {
    steps: Vec<Step>,
    pub byte_encode: bool,
}

impl PreTokenizer {
    /// Compile a pre type's regex list. Errors name the regex that cannot be run.
    pub fn new(info: &PreInfo) -> Result<PreTokenizer, String> {
        let mut steps = Vec::new();
        for &r in info.regexes {
            steps.push(match r {
                GPT2_RE => Step::Gpt2,
                LLAMA3_RE | LLAMA3_RE_ORIG => Step::Llama3 { digits: 3 },
                QWEN2_RE => Step::Llama3 { digits: 1 },
                NEWLINES_RE => Step::Newlines,
                DIGIT_GROUPS_RE | AFMOE_DIGITS_RE => Step::DigitGroups,
                r"\p{Han}+" => {
                    return Err(format!(
                        "pre type '{}' needs llama.cpp's Kimi-K2 splitter, which ferrite does not implement",
                        info.kind
                    ))
                }
                _ => compile(r)?,
            });
        }
        Ok(PreTokenizer {
            steps,
            byte_encode: info.byte_encode,
        })
    }

    /// Split `text` into words (byte-level encoded when the pre type says so).
    pub fn split(&self, text: &str) -> Vec<Vec<u8>> {
        let cpts: Vec<u32> = text.chars().map(|c| c as u32).collect();
        let mut offsets = vec![cpts.len()];
        let mut collapsed: Option<Vec<char>> = None;
        let mut wide: Option<Vec<char>> = None;
        for step in &self.steps {
            offsets = match step {
                Step::Gpt2 => split_gpt2(&cpts, &offsets),
                Step::Llama3 { digits } => split_llama3(&cpts, &offsets, *digits),
                Step::Newlines => split_newlines(&cpts, &offsets),
                Step::DigitGroups => split_digit_groups(&cpts, &offsets),
                Step::Regex { re, collapsed: c } => {
                    let chars = if *c {
                        collapsed.get_or_insert_with(|| collapse(&cpts))
                    } else {
                        wide.get_or_insert_with(|| widen(&cpts))
                    };
                    split_regex(re, chars, &offsets)
                }
            };
        }
        let mut words = Vec::with_capacity(offsets.len());
        let mut start = 0;
        let mut utf8 = Vec::new();
        for &len in &offsets {
            utf8.clear();
            for &c in &cpts[start..start + len] {
                unicode::push_utf8(&mut utf8, c);
            }
            start += len;
            if self.byte_encode {
                let mut w = Vec::with_capacity(utf8.len() * 2);
                unicode::byte_encode(&utf8, &mut w);
                words.push(w);
            } else {
                words.push(utf8.clone());
            }
        }
        words
    }
}

/// Build the regex llama.cpp would run: collapsed when it uses a Unicode category.
fn compile(regex: &str) -> Result<Step, String> {
    let uses_ucat = UCATS.iter().any(|(p, _)| regex.contains(p));
    let pattern = if uses_ucat {
        if !regex.is_ascii() {
            return Err(format!(
                "regex {regex:?} mixes Unicode categories and non-ASCII characters (llama.cpp refuses it too)"
            ));
        }
        collapse_regex(regex)
    } else {
        // std::wregex: \d is ASCII digits only.
        regex.replace(r"\d", "[0-9]")
    };
    let re = Regex::new(&pattern).map_err(|e| format!("regex {regex:?}: {e}"))?;
    Ok(Step::Regex {
        re: Box::new(re),
        collapsed: uses_ucat,
    })
}

/// llama.cpp's regex rewrite for the collapsed text: `\p{X}` becomes the category's marker plus
/// its ASCII members (inside an existing class, or wrapped in a new one).
fn collapse_regex(regex: &str) -> String {
    let b = regex.as_bytes();
    let mut out = String::with_capacity(regex.len() * 2);
    let mut inside = false;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'[' && (i == 0 || b[i - 1] != b'\\') {
            out.push('[');
            inside = true;
            i += 1;
            continue;
        }
        if inside && b[i] == b']' && b[i - 1] != b'\\' {
            out.push(']');
            inside = false;
            i += 1;
            continue;
        }
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1] == b'p' && b[i + 2] == b'{' {
            if let Some(close) = regex[i + 3..].find('}').map(|c| c + i + 3) {
                if close <= i + 10 {
                    let pat = &regex[i..=close];
                    if let Some(&(_, cat)) = UCATS.iter().find(|(p, _)| *p == pat) {
                        if !inside {
                            out.push('[');
                        }
                        if let Some(m) = ucat_marker(cat) {
                            out.push_str(&format!("\\x{{{m:X}}}"));
                        }
                        out.push_str(ucat_ascii(cat));
                        if !inside {
                            out.push(']');
                        }
                        i = close + 1;
                        continue;
                    }
                }
            }
        }
        out.push(b[i] as char);
        i += 1;
    }
    out
}

/// One char per codepoint: ASCII kept, non-ASCII whitespace -> U+000B, others -> the marker of
/// their category (U+00D0 when the category has none).
fn collapse(cpts: &[u32]) -> Vec<char> {
    cpts.iter()
        .map(|&c| {
            if c < 128 {
                return c as u8 as char;
            }
            let f = unicode::flags(c);
            if f.is_whitespace() {
                '\u{0B}'
            } else {
                let m = ucat_marker(f.category()).unwrap_or(0xD0);
                char::from_u32(m).expect("marker is a valid char")
            }
        })
        .collect()
}

fn widen(cpts: &[u32]) -> Vec<char> {
    cpts.iter()
        .map(|&c| {
            if c > 0x7F && unicode::flags(c).is_whitespace() {
                '\u{0B}'
            } else {
                char::from_u32(c).unwrap_or('\u{FFFD}')
            }
        })
        .collect()
}

/// `std::regex_iterator` over each piece: matches and the gaps between them become pieces.
fn split_regex(re: &Regex, chars: &[char], offsets: &[usize]) -> Vec<usize> {
    let mut out = Vec::with_capacity(offsets.len());
    let mut start = 0;
    let mut seg = String::new();
    let mut byte_at: Vec<usize> = Vec::new();
    for &len in offsets {
        seg.clear();
        byte_at.clear();
        for &c in &chars[start..start + len] {
            byte_at.push(seg.len());
            seg.push(c);
        }
        byte_at.push(seg.len());
        let to_cpt = |b: usize| byte_at.binary_search(&b).unwrap_or_else(|i| i);
        let mut prev = 0usize;
        for m in re.find_iter(&seg) {
            let Ok(m) = m else { break };
            let (ms, me) = (to_cpt(m.start()), to_cpt(m.end()));
            if ms > prev {
                out.push(ms - prev);
            }
            if me > ms {
                out.push(me - ms);
            }
            prev = me;
        }
        if prev < len {
            out.push(len - prev);
        }
        start += len;
    }
    out
}

/// Shared scaffolding of llama.cpp's hand-written splitters: positions outside the current
/// piece read as "out of range" (codepoint `u32::MAX`, empty flags).
struct Piece<'a> {
    cpts: &'a [u32],
    ini: usize,
    end: usize,
    prev_end: usize,
    out: &'a mut Vec<usize>,
}

const OUT_OF_RANGE: u32 = u32::MAX;

impl Piece<'_> {
    fn cpt(&self, pos: usize) -> u32 {
        if self.ini <= pos && pos < self.end {
            self.cpts[pos]
        } else {
            OUT_OF_RANGE
        }
    }
    fn flags(&self, pos: usize) -> Flags {
        if self.ini <= pos && pos < self.end {
            unicode::flags(self.cpts[pos])
        } else {
            Flags(0)
        }
    }
    fn add(&mut self, end: usize) -> usize {
        let len = end - self.prev_end;
        if len > 0 {
            self.out.push(len);
        }
        self.prev_end = end;
        len
    }
}

fn for_each_piece(
    cpts: &[u32],
    offsets: &[usize],
    mut f: impl FnMut(&mut Piece<'_>),
) -> Vec<usize> {
    let mut out = Vec::with_capacity(offsets.len());
    let mut start = 0;
    for &len in offsets {
        let mut p = Piece {
            cpts,
            ini: start,
            end: start + len,
            prev_end: start,
            out: &mut out,
        };
        f(&mut p);
        start += len;
    }
    out
}

fn is_nonword(f: Flags) -> bool {
    !(f.is_whitespace() || f.is_letter() || f.is_number()) && f.any()
}

/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
fn split_gpt2(cpts: &[u32], offsets: &[usize]) -> Vec<usize> {
    for_each_piece(cpts, offsets, |p| {
        let mut pos = p.ini;
        while pos < p.end {
            let cpt = p.cpt(pos);
            let flags = p.flags(pos);
            if cpt == '\'' as u32 && pos + 1 < p.end {
                let n = p.cpt(pos + 1);
                if [b's', b't', b'm', b'd'].iter().any(|&c| n == c as u32) {
                    pos += p.add(pos + 2);
                    continue;
                }
                if pos + 2 < p.end {
                    let nn = p.cpt(pos + 2);
                    let pair = |a: u8, b: u8| n == a as u32 && nn == b as u32;
                    if pair(b'r', b'e') || pair(b'v', b'e') || pair(b'l', b'l') {
                        pos += p.add(pos + 3);
                        continue;
                    }
                }
            }
            let sp = cpt == ' ' as u32;
            let mut flags2 = if sp { p.flags(pos + 1) } else { flags };
            if flags2.is_letter() {
                pos += sp as usize;
                while flags2.is_letter() {
                    pos += 1;
                    flags2 = p.flags(pos);
                }
                p.add(pos);
                continue;
            }
            if flags2.is_number() {
                pos += sp as usize;
                while flags2.is_number() {
                    pos += 1;
                    flags2 = p.flags(pos);
                }
                p.add(pos);
                continue;
            }
            if is_nonword(flags2) {
                pos += sp as usize;
                while is_nonword(flags2) {
                    pos += 1;
                    flags2 = p.flags(pos);
                }
                p.add(pos);
                continue;
            }
            let mut nws = 0;
            while p.flags(pos + nws).is_whitespace() {
                nws += 1;
            }
            if nws > 1 && p.cpt(pos + nws) != OUT_OF_RANGE {
                pos += nws - 1;
                p.add(pos);
                continue;
            }
            if nws > 0 {
                pos += nws;
                p.add(pos);
                continue;
            }
            pos += 1;
            p.add(pos);
        }
    })
}

/// Llama 3 (`\p{N}{1,3}`, digits = 3) and Qwen 2 (`\p{N}`, digits = 1):
/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,digits}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
fn split_llama3(cpts: &[u32], offsets: &[usize], digits: usize) -> Vec<usize> {
    let is_rn = |c: u32| c == '\r' as u32 || c == '\n' as u32;
    for_each_piece(cpts, offsets, |p| {
        let mut pos = p.ini;
        while pos < p.end {
            let cpt = p.cpt(pos);
            let flags = p.flags(pos);
            if cpt == '\'' as u32 && pos + 1 < p.end {
                let n = unicode::to_lower(p.cpt(pos + 1));
                if [b's', b't', b'm', b'd'].iter().any(|&c| n == c as u32) {
                    pos += p.add(pos + 2);
                    continue;
                }
                if pos + 2 < p.end {
                    let nn = unicode::to_lower(p.cpt(pos + 2));
                    let pair = |a: u8, b: u8| n == a as u32 && nn == b as u32;
                    if pair(b'r', b'e') || pair(b'v', b'e') || pair(b'l', b'l') {
                        pos += p.add(pos + 3);
                        continue;
                    }
                }
            }
            if !(is_rn(cpt) || flags.is_number())
                && (flags.is_letter() || p.flags(pos + 1).is_letter())
            {
                pos += 1;
                while p.flags(pos).is_letter() {
                    pos += 1;
                }
                p.add(pos);
                continue;
            }
            if flags.is_number() {
                let mut ini = pos;
                while p.flags(pos).is_number() {
                    pos += 1;
                    if pos - ini >= digits {
                        p.add(pos);
                        ini = pos;
                    }
                }
                p.add(pos);
                continue;
            }
            let sp = cpt == ' ' as u32;
            let mut flags2 = if sp { p.flags(pos + 1) } else { flags };
            // llama.cpp tests the current codepoint's flags here, not flags2's.
            if !(flags2.is_whitespace() || flags2.is_letter() || flags2.is_number()) && flags.any()
            {
                pos += sp as usize;
                while is_nonword(flags2) {
                    pos += 1;
                    flags2 = p.flags(pos);
                }
                while is_rn(p.cpt(pos)) {
                    pos += 1;
                }
                p.add(pos);
                continue;
            }
            let mut nws = 0;
            let mut last_rn_end = 0;
            while p.flags(pos + nws).is_whitespace() {
                if is_rn(p.cpt(pos + nws)) {
                    last_rn_end = pos + nws + 1;
                }
                nws += 1;
            }
            if last_rn_end > 0 {
                pos = last_rn_end;
                p.add(pos);
                continue;
            }
            if nws > 1 && p.cpt(pos + nws) != OUT_OF_RANGE {
                pos += nws - 1;
                p.add(pos);
                continue;
            }
            if nws > 0 {
                pos += nws;
                p.add(pos);
                continue;
            }
            pos += 1;
            p.add(pos);
        }
    })
}

/// `[^\n]+|[\n]+`
fn split_newlines(cpts: &[u32], offsets: &[usize]) -> Vec<usize> {
    let mut out = Vec::with_capacity(offsets.len());
    let mut start = 0;
    for &len in offsets {
        let end = start + len;
        let mut pos = start;
        while pos < end {
            let nl = cpts[pos] == '\n' as u32;
            let run = pos;
            while pos < end && (cpts[pos] == '\n' as u32) == nl {
                pos += 1;
            }
            out.push(pos - run);
        }
        start = end;
    }
    out
}

/// Digit runs split into a leading 1-2 digits then groups of 3; other text kept in pieces.
fn split_digit_groups(cpts: &[u32], offsets: &[usize]) -> Vec<usize> {
    for_each_piece(cpts, offsets, |p| {
        let mut pos = p.ini;
        while pos < p.end {
            if p.flags(pos).is_number() {
                let digit_start = pos;
                while pos < p.end && p.flags(pos).is_number() {
                    pos += 1;
                }
                let count = pos - digit_start;
                let mut cur = digit_start;
                let rem = count % 3;
                if rem > 0 {
                    p.add(cur + rem);
                    cur += rem;
                }
                while cur < digit_start + count {
                    p.add(cur + 3);
                    cur += 3;
                }
                continue;
            }
            pos += 1;
        }
        if p.prev_end < p.end {
            let end = p.end;
            p.add(end);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(pre: &str, text: &str) -> Vec<String> {
        let info = crate::pre_table::lookup(pre).unwrap();
        let mut info = info;
        info.byte_encode = false;
        let p = PreTokenizer::new(&info).unwrap();
        p.split(text)
            .into_iter()
            .map(|w| String::from_utf8(w).unwrap())
            .collect()
    }

    #[test]
    fn collapsed_regex_rewrites_categories() {
        assert_eq!(collapse_regex(r"\p{N}"), r"[\x{D1}\x30-\x39]");
        assert_eq!(
            collapse_regex(r"[^\s\p{L}]"),
            r"[^\s\x{D2}\x41-\x5A\x61-\x7A]"
        );
    }

    #[test]
    fn gpt2_split() {
        assert_eq!(
            words("gpt-2", "Hello world  it's 123!!"),
            ["Hello", " world", " ", " it", "'s", " 123", "!!"]
        );
    }

    #[test]
    fn custom_and_regex_paths_agree_for_qwen2() {
        // The Qwen 2 list runs through the custom splitter; the same regex through fancy-regex
        // on the collapsed text must cut the same words.
        let step = compile(QWEN2_RE).unwrap();
        let text = "Hello  world\n\n  x 1234 don't DON'T 東京 ¿¡ \t\r\nend   ";
        let cpts: Vec<u32> = text.chars().map(|c| c as u32).collect();
        let offs = vec![cpts.len()];
        let custom = split_llama3(&cpts, &offs, 1);
        let Step::Regex { re, .. } = step else {
            panic!()
        };
        let via_regex = split_regex(&re, &collapse(&cpts), &offs);
        assert_eq!(custom, via_regex);
    }
}
