//! A YAML tree that remembers where every key and value came from.
//!
//! serde alone loses positions after the first error, and we want every problem at once with
//! `file:line:col`. So files are parsed with yaml-rust2's event API into [`Node`]s carrying
//! [`Mark`]s, validated against a schema, and only then converted to typed structs.

use std::fmt;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};
use yaml_rust2::Yaml;

use crate::diag::{Diagnostic, Mark, Source};

/// A YAML value with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub mark: Mark,
}

/// A mapping key with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub mark: Mark,
}

/// The value part of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in file order (duplicate keys are rejected while parsing).
    Map(Vec<(Key, Node)>),
}

impl Value {
    /// The YAML type name used in messages ("a number", "a list" ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

impl Node {
    /// Looks up `key` in a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entries()
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
    }

    /// The entries of a mapping node (empty for anything else).
    pub fn entries(&self) -> &[(Key, Node)] {
        match &self.value {
            Value::Map(m) => m,
            _ => &[],
        }
    }

    /// The number, if this is an integer or float.
    pub fn as_f64(&self) -> Option<f64> {
        match self.value {
            Value::Int(i) => Some(i as f64),
            Value::Float(f) => Some(f),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Converts to JSON for serde deserialisation into typed structs (positions dropped).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(J::Number)
                .unwrap_or(J::Null),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(v) => J::Array(v.iter().map(Node::to_json).collect()),
            Value::Map(m) => J::Object(
                m.iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// Builds a position-less node from JSON (for values that came from code, not a file).
    pub fn from_json(v: &serde_json::Value, mark: Mark) -> Node {
        use serde_json::Value as J;
        let value = match v {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            J::String(s) => Value::Str(s.clone()),
            J::Array(a) => Value::Seq(a.iter().map(|x| Node::from_json(x, mark)).collect()),
            J::Object(o) => Value::Map(
                o.iter()
                    .map(|(k, x)| {
                        (
                            Key {
                                name: k.clone(),
                                mark,
                            },
                            Node::from_json(x, mark),
                        )
                    })
                    .collect(),
            ),
        };
        Node { value, mark }
    }
}

impl fmt::Display for Value {
    /// Compact YAML-flow rendering, used in run ids, plans and messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x:e}"),
            Value::Str(s) => f.write_str(s),
            Value::Seq(v) => {
                f.write_str("[")?;
                for (i, n) in v.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}", n.value)?;
                }
                f.write_str("]")
            }
            Value::Map(m) => {
                f.write_str("{")?;
                for (i, (k, n)) in m.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}: {}", k.name, n.value)?;
                }
                f.write_str("}")
            }
        }
    }
}

fn mark_of(m: Marker) -> Mark {
    // yaml-rust2 lines are 1-based, columns 0-based.
    Mark {
        line: m.line().max(1),
        col: m.col() + 1,
    }
}

enum Frame {
    Seq(Mark, Vec<Node>),
    Map(Mark, Vec<(Key, Node)>, Option<Key>),
}

struct Builder<'s> {
    src: &'s Source,
    stack: Vec<Frame>,
    root: Option<Node>,
    errors: Vec<Diagnostic>,
}

impl Builder<'_> {
    fn push_value(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq(_, items)) => items.push(node),
            Some(Frame::Map(_, entries, pending)) => match pending.take() {
                None => {
                    let name = match &node.value {
                        Value::Str(s) => s.clone(),
                        Value::Null => "null".to_string(),
                        other => other.to_string(),
                    };
                    if entries.iter().any(|(k, _)| k.name == name) {
                        self.errors.push(
                            Diagnostic::new(self.src, node.mark, format!("duplicate key `{name}`"))
                                .hint("each key may appear once in a mapping; remove or merge the repeated one"),
                        );
                    }
                    *pending = Some(Key {
                        name,
                        mark: node.mark,
                    });
                }
                Some(key) => entries.push((key, node)),
            },
        }
    }
}

impl MarkedEventReceiver for Builder<'_> {
    fn on_event(&mut self, ev: Event, marker: Marker) {
        let mark = mark_of(marker);
        match ev {
            Event::SequenceStart(..) => self.stack.push(Frame::Seq(mark, Vec::new())),
            Event::MappingStart(..) => self.stack.push(Frame::Map(mark, Vec::new(), None)),
            Event::SequenceEnd => {
                if let Some(Frame::Seq(m, items)) = self.stack.pop() {
                    self.push_value(Node {
                        value: Value::Seq(items),
                        mark: m,
                    });
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(m, entries, _)) = self.stack.pop() {
                    self.push_value(Node {
                        value: Value::Map(entries),
                        mark: m,
                    });
                }
            }
            Event::Scalar(text, style, _, _) => {
                let empty_plain = text.is_empty() && style == TScalarStyle::Plain;
                let value = if style == TScalarStyle::Plain {
                    // YAML 1.2's core schema spellings the parser leaves as strings.
                    match text.as_str() {
                        "Null" | "NULL" => Value::Null,
                        ".nan" | ".NaN" | ".NAN" => Value::Float(f64::NAN),
                        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
                            Value::Float(f64::INFINITY)
                        }
                        "-.inf" | "-.Inf" | "-.INF" => Value::Float(f64::NEG_INFINITY),
                        _ => match Yaml::from_str(&text) {
                            Yaml::Null => Value::Null,
                            Yaml::Boolean(b) => Value::Bool(b),
                            Yaml::Integer(i) => Value::Int(i),
                            Yaml::Real(r) => r
                                .parse::<f64>()
                                .map(Value::Float)
                                .unwrap_or(Value::Str(text)),
                            _ => Value::Str(text),
                        },
                    }
                } else {
                    Value::Str(text)
                };
                // A key with nothing after its colon (`env:` then the next key): the parser marks
                // the empty value where the next token starts, a line below. Point just past the
                // key's colon instead, where the value is missing.
                let mark = match self.stack.last() {
                    Some(Frame::Map(_, _, Some(key))) if empty_plain => Mark {
                        line: key.mark.line,
                        col: key.mark.col + key.name.chars().count() + 1,
                    },
                    _ => mark,
                };
                self.push_value(Node { value, mark });
            }
            Event::Alias(_) => {
                self.errors.push(
                    Diagnostic::new(self.src, mark, "YAML aliases (`*name`) are not supported")
                        .hint("write the value out in full"),
                );
                self.push_value(Node {
                    value: Value::Null,
                    mark,
                });
            }
            _ => {}
        }
    }
}

/// Parses a YAML document into a located tree. An empty document is an empty mapping.
pub fn parse(src: &Source) -> Result<Node, Vec<Diagnostic>> {
    let mut b = Builder {
        src,
        stack: Vec::new(),
        root: None,
        errors: Vec::new(),
    };
    let mut parser = Parser::new_from_str(&src.text);
    if let Err(e) = parser.load(&mut b, false) {
        // A tab in the indentation makes the parser fail somewhere near it, often on an earlier
        // line: point at the tab itself.
        if let Some((i, line)) = src.text.lines().enumerate().find(|(_, l)| {
            l.chars()
                .take_while(|c| c.is_whitespace())
                .any(|c| c == '\t')
        }) {
            let col = 1 + line.chars().position(|c| c == '\t').unwrap_or(0);
            return Err(vec![Diagnostic::new(
                src,
                Mark { line: i + 1, col },
                "a tab in the indentation: YAML indents with spaces only",
            )
            .hint(
                "replace the tab with spaces (two per level, as elsewhere in the file)",
            )]);
        }
        let mark = mark_of(*e.marker());
        return Err(vec![Diagnostic::new(src, mark, format!("YAML syntax error: {}", e.info()))
            .hint("check indentation, and quote values that contain `: ` or start with a special character")]);
    }
    if !b.errors.is_empty() {
        return Err(b.errors);
    }
    Ok(b.root.unwrap_or(Node {
        value: Value::Map(Vec::new()),
        mark: Mark { line: 1, col: 1 },
    }))
}

/// Parses a single scalar written on the command line (`--set key=VALUE`) with YAML's rules.
pub fn parse_scalar(text: &str) -> Value {
    let src = Source::inline("<arg>", text);
    match parse(&src) {
        Ok(n) => n.value,
        Err(_) => Value::Str(text.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_of_keys_and_values() {
        let src = Source::inline("t.yaml", "a: 1\nb:\n  c: [1.5, x]\n  d: \"7\"\n");
        let root = parse(&src).unwrap();
        let b = root.get("b").unwrap();
        let (k, c) = &b.entries()[0];
        assert_eq!((k.name.as_str(), k.mark), ("c", Mark { line: 3, col: 3 }));
        match &c.value {
            Value::Seq(v) => {
                assert_eq!(v[0].value, Value::Float(1.5));
                assert_eq!(v[1].value, Value::Str("x".into()));
                assert_eq!(v[0].mark, Mark { line: 3, col: 7 });
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(b.get("d").unwrap().value, Value::Str("7".into()));
        assert_eq!(root.get("a").unwrap().value, Value::Int(1));
    }

    #[test]
    fn a_missing_value_is_marked_after_its_keys_colon_not_on_the_next_line() {
        let src = Source::inline("e.yaml", "seed: 0\n  \nenv:\nnetworks: {}\nlast:");
        let root = parse(&src).unwrap();
        let env = root.get("env").unwrap();
        assert_eq!(env.value, Value::Null);
        assert_eq!(env.mark, Mark { line: 3, col: 5 });
        assert_eq!(root.get("last").unwrap().mark, Mark { line: 5, col: 6 });
        // An explicit null keeps its own position.
        let src = Source::inline("n.yaml", "env: null\n");
        assert_eq!(
            parse(&src).unwrap().get("env").unwrap().mark,
            Mark { line: 1, col: 6 }
        );
    }

    #[test]
    fn syntax_error_has_location() {
        let src = Source::inline("bad.yaml", "a: [1, 2\nb: 3\n");
        let errs = parse(&src).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].message.starts_with("YAML syntax error"),
            "{}",
            errs[0]
        );
        assert!(errs[0].mark.line >= 1);
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let src = Source::inline("d.yaml", "a: 1\na: 2\n");
        let errs = parse(&src).unwrap_err();
        assert_eq!(errs[0].mark, Mark { line: 2, col: 1 });
    }

    #[test]
    fn scalars_follow_yaml_rules() {
        assert_eq!(parse_scalar("1e-5"), Value::Float(1e-5));
        assert_eq!(parse_scalar("true"), Value::Bool(true));
        assert_eq!(parse_scalar("null"), Value::Null);
        assert_eq!(parse_scalar("Null"), Value::Null);
        assert!(matches!(parse_scalar(".nan"), Value::Float(x) if x.is_nan()));
        assert_eq!(parse_scalar("-.inf"), Value::Float(f64::NEG_INFINITY));
        assert_eq!(parse_scalar("own"), Value::Str("own".into()));
        assert_eq!(parse_scalar("3"), Value::Int(3));
    }
}
