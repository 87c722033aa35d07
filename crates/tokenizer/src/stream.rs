//! Streaming detokenization: token ids in, text out, never half a UTF-8 character.
//!
//! The output equals `String::from_utf8_lossy(&tokenizer.detokenize(ids, false, special))` for
//! the whole sequence. The pieces go through llama.cpp's three space clean-up passes as
//! streaming transducers (each holds back the few bytes its look-ahead needs), then through a
//! UTF-8 assembler that emits only complete characters and replaces invalid sequences the way
//! `String::from_utf8_lossy` does.

use std::collections::VecDeque;

use crate::{TokenId, Tokenizer};

/// One of llama.cpp's `clean_spaces` passes, run on a byte stream.
struct Pass {
    kind: u8,
    input: VecDeque<u8>,
    /// The previous input byte as the in-place C loop sees it (0 after a skipped byte).
    prev: u8,
    started: bool,
    /// The last output byte, held back because the next input may delete it.
    hold: Option<u8>,
    /// Pass 2 consumed the space after an apostrophe: drop the next input byte.
    skip: bool,
}

impl Pass {
    fn new(kind: u8) -> Pass {
        Pass {
            kind,
            input: VecDeque::new(),
            prev: 0,
            started: false,
            hold: None,
            skip: false,
        }
    }

    /// Bytes of look-ahead a decision needs.
    fn lookahead(&self) -> usize {
        match self.kind {
            1 => 0,
            2 => 1,
            _ => 2,
        }
    }

    fn emit(&mut self, b: u8, out: &mut Vec<u8>) {
        if let Some(h) = self.hold.replace(b) {
            out.push(h);
        }
    }

    fn run(&mut self, finished: bool, out: &mut Vec<u8>) {
        let need = 1 + self.lookahead();
        while !self.input.is_empty() && (finished || self.input.len() >= need) {
            let x = self.input.pop_front().expect("not empty");
            if !self.started {
                self.started = true;
                self.emit(x, out);
                self.prev = x;
                continue;
            }
            match self.kind {
                1 => {
                    if self.prev == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
                        self.hold = None;
                    }
                    self.emit(x, out);
                    self.prev = x;
                }
                2 => {
                    if self.skip {
                        self.skip = false;
                        self.prev = 0;
                        continue;
                    }
                    if x == b'\'' && self.prev == b' ' && self.input.front() == Some(&b' ') {
                        self.hold = None;
                        self.skip = true;
                    }
                    self.emit(x, out);
                    self.prev = x;
                }
                _ => {
                    if self.prev == b' ' && x == b'\'' {
                        if let Some(&x1) = self.input.front() {
                            if x1 == b's' || x1 == b'm' {
                                self.hold = None;
                            } else if x1 != b't' && x1 != b'd' {
                                if let Some(&x2) = self.input.get(1) {
                                    if (x1 == b'r' || x1 == b'v') && x2 == b'e' {
                                        self.hold = None;
                                    }
                                }
                            }
                        }
                    }
                    self.emit(x, out);
                    self.prev = x;
                }
            }
        }
        if finished {
            if let Some(h) = self.hold.take() {
                out.push(h);
            }
        }
    }
}

/// Turns a stream of token ids into text. Each [`push`](Self::push) returns the text that
/// became final (complete UTF-8 characters only); [`finish`](Self::finish) flushes the rest.
/// Concatenated, the outputs equal `tokenizer.detokenize(ids, false, unparse_special)` decoded
/// lossily.
pub struct StreamingDetokenizer<'a> {
    tok: &'a Tokenizer,
    unparse_special: bool,
    first: bool,
    passes: Vec<Pass>,
    bytes: Vec<u8>,
    scratch: Vec<u8>,
}

impl<'a> StreamingDetokenizer<'a> {
    pub fn new(tok: &'a Tokenizer, unparse_special: bool) -> Self {
        let passes = if tok.clean_spaces() {
            vec![Pass::new(1), Pass::new(2), Pass::new(3)]
        } else {
            Vec::new()
        };
        StreamingDetokenizer {
            tok,
            unparse_special,
            first: true,
            passes,
            bytes: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// Add one token; returns the text that is now final.
    pub fn push(&mut self, id: TokenId) -> String {
        let strip = self.first && self.tok.add_space_prefix();
        self.first = false;
        let piece = self.tok.piece_lstrip(id, self.unparse_special, strip);
        self.feed(piece.to_vec(), false);
        self.take_utf8(false)
    }

    /// Flush everything held back (an incomplete UTF-8 sequence becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        self.feed(Vec::new(), true);
        self.take_utf8(true)
    }

    fn feed(&mut self, mut data: Vec<u8>, finished: bool) {
        for p in &mut self.passes {
            p.input.extend(data.iter().copied());
            self.scratch.clear();
            p.run(finished, &mut self.scratch);
            data.clear();
            data.extend_from_slice(&self.scratch);
        }
        self.bytes.extend_from_slice(&data);
    }

    fn take_utf8(&mut self, finished: bool) -> String {
        let mut out = String::new();
        let mut pos = 0;
        loop {
            match std::str::from_utf8(&self.bytes[pos..]) {
                Ok(s) => {
                    out.push_str(s);
                    pos = self.bytes.len();
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(
                        std::str::from_utf8(&self.bytes[pos..pos + valid]).expect("validated"),
                    );
                    pos += valid;
                    match e.error_len() {
                        Some(n) => {
                            out.push('\u{FFFD}');
                            pos += n;
                        }
                        None => {
                            if finished {
                                out.push('\u{FFFD}');
                                pos = self.bytes.len();
                            }
                            break;
                        }
                    }
                }
            }
        }
        self.bytes.drain(..pos);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_passes(input: &[u8], chunk: usize) -> Vec<u8> {
        let mut passes = [Pass::new(1), Pass::new(2), Pass::new(3)];
        let mut result = Vec::new();
        let chunks: Vec<&[u8]> = input.chunks(chunk.max(1)).collect();
        for (ci, c) in chunks.iter().enumerate() {
            let fin = ci + 1 == chunks.len();
            let mut data = c.to_vec();
            for p in &mut passes {
                p.input.extend(data.iter().copied());
                let mut o = Vec::new();
                p.run(fin, &mut o);
                data = o;
            }
            result.extend(data);
        }
        result
    }

    #[test]
    fn streaming_passes_match_in_place_passes() {
        let cases = [
            "Hello , world ! it 's a ' b ' c ' d",
            " ' ' ' ",
            "we 're they 've I 'll ' s 'm",
            " ,",
            "  . ,!? ' '' 're 've 'd 't",
            "x",
        ];
        for c in cases {
            let mut want = c.as_bytes().to_vec();
            crate::clean_spaces_in_place(&mut want);
            for chunk in 1..6 {
                assert_eq!(run_passes(c.as_bytes(), chunk), want, "{c:?} chunk {chunk}");
            }
        }
    }
}
