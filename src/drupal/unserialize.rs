//! A small, strict reader of PHP's `serialize()` format, for the values
//! Drupal keeps in its database (`variable.value`, `config.data`,
//! `key_value.value`, `system.info`).
//!
//! It reads `N;`, `b:`, `i:`, `d:`, `s:len:"bytes";`, `a:n:{…}`, objects
//! (`O:`) as a class name with properties, `C:` (custom-serialized objects)
//! and `E:` (enum cases) as opaque values, and the references `r:`/`R:` as
//! their index. String lengths are checked in bytes, as PHP writes them;
//! nesting is limited to [`MAX_DEPTH`]; a count is never trusted to reserve
//! memory; the whole input must be one value. Nothing panics on any input:
//! every problem is an [`UnserializeError`] with its byte offset.

/// How deeply arrays and objects may nest.
pub const MAX_DEPTH: usize = 128;

/// A key of a PHP array or object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PhpKey {
    /// An integer key.
    Int(i64),
    /// A string key (bytes; PHP strings need not be UTF-8).
    Str(Vec<u8>),
}

/// A PHP value.
#[derive(Debug, Clone, PartialEq)]
pub enum PhpValue {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string, as bytes.
    Str(Vec<u8>),
    /// An array: its entries in order.
    Array(Vec<(PhpKey, PhpValue)>),
    /// An object: its class and its properties in order.
    Object {
        /// The class name.
        class: Vec<u8>,
        /// The properties (private and protected ones keep PHP's NUL-marked names).
        props: Vec<(PhpKey, PhpValue)>,
    },
    /// An object serialized by its own `Serializable::serialize`: opaque.
    Custom {
        /// The class name.
        class: Vec<u8>,
        /// What the class wrote.
        data: Vec<u8>,
    },
    /// An enum case, `Enum:Case`.
    Enum(Vec<u8>),
    /// A reference (`r:` or `R:`) to the value with this 1-based number.
    Ref(i64),
}

impl PhpValue {
    /// The value as UTF-8 text, when it is a string of valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            PhpValue::Str(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// The value as an integer: an `i:`, or a string of decimal digits as
    /// PHP keeps some numbers.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            PhpValue::Int(i) => Some(*i),
            PhpValue::Str(_) => self.as_str()?.trim().parse().ok(),
            _ => None,
        }
    }

    /// An array's entries, or none for any other value.
    pub fn entries(&self) -> Option<&[(PhpKey, PhpValue)]> {
        match self {
            PhpValue::Array(e) => Some(e),
            _ => None,
        }
    }

    /// The entry of an array under string key `key`.
    pub fn get(&self, key: &str) -> Option<&PhpValue> {
        self.entries()?
            .iter()
            .find(|(k, _)| matches!(k, PhpKey::Str(s) if s == key.as_bytes()))
            .map(|(_, v)| v)
    }

    /// PHP's truthiness (`!empty($v)`).
    pub fn truthy(&self) -> bool {
        match self {
            PhpValue::Null => false,
            PhpValue::Bool(b) => *b,
            PhpValue::Int(i) => *i != 0,
            PhpValue::Float(f) => *f != 0.0,
            PhpValue::Str(s) => !(s.is_empty() || s == b"0"),
            PhpValue::Array(e) => !e.is_empty(),
            _ => true,
        }
    }
}

impl PhpKey {
    /// A string key as UTF-8 text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            PhpKey::Str(b) => std::str::from_utf8(b).ok(),
            PhpKey::Int(_) => None,
        }
    }
}

/// Why bytes are not one serialized PHP value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a serialized PHP value: {message} at byte {offset}")]
pub struct UnserializeError {
    /// Where the problem is, in bytes from the start.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

/// Reads `input` as exactly one serialized PHP value.
pub fn unserialize(input: &[u8]) -> Result<PhpValue, UnserializeError> {
    let mut r = Reader { b: input, pos: 0 };
    let v = r.value(0)?;
    if r.pos != input.len() {
        return Err(r.err("trailing bytes after the value"));
    }
    Ok(v)
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn err(&self, message: &str) -> UnserializeError {
        UnserializeError {
            offset: self.pos,
            message: message.to_string(),
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), UnserializeError> {
        if self.b.get(self.pos) == Some(&c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(&format!("expected {:?}", c as char)))
        }
    }

    /// The bytes up to (not including) `end`, which is consumed.
    fn until(&mut self, end: u8) -> Result<&[u8], UnserializeError> {
        let rest = &self.b[self.pos..];
        let n = rest
            .iter()
            .position(|&c| c == end)
            .ok_or_else(|| self.err(&format!("missing {:?}", end as char)))?;
        self.pos += n + 1;
        Ok(&rest[..n])
    }

    fn int_until(&mut self, end: u8) -> Result<i64, UnserializeError> {
        let start = self.pos;
        let t = self.until(end)?;
        let digits = t.strip_prefix(b"-").or(t.strip_prefix(b"+")).unwrap_or(t);
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(UnserializeError {
                offset: start,
                message: "expected an integer".into(),
            });
        }
        // ASCII digits and a sign: valid UTF-8.
        std::str::from_utf8(t)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(UnserializeError {
                offset: start,
                message: "integer out of range".into(),
            })
    }

    fn len_until(&mut self, end: u8) -> Result<usize, UnserializeError> {
        let start = self.pos;
        let n = self.int_until(end)?;
        usize::try_from(n).map_err(|_| UnserializeError {
            offset: start,
            message: "negative length".into(),
        })
    }

    /// The next `len` bytes; `what` names them in the error.
    fn take(&mut self, len: usize, what: &str) -> Result<Vec<u8>, UnserializeError> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|e| *e <= self.b.len())
            .ok_or_else(|| self.err(&format!("{what} longer than the input")))?;
        let s = self.b[self.pos..end].to_vec();
        self.pos = end;
        Ok(s)
    }

    /// `len:"bytes"` with the length in bytes, then `after`.
    fn quoted(&mut self, after: u8) -> Result<Vec<u8>, UnserializeError> {
        let len = self.len_until(b':')?;
        self.expect(b'"')?;
        let s = self.take(len, "string")?;
        self.expect(b'"')?;
        self.expect(after)?;
        Ok(s)
    }

    fn value(&mut self, depth: usize) -> Result<PhpValue, UnserializeError> {
        let tag = *self
            .b
            .get(self.pos)
            .ok_or_else(|| self.err("unexpected end"))?;
        self.pos += 1;
        if tag == b'N' {
            self.expect(b';')?;
            return Ok(PhpValue::Null);
        }
        self.expect(b':')?;
        Ok(match tag {
            b'b' => match self.until(b';')? {
                b"0" => PhpValue::Bool(false),
                b"1" => PhpValue::Bool(true),
                _ => return Err(self.err("a boolean must be 0 or 1")),
            },
            b'i' => PhpValue::Int(self.int_until(b';')?),
            b'd' => {
                let start = self.pos;
                let t = self.until(b';')?;
                let f = match t {
                    b"INF" => f64::INFINITY,
                    b"-INF" => f64::NEG_INFINITY,
                    b"NAN" => f64::NAN,
                    _ => std::str::from_utf8(t)
                        .ok()
                        .filter(|s| {
                            s.bytes()
                                .all(|c| c.is_ascii_digit() || b"+-.eE".contains(&c))
                        })
                        .and_then(|s| s.parse().ok())
                        .ok_or(UnserializeError {
                            offset: start,
                            message: "expected a float".into(),
                        })?,
                };
                PhpValue::Float(f)
            }
            b's' => PhpValue::Str(self.quoted(b';')?),
            b'E' => PhpValue::Enum(self.quoted(b';')?),
            b'r' | b'R' => PhpValue::Ref(self.int_until(b';')?),
            b'a' => PhpValue::Array(self.entries(depth)?),
            b'O' => {
                let class = self.quoted(b':')?;
                PhpValue::Object {
                    class,
                    props: self.entries(depth)?,
                }
            }
            b'C' => {
                let class = self.quoted(b':')?;
                let len = self.len_until(b':')?;
                self.expect(b'{')?;
                let data = self.take(len, "object data")?;
                self.expect(b'}')?;
                PhpValue::Custom { class, data }
            }
            _ => {
                self.pos -= 2;
                return Err(self.err("unknown value type"));
            }
        })
    }

    /// `n:{key;value;…}` for arrays and objects.
    fn entries(&mut self, depth: usize) -> Result<Vec<(PhpKey, PhpValue)>, UnserializeError> {
        if depth >= MAX_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        let n = self.len_until(b':')?;
        self.expect(b'{')?;
        // Each entry takes at least 6 bytes (`i:0;N;`): a count
        // beyond what the input can hold is a lie, not a reason to reserve.
        if n > (self.b.len() - self.pos) / 6 {
            return Err(self.err("more entries than the input can hold"));
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let at = self.pos;
            let key = match self.value(depth + 1)? {
                PhpValue::Int(i) => PhpKey::Int(i),
                PhpValue::Str(s) => PhpKey::Str(s),
                _ => {
                    return Err(UnserializeError {
                        offset: at,
                        message: "a key must be an integer or a string".into(),
                    })
                }
            };
            let v = self.value(depth + 1)?;
            out.push((key, v));
        }
        self.expect(b'}')?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn ok(s: &[u8]) -> PhpValue {
        unserialize(s).unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(s)))
    }

    #[test]
    fn reads_every_scalar() {
        assert_eq!(ok(b"N;"), PhpValue::Null);
        assert_eq!(ok(b"b:1;"), PhpValue::Bool(true));
        assert_eq!(ok(b"b:0;"), PhpValue::Bool(false));
        assert_eq!(ok(b"i:-42;"), PhpValue::Int(-42));
        assert_eq!(ok(b"d:1.5;"), PhpValue::Float(1.5));
        assert_eq!(ok(b"d:-1.0E+25;"), PhpValue::Float(-1.0e25));
        assert_eq!(ok(b"d:INF;"), PhpValue::Float(f64::INFINITY));
        assert_eq!(ok(b"s:8:\"standard\";").as_str(), Some("standard"));
    }

    #[test]
    fn string_lengths_are_bytes() {
        // "é" is two bytes; the quote inside is data, found by length.
        assert_eq!(ok("s:4:\"é\"x\";".as_bytes()).as_str(), Some("é\"x"));
        assert!(unserialize("s:2:\"é\";".as_bytes()).is_ok());
        assert!(unserialize("s:1:\"é\";".as_bytes()).is_err());
        assert!(unserialize(b"s:99:\"short\";").is_err());
        assert!(unserialize(b"s:-1:\"\";").is_err());
    }

    #[test]
    fn reads_drupal_core_extension() {
        let data = b"a:3:{s:6:\"module\";a:3:{s:4:\"node\";i:0;s:6:\"system\";i:0;s:8:\"standard\";i:1000;}s:5:\"theme\";a:1:{s:7:\"olivero\";i:0;}s:7:\"profile\";s:8:\"standard\";}";
        let v = ok(data);
        assert_eq!(v.get("profile").and_then(|p| p.as_str()), Some("standard"));
        let modules = v.get("module").and_then(|m| m.entries()).unwrap();
        assert_eq!(modules.len(), 3);
        assert_eq!(modules[2].0.as_str(), Some("standard"));
        assert_eq!(modules[2].1.as_int(), Some(1000));
    }

    #[test]
    fn reads_objects_and_opaque_values() {
        let v = ok(b"O:8:\"stdClass\":2:{s:1:\"a\";i:1;s:4:\"\0*\0b\";N;}");
        match v {
            PhpValue::Object { class, props } => {
                assert_eq!(class, b"stdClass");
                assert_eq!(props.len(), 2);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            ok(b"C:3:\"Foo\":5:{hello}"),
            PhpValue::Custom {
                class: b"Foo".to_vec(),
                data: b"hello".to_vec()
            }
        );
        assert_eq!(ok(b"E:7:\"Suit:Up\";"), PhpValue::Enum(b"Suit:Up".to_vec()));
        assert_eq!(
            ok(b"a:2:{i:0;i:5;i:1;R:2;}").entries().unwrap()[1].1,
            PhpValue::Ref(2)
        );
    }

    #[test]
    fn rejects_malformed_input_with_offsets() {
        for bad in [
            &b""[..],
            b"N",
            b"x:1;",
            b"i:;",
            b"i:1",
            b"i:99999999999999999999;",
            b"b:2;",
            b"d:1.2.3x;",
            b"a:1:{i:0;}",
            b"a:1:{a:0:{}i:1;}",
            b"a:2:{i:0;i:1;}",
            b"a:99999999:{}",
            b"N;N;",
            b"s:1:\"ab\";",
            b"C:3:\"Foo\":99:{x}",
            b"O:3:\"Foo\":1:{N;N;}",
        ] {
            let e = unserialize(bad).unwrap_err();
            assert!(e.offset <= bad.len(), "{e}");
        }
    }

    #[test]
    fn depth_is_limited() {
        let mut s = Vec::new();
        for _ in 0..(MAX_DEPTH + 5) {
            s.extend_from_slice(b"a:1:{i:0;");
        }
        s.extend_from_slice(b"N;");
        s.extend(std::iter::repeat_n(b'}', MAX_DEPTH + 5));
        let e = unserialize(&s).unwrap_err();
        assert!(e.message.contains("deeply"), "{e}");
        // Just within the limit is fine.
        let mut s = Vec::new();
        for _ in 0..(MAX_DEPTH - 1) {
            s.extend_from_slice(b"a:1:{i:0;");
        }
        s.extend_from_slice(b"N;");
        s.extend(std::iter::repeat_n(b'}', MAX_DEPTH - 1));
        assert!(unserialize(&s).is_ok());
    }

    /// Random and mutated inputs: the reader must return, never panic, and
    /// agree with itself on what it accepts.
    #[test]
    fn fuzzed_inputs_never_panic() {
        let seeds: [&[u8]; 4] = [
            b"a:3:{s:6:\"module\";a:2:{s:4:\"node\";i:0;s:6:\"system\";i:0;}s:5:\"theme\";a:0:{}s:7:\"profile\";s:8:\"standard\";}",
            b"a:2:{i:0;s:28:\"system_post_update_add_thing\";i:1;d:0.5;}",
            b"O:8:\"stdClass\":1:{s:1:\"x\";C:3:\"Foo\":2:{ab}}",
            b"s:8:\"standard\";",
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
        let alphabet = b"aOCsibdNrRE:;{}\"0123456789-+.";
        for round in 0..20_000 {
            let mut input: Vec<u8> = if round % 4 == 0 {
                (0..rng.random_range(0..64))
                    .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                    .collect()
            } else {
                seeds[round % seeds.len()].to_vec()
            };
            for _ in 0..rng.random_range(1..4) {
                if input.is_empty() {
                    break;
                }
                let at = rng.random_range(0..input.len());
                match rng.random_range(0..4) {
                    0 => input[at] = rng.random(),
                    1 => input[at] = alphabet[rng.random_range(0..alphabet.len())],
                    2 => {
                        input.remove(at);
                    }
                    _ => input.insert(at, alphabet[rng.random_range(0..alphabet.len())]),
                }
            }
            let first = unserialize(&input);
            if let Err(e) = &first {
                assert!(e.offset <= input.len());
            }
            assert_eq!(first.is_ok(), unserialize(&input).is_ok());
        }
    }
}
