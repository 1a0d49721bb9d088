//! The one way hoist reads YAML text: inventory files, status files, codebase
//! `package.yaml`, platform records, site settings and backup manifests all
//! come through [`guard`] (directly, or through [`from_str`]).
//!
//! libyaml, under serde_yaml, rescans its stack of possible simple keys for
//! every token, so a document nested `n` deep costs `n²`: 80,000 `[` took 5 s
//! and a million over 25 minutes. Aliases can also make a small document
//! expand into billions of nodes when serde_yaml builds values (its own
//! repetition limit is relative to the document's size, so a 1 MiB document
//! could still expand to 10¹⁰ nodes). The guard runs libyaml itself event by
//! event, which is linear while the nesting stays shallow, and stops at the
//! first node deeper than [`MAX_DEPTH`] or the first alias past
//! [`MAX_ALIAS_NODES`]: `hoist validate` refuses both of those files in
//! 0.02 s, and reads a 1 MiB file of 200,000 flat `[a]` in 1.4 s, most of it
//! building values and positions after the guard. It is exact (the same parser that then builds the
//! value), where a lexical pre-scan would have to re-implement YAML's rules
//! for plain, quoted and block scalars and would be unsafe wherever it
//! disagreed with them.

use std::collections::HashMap;
use std::mem::MaybeUninit;

use serde::de::DeserializeOwned;

/// The deepest nesting of collections accepted. hoist's files nest a handful
/// of levels (`servers.web2.web.listen` is four); free-form values such as
/// `labels` add a few more.
pub const MAX_DEPTH: usize = 32;

/// The most nodes that aliases may add to a document in all: enough for any
/// hand-written use of anchors, far too few to exhaust memory.
pub const MAX_ALIAS_NODES: u64 = 100_000;

/// Why a YAML text is refused. Positions are 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum YamlError {
    /// Collections nested deeper than [`MAX_DEPTH`].
    #[error("nesting deeper than {MAX_DEPTH} levels")]
    TooDeep {
        /// Where the first too-deep collection starts.
        pos: (usize, usize),
    },
    /// Aliases that expand past [`MAX_ALIAS_NODES`].
    #[error("aliases expand to more than {MAX_ALIAS_NODES} nodes")]
    TooManyAliasNodes {
        /// The alias that went past the limit.
        pos: (usize, usize),
    },
    /// What serde_yaml says of the text (syntax, or a value that does not fit
    /// the type read).
    #[error("{msg}")]
    Invalid {
        /// serde_yaml's message, without its trailing position.
        msg: String,
        /// Where, when serde_yaml knows.
        pos: Option<(usize, usize)>,
    },
}

impl YamlError {
    /// Where in the text the problem is, when known.
    pub fn pos(&self) -> Option<(usize, usize)> {
        match self {
            YamlError::TooDeep { pos } | YamlError::TooManyAliasNodes { pos } => Some(*pos),
            YamlError::Invalid { pos, .. } => *pos,
        }
    }

    /// `file:line:col: message` (or `file: message` without a position).
    pub fn at(&self, file: &str) -> String {
        match self.pos() {
            Some(_) => format!("{file}:{}", self.located()),
            None => format!("{file}: {self}"),
        }
    }

    /// `line:col: message`, for a caller that names the file itself.
    pub fn located(&self) -> String {
        match self.pos() {
            Some((l, c)) => format!("{l}:{c}: {self}"),
            None => self.to_string(),
        }
    }

    fn from_serde(e: &serde_yaml::Error) -> Self {
        let msg = e.to_string();
        // serde_yaml appends " at line L column C"; the position is kept apart.
        let msg = match msg.find(" at line ") {
            Some(i) => msg[..i].to_string(),
            None => msg,
        };
        YamlError::Invalid {
            msg,
            pos: e.location().map(|l| (l.line(), l.column())),
        }
    }
}

/// `text` without a leading UTF-8 byte order mark, which editors on some
/// systems write and YAML allows.
pub fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// Checks that `text` is safe to hand to serde_yaml (see the module doc) and
/// returns it without its byte order mark. A syntax error is not reported
/// here: serde_yaml then reports it, with its position, having read only the
/// shallow text before it.
pub fn guard(text: &str) -> Result<&str, YamlError> {
    let text = strip_bom(text);
    let mut p = Parser::new(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<Vec<u8>, u64> = HashMap::new();
    let mut alias_nodes: u64 = 0;
    while let Some(ev) = p.next() {
        let (size, anchor) = match ev.kind {
            Kind::Start(anchor) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(YamlError::TooDeep { pos: ev.pos });
                }
                stack.push(Frame { anchor, size: 1 });
                continue;
            }
            Kind::End => match stack.pop() {
                Some(f) => (f.size, f.anchor),
                None => continue,
            },
            Kind::Scalar(anchor) => (1, anchor),
            Kind::Alias(name) => {
                let size = anchors.get(&name).copied().unwrap_or(1);
                alias_nodes = alias_nodes.saturating_add(size);
                if alias_nodes > MAX_ALIAS_NODES {
                    return Err(YamlError::TooManyAliasNodes { pos: ev.pos });
                }
                (size, None)
            }
            Kind::Other => continue,
        };
        if let Some(a) = anchor {
            anchors.insert(a, size);
        }
        if let Some(parent) = stack.last_mut() {
            parent.size = parent.size.saturating_add(size);
        }
    }
    Ok(text)
}

/// Reads `text` as a `T` through [`guard`]: the one door for typed YAML
/// (settings, platform records, backup manifests).
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    let text = guard(text)?;
    serde_yaml::from_str(text).map_err(|e| YamlError::from_serde(&e))
}

/// Reads `text` as an untyped value through [`guard`].
pub fn value(text: &str) -> Result<serde_yaml::Value, YamlError> {
    from_str(text)
}

/// An open collection: its anchor, and its node count so far (aliases
/// counted at their expanded size).
struct Frame {
    anchor: Option<Vec<u8>>,
    size: u64,
}

enum Kind {
    Start(Option<Vec<u8>>),
    End,
    Scalar(Option<Vec<u8>>),
    Alias(Vec<u8>),
    Other,
}

struct Event {
    kind: Kind,
    pos: (usize, usize),
}

/// libyaml's event parser over a borrowed text.
struct Parser<'a> {
    // Boxed: libyaml keeps pointers into the parser struct itself.
    sys: Box<MaybeUninit<unsafe_libyaml::yaml_parser_t>>,
    done: bool,
    _text: std::marker::PhantomData<&'a str>,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        let mut sys = Box::new(MaybeUninit::<unsafe_libyaml::yaml_parser_t>::uninit());
        // SAFETY: initialize fills the struct (it fails only when malloc
        // does, and then leaves it zeroed, which delete accepts); the input
        // borrow outlives the parser through the lifetime 'a.
        let ok = unsafe {
            let p = sys.as_mut_ptr();
            let ok = unsafe_libyaml::yaml_parser_initialize(p).ok;
            if ok {
                unsafe_libyaml::yaml_parser_set_encoding(p, unsafe_libyaml::YAML_UTF8_ENCODING);
                unsafe_libyaml::yaml_parser_set_input_string(p, text.as_ptr(), text.len() as u64);
            }
            ok
        };
        Parser {
            sys,
            done: !ok,
            _text: std::marker::PhantomData,
        }
    }

    /// The next event; `None` at the end of the stream or at an error.
    fn next(&mut self) -> Option<Event> {
        if self.done {
            return None;
        }
        let mut ev = MaybeUninit::<unsafe_libyaml::yaml_event_t>::uninit();
        // SAFETY: the parser was initialized; an event filled by a
        // successful parse is read by its type tag and then deleted once.
        unsafe {
            let p = self.sys.as_mut_ptr();
            if unsafe_libyaml::yaml_parser_parse(p, ev.as_mut_ptr()).fail {
                self.done = true;
                return None;
            }
            let e = &*ev.as_ptr();
            let pos = (
                e.start_mark.line as usize + 1,
                e.start_mark.column as usize + 1,
            );
            let kind = match e.type_ {
                unsafe_libyaml::YAML_SEQUENCE_START_EVENT => {
                    Kind::Start(cstr(e.data.sequence_start.anchor))
                }
                unsafe_libyaml::YAML_MAPPING_START_EVENT => {
                    Kind::Start(cstr(e.data.mapping_start.anchor))
                }
                unsafe_libyaml::YAML_SEQUENCE_END_EVENT
                | unsafe_libyaml::YAML_MAPPING_END_EVENT => Kind::End,
                unsafe_libyaml::YAML_SCALAR_EVENT => Kind::Scalar(cstr(e.data.scalar.anchor)),
                unsafe_libyaml::YAML_ALIAS_EVENT => {
                    Kind::Alias(cstr(e.data.alias.anchor).unwrap_or_default())
                }
                unsafe_libyaml::YAML_STREAM_END_EVENT => {
                    self.done = true;
                    Kind::Other
                }
                _ => Kind::Other,
            };
            unsafe_libyaml::yaml_event_delete(ev.as_mut_ptr());
            Some(Event { kind, pos })
        }
    }
}

impl Drop for Parser<'_> {
    fn drop(&mut self) {
        // SAFETY: initialized in `new` (or zeroed by a failed initialize).
        unsafe { unsafe_libyaml::yaml_parser_delete(self.sys.as_mut_ptr()) }
    }
}

/// A copy of libyaml's NUL-terminated anchor name, if any.
///
/// # Safety
/// `p` is null or points to a NUL-terminated string.
unsafe fn cstr(p: *const u8) -> Option<Vec<u8>> {
    if p.is_null() {
        return None;
    }
    // SAFETY: as the caller promises.
    Some(
        unsafe { std::ffi::CStr::from_ptr(p.cast()) }
            .to_bytes()
            .to_vec(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shallow_documents_pass_unchanged() {
        let t = "a: [1, {b: [c]}]\nd:\n  - e: f\n";
        assert_eq!(guard(t), Ok(t));
        let v: serde_yaml::Value = from_str(t).unwrap();
        assert_eq!(v["d"][0]["e"].as_str(), Some("f"));
    }

    #[test]
    fn a_byte_order_mark_is_dropped() {
        assert_eq!(guard("\u{feff}a: 1\n"), Ok("a: 1\n"));
        let v: serde_yaml::Value = from_str("\u{feff}a: 1\n").unwrap();
        assert_eq!(v["a"].as_u64(), Some(1));
    }

    #[test]
    fn deep_flow_is_refused_where_it_goes_too_deep() {
        let t = "[".repeat(80_000);
        assert_eq!(guard(&t), Err(YamlError::TooDeep { pos: (1, 33) }));
        let t = format!("a:\n  b: {}", "{x: ".repeat(100));
        // the root mapping and b's are two levels; the 31st `{` is the 33rd
        let col = 6 + 4 * 30;
        assert_eq!(guard(&t), Err(YamlError::TooDeep { pos: (2, col) }));
        assert_eq!(
            YamlError::TooDeep { pos: (2, 9) }.at("x.yaml"),
            "x.yaml:2:9: nesting deeper than 32 levels"
        );
    }

    #[test]
    fn exactly_the_limit_is_accepted() {
        let t = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(guard(&t).is_ok());
        let t = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(guard(&t).is_err());
    }

    #[test]
    fn deep_block_mappings_are_refused() {
        let mut t = String::new();
        for i in 0..40 {
            t.push_str(&format!("{}k{i}:\n", " ".repeat(i)));
        }
        assert_eq!(guard(&t), Err(YamlError::TooDeep { pos: (33, 33) }));
    }

    #[test]
    fn brackets_in_scalars_and_comments_do_not_count() {
        let deep = "[".repeat(100);
        let t = format!("a: '{deep}'\nb: \"{deep}\"\nc: |\n  {deep}\n# {deep}\nd: x{deep}\n");
        assert!(guard(&t).is_ok());
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut t = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            t.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
        }
        let e = guard(&t).unwrap_err();
        assert!(matches!(e, YamlError::TooManyAliasNodes { .. }), "{e:?}");
        // a few aliases are fine
        assert!(guard("a: &x {k: v}\nb: *x\nc: *x\n").is_ok());
    }

    #[test]
    fn syntax_errors_are_left_to_serde_yaml() {
        assert!(guard("a: [\n").is_ok());
        let e = from_str::<serde_yaml::Value>("a: [\n").unwrap_err();
        assert!(
            matches!(e, YamlError::Invalid { pos: Some(_), .. }),
            "{e:?}"
        );
    }
}
