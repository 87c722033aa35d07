//! The part of SentencePiece's `ModelProto` (tokenizer.model) the converter needs: the pieces
//! with their scores and types. A minimal protobuf wire-format reader, no generated code.

use std::path::Path;

use crate::error::{ConvertError, Result};

/// `SentencePiece.Type` from sentencepiece_model.proto.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PieceType {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Piece {
    pub piece: String,
    pub score: f32,
    pub kind: PieceType,
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.b.get(self.pos)?;
            self.pos += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.b.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    /// One field: (number, wire type, payload for length-delimited / fixed, varint value).
    fn field(&mut self) -> Option<(u64, Field<'a>)> {
        let key = self.varint()?;
        let (num, wire) = (key >> 3, key & 7);
        let f = match wire {
            0 => Field::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Field::Fixed64
            }
            2 => {
                let n = usize::try_from(self.varint()?).ok()?;
                Field::Bytes(self.take(n)?)
            }
            5 => Field::Fixed32(self.take(4)?),
            _ => return None,
        };
        Some((num, f))
    }
}

enum Field<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32(&'a [u8]),
}

fn parse_piece(b: &[u8]) -> Option<Piece> {
    let mut r = Reader { b, pos: 0 };
    let mut p = Piece {
        piece: String::new(),
        score: 0.0,
        kind: PieceType::Normal,
    };
    while r.pos < b.len() {
        match r.field()? {
            (1, Field::Bytes(s)) => p.piece = String::from_utf8(s.to_vec()).ok()?,
            (2, Field::Fixed32(s)) => p.score = f32::from_le_bytes(s.try_into().ok()?),
            (3, Field::Varint(t)) => {
                p.kind = match t {
                    1 => PieceType::Normal,
                    2 => PieceType::Unknown,
                    3 => PieceType::Control,
                    4 => PieceType::UserDefined,
                    5 => PieceType::Unused,
                    6 => PieceType::Byte,
                    _ => return None,
                }
            }
            _ => {}
        }
    }
    Some(p)
}

/// Pieces of a serialized `ModelProto` (field 1, repeated `SentencePiece`).
pub(crate) fn parse_model(bytes: &[u8]) -> Option<Vec<Piece>> {
    let mut r = Reader { b: bytes, pos: 0 };
    let mut pieces = Vec::new();
    while r.pos < bytes.len() {
        if let (1, Field::Bytes(s)) = r.field()? {
            pieces.push(parse_piece(s)?);
        }
    }
    Some(pieces)
}

pub(crate) fn load(path: &Path) -> Result<Vec<Piece>> {
    let bytes = std::fs::read(path).map_err(|e| ConvertError::io(path, e))?;
    match parse_model(&bytes) {
        Some(p) if !p.is_empty() => Ok(p),
        _ => Err(ConvertError::Tokenizer {
            path: path.to_owned(),
            what: "not a SentencePiece model (protobuf ModelProto with pieces)".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece_bytes(piece: &str, score: f32, kind: Option<u64>) -> Vec<u8> {
        let mut m = vec![0x0a, piece.len() as u8];
        m.extend_from_slice(piece.as_bytes());
        m.push(0x15);
        m.extend_from_slice(&score.to_le_bytes());
        if let Some(k) = kind {
            m.extend_from_slice(&[0x18, k as u8]);
        }
        let mut out = vec![0x0a, m.len() as u8];
        out.extend(m);
        out
    }

    #[test]
    fn reads_pieces_and_skips_other_fields() {
        let mut b = piece_bytes("<unk>", 0.0, Some(2));
        b.extend(piece_bytes("▁a", -1.5, None));
        b.extend(piece_bytes("<0x0A>", 0.0, Some(6)));
        // trainer_spec (field 2) with a varint inside: must be skipped.
        b.extend([0x12, 0x02, 0x08, 0x01]);
        let p = parse_model(&b).unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(
            p[0],
            Piece {
                piece: "<unk>".into(),
                score: 0.0,
                kind: PieceType::Unknown
            }
        );
        assert_eq!(
            p[1],
            Piece {
                piece: "▁a".into(),
                score: -1.5,
                kind: PieceType::Normal
            }
        );
        assert_eq!(p[2].kind, PieceType::Byte);
        assert!(
            parse_model(&[0x0a, 0x05, 0x0a]).is_none(),
            "truncated message"
        );
    }
}
