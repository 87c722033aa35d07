//! A tiny reader for NumPy `.npy` files: little-endian `<f4`, `<i8` and `<i4`, C order,
//! format versions 1.0, 2.0 and 3.0. Enough for the oracles in `shared/refdata`.

use std::path::Path;

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The parsed header of an `.npy` file and the offset of its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyHeader {
    /// The dtype string, e.g. `<f4`.
    pub descr: String,
    pub fortran_order: bool,
    pub shape: Vec<usize>,
    /// Byte offset of the array data from the start of the file.
    pub data_offset: usize,
}

impl NpyHeader {
    /// Number of elements (1 for a 0-d array).
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Parse the header of an `.npy` file held in `bytes`.
pub fn parse_npy_header(bytes: &[u8]) -> Result<NpyHeader, String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not an .npy file (bad magic)".into());
    }
    let major = bytes[6];
    let (header_len, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err("truncated .npy header".into());
            }
            let n = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            (n as usize, 12)
        }
        v => return Err(format!("unsupported .npy format version {v}")),
    };
    let end = start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or("truncated .npy header")?;
    let header = std::str::from_utf8(&bytes[start..end])
        .map_err(|_| "the .npy header is not UTF-8".to_string())?;

    let descr = dict_value(header, "descr")?;
    let descr = descr
        .strip_prefix('\'')
        .and_then(|d| d.strip_suffix('\''))
        .ok_or_else(|| format!("bad descr in .npy header: {header}"))?
        .to_string();
    let fortran_order = match dict_value(header, "fortran_order")? {
        "True" => true,
        "False" => false,
        v => return Err(format!("bad fortran_order {v:?} in .npy header")),
    };
    let shape_text = dict_value(header, "shape")?;
    let inner = shape_text
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| format!("bad shape in .npy header: {header}"))?;
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim_end_matches('L')
                .parse::<usize>()
                .map_err(|_| format!("bad dimension {s:?} in .npy shape"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(NpyHeader {
        descr,
        fortran_order,
        shape,
        data_offset: end,
    })
}

/// The text of the value of `'key':` in the header's Python dict literal: a quoted string, a
/// parenthesised tuple, or a bare word.
fn dict_value<'a>(header: &'a str, key: &str) -> Result<&'a str, String> {
    let pat = format!("'{key}':");
    let at = header
        .find(&pat)
        .ok_or_else(|| format!("key {key:?} missing from .npy header: {header}"))?;
    let rest = header[at + pat.len()..].trim_start();
    let len = match rest.chars().next() {
        Some('\'') => rest[1..].find('\'').map(|i| i + 2),
        Some('(') => rest.find(')').map(|i| i + 1),
        Some(_) => rest.find([',', '}']),
        None => None,
    }
    .ok_or_else(|| format!("unterminated value of {key:?} in .npy header: {header}"))?;
    Ok(rest[..len].trim())
}

/// Decode the data of a C-order array whose dtype must be `want` (itemsize `N` bytes).
fn decode<T, const N: usize>(
    bytes: &[u8],
    want: &str,
    from_le: fn([u8; N]) -> T,
) -> Result<(Vec<usize>, Vec<T>), String> {
    let h = parse_npy_header(bytes)?;
    if h.descr != want {
        return Err(format!("dtype is {:?}, expected {want:?}", h.descr));
    }
    if h.fortran_order && h.shape.len() > 1 {
        return Err("Fortran-order arrays are not supported".into());
    }
    let data = &bytes[h.data_offset..];
    let n = h.len();
    if data.len() != n * N {
        return Err(format!(
            "data is {} bytes, shape {:?} of {want} needs {}",
            data.len(),
            h.shape,
            n * N
        ));
    }
    let values = data
        .chunks_exact(N)
        .map(|c| from_le(c.try_into().expect("chunk of N bytes")))
        .collect();
    Ok((h.shape, values))
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Parse `.npy` bytes holding `<f4` data.
pub fn parse_npy_f32(bytes: &[u8]) -> Result<(Vec<usize>, Vec<f32>), String> {
    decode(bytes, "<f4", f32::from_le_bytes)
}

/// Parse `.npy` bytes holding `<i8` data.
pub fn parse_npy_i64(bytes: &[u8]) -> Result<(Vec<usize>, Vec<i64>), String> {
    decode(bytes, "<i8", i64::from_le_bytes)
}

/// Parse `.npy` bytes holding `<i4` data.
pub fn parse_npy_i32(bytes: &[u8]) -> Result<(Vec<usize>, Vec<i32>), String> {
    decode(bytes, "<i4", i32::from_le_bytes)
}

/// Read a little-endian float32 (`<f4`), C-order `.npy` file: `(shape, values)`.
/// Panics with the path and the reason on any problem.
pub fn read_npy_f32(path: impl AsRef<Path>) -> (Vec<usize>, Vec<f32>) {
    let path = path.as_ref();
    parse_npy_f32(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Read a little-endian int64 (`<i8`), C-order `.npy` file: `(shape, values)`.
pub fn read_npy_i64(path: impl AsRef<Path>) -> (Vec<usize>, Vec<i64>) {
    let path = path.as_ref();
    parse_npy_i64(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Read a little-endian int32 (`<i4`), C-order `.npy` file: `(shape, values)`.
pub fn read_npy_i32(path: impl AsRef<Path>) -> (Vec<usize>, Vec<i32>) {
    let path = path.as_ref();
    parse_npy_i32(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Build a version-1.0 `.npy` file the way NumPy does (header padded to 64 bytes).
    fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut dict =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + dict.len() + 1) % 64 != 0 {
            dict.push(' ');
        }
        dict.push('\n');
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        out.extend_from_slice(dict.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn i64_and_i32_round_trip() {
        let vals: Vec<i64> = vec![1, -2, 3, i64::MAX, i64::MIN, 0];
        let data: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let bytes = npy("<i8", "(2, 3)", &data);
        assert_eq!(parse_npy_i64(&bytes).unwrap(), (vec![2, 3], vals));

        let vals: Vec<i32> = vec![7, -8, 9];
        let data: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let bytes = npy("<i4", "(3,)", &data);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        std::fs::write(&p, &bytes).unwrap();
        assert_eq!(read_npy_i32(&p), (vec![3], vals));
    }

    #[test]
    fn scalar_and_empty_shapes() {
        let bytes = npy("<f4", "()", &1.5f32.to_le_bytes());
        assert_eq!(parse_npy_f32(&bytes).unwrap(), (vec![], vec![1.5]));
        let bytes = npy("<f4", "(0, 4)", &[]);
        assert_eq!(parse_npy_f32(&bytes).unwrap(), (vec![0, 4], vec![]));
    }

    #[test]
    fn rejects_wrong_dtype_size_and_magic() {
        let bytes = npy("<f8", "(1,)", &1.0f64.to_le_bytes());
        assert!(parse_npy_f32(&bytes).unwrap_err().contains("dtype"));
        let bytes = npy("<f4", "(2,)", &1.0f32.to_le_bytes());
        assert!(parse_npy_f32(&bytes).unwrap_err().contains("needs 8"));
        assert!(parse_npy_f32(b"PK\x03\x04 not npy")
            .unwrap_err()
            .contains("magic"));
    }

    #[test]
    fn version_2_header() {
        let dict = "{'descr': '<i4', 'fortran_order': False, 'shape': (1,), }\n";
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[2, 0]);
        bytes.extend_from_slice(&(dict.len() as u32).to_le_bytes());
        bytes.extend_from_slice(dict.as_bytes());
        bytes.extend_from_slice(&42i32.to_le_bytes());
        assert_eq!(parse_npy_i32(&bytes).unwrap(), (vec![1], vec![42]));
    }
}
