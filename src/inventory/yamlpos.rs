//! Where each value of a YAML document stands: a map from JSON pointer to
//! line and column, so that schema and meaning errors found on the parsed
//! value can name the place in the file. serde_yaml keeps no spans, so this
//! walks yaml-rust2's marked events once per file.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Positions of the nodes of one document, by JSON pointer (`/sites/0`).
#[derive(Debug, Default)]
pub struct Positions {
    values: HashMap<String, (usize, usize)>,
    keys: HashMap<String, (usize, usize)>,
    duplicates: Vec<(String, (usize, usize))>,
}

impl Positions {
    /// Indexes `text`. A document that does not parse gives an empty index:
    /// its syntax error is reported by the real parser.
    pub fn index(text: &str) -> Self {
        let mut b = Builder::default();
        let _ = Parser::new_from_str(text).load(&mut b, false);
        b.out
    }

    /// Where the value at `pointer` starts; falls back to the nearest parent.
    pub fn value(&self, pointer: &str) -> Option<(usize, usize)> {
        let mut p = pointer;
        loop {
            if let Some(pos) = self.values.get(p) {
                return Some(*pos);
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return None,
            }
        }
    }

    /// The first key that repeats within its mapping, and where it repeats:
    /// serde_yaml reports duplicates at the mapping, not at the key.
    pub fn first_duplicate(&self) -> Option<&(String, (usize, usize))> {
        self.duplicates.first()
    }

    /// Where the key of the mapping entry at `pointer` stands (the value's
    /// position when it is not a mapping entry).
    pub fn key(&self, pointer: &str) -> Option<(usize, usize)> {
        self.keys
            .get(pointer)
            .copied()
            .or_else(|| self.value(pointer))
    }
}

enum Frame {
    Map {
        path: String,
        pending_key: Option<(String, (usize, usize))>,
    },
    Seq {
        path: String,
        next: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    out: Positions,
    done: bool,
}

fn escape(seg: &str) -> String {
    seg.replace('~', "~0").replace('/', "~1")
}

fn pos(m: Marker) -> (usize, usize) {
    // yaml-rust2 counts columns from 0; editors and compilers count from 1.
    (m.line(), m.col() + 1)
}

impl Builder {
    /// The pointer of the node that starts now, or None when this scalar is a
    /// mapping key (which is recorded and waits for its value).
    fn place(&mut self, ev: &Event, at: (usize, usize)) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}/{next}");
                *next += 1;
                Some(p)
            }
            Some(Frame::Map { path, pending_key }) => match pending_key.take() {
                Some((k, kpos)) => {
                    let p = format!("{path}/{}", escape(&k));
                    if self.out.keys.insert(p.clone(), kpos).is_some() {
                        self.out.duplicates.push((k, kpos));
                    }
                    Some(p)
                }
                None => {
                    let key = match ev {
                        Event::Scalar(s, ..) => s.clone(),
                        // A complex key: not representable in JSON; the
                        // loader reports it.
                        _ => String::from("?"),
                    };
                    *pending_key = Some((key, at));
                    None
                }
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.done {
            return;
        }
        let at = pos(mark);
        match ev {
            Event::Scalar(..) | Event::Alias(..) => {
                if let Some(p) = self.place(&ev, at) {
                    self.out.values.entry(p).or_insert(at);
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let is_map = matches!(ev, Event::MappingStart(..));
                let path = match self.place(&ev, at) {
                    Some(p) => p,
                    // a mapping used as a key: index its insides nowhere useful
                    None => String::from("/?"),
                };
                self.out.values.entry(path.clone()).or_insert(at);
                self.stack.push(if is_map {
                    Frame::Map {
                        path,
                        pending_key: None,
                    }
                } else {
                    Frame::Seq { path, next: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            Event::DocumentEnd => self.done = true,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_values_and_keys() {
        let text = "a: 1\nb:\n  c: [x, y]\n  d:\n    - e: f\n";
        let p = Positions::index(text);
        assert_eq!(p.value("/a"), Some((1, 4)));
        assert_eq!(p.key("/a"), Some((1, 1)));
        assert_eq!(p.key("/b/c"), Some((3, 3)));
        assert_eq!(p.value("/b/c/1"), Some((3, 10)));
        assert_eq!(p.value("/b/d/0/e"), Some((5, 10)));
        // unknown children fall back to the parent
        assert_eq!(p.value("/b/c/7"), Some((3, 6)));
        assert!(p.first_duplicate().is_none());
    }

    #[test]
    fn finds_duplicate_keys() {
        let p = Positions::index("a: 1\nb:\n  c: 1\n  c: 2\n");
        assert_eq!(p.first_duplicate(), Some(&("c".to_string(), (4, 3))));
    }
}
