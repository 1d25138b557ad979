//! Unknown keys, all of them. serde's `deny_unknown_fields` stops at the
//! first one, and `serde_ignored` cannot follow the `Spanned<String>` map
//! keys of `raw` (it reports "non-string key"), so the parsed document is
//! walked against the raw structs' field lists instead. The field lists come
//! from the serde derives themselves, so they cannot drift from `raw`.

use super::raw::{
    RawAgent, RawCallback, RawConfig, RawFeatures, RawIvr, RawNode, RawNumber, RawQueue, RawRelax,
};
use super::raw::{RawSchedule, RawServer, RawTrunk};
use serde::de::{self, Deserialize, Deserializer, Visitor};
use std::fmt;
use std::ops::Range;
use toml_edit::{Item, Key, Table, Value};

/// A key no raw struct knows: byte span of the key and the message.
#[derive(Debug)]
pub struct Unknown {
    pub span: Range<usize>,
    pub message: String,
}

/// Every unknown key in `doc`, in no particular order.
pub fn unknown_keys(doc: &Table) -> Vec<Unknown> {
    let mut out = Vec::new();
    walk(Node::Table(doc), &mut Vec::new(), &mut out);
    out
}

#[derive(Clone, Copy)]
enum Seg<'d> {
    Key(&'d str),
    Idx(usize),
}

/// The field names of the raw struct a table at `path` deserializes into,
/// or `None` where keys are free (skills, menu options) or unknown anyway.
fn fields_at(path: &[Seg]) -> Option<&'static [&'static str]> {
    use Seg::{Idx as I, Key as K};
    Some(match path {
        [] => fields_of::<RawConfig>(),
        [K("server")] => fields_of::<RawServer>(),
        [K("features")] => fields_of::<RawFeatures>(),
        [K("schedules"), K(_)] => fields_of::<RawSchedule>(),
        [K("agents"), K(_)] => fields_of::<RawAgent>(),
        [K("queues"), K(_)] => fields_of::<RawQueue>(),
        [K("queues"), K(_), K("relax"), I(_)] => fields_of::<RawRelax>(),
        [K("queues"), K(_), K("callback")] => fields_of::<RawCallback>(),
        [K("numbers"), I(_)] => fields_of::<RawNumber>(),
        [K("ivr"), K(_)] => fields_of::<RawIvr>(),
        [K("ivr"), K(_), K("nodes"), K(_)] => fields_of::<RawNode>(),
        [K("trunks"), K(_)] => fields_of::<RawTrunk>(),
        _ => return None,
    })
}

#[derive(Clone, Copy)]
enum Node<'d> {
    Item(&'d Item),
    Value(&'d Value),
    Table(&'d Table),
}

fn walk<'d>(node: Node<'d>, path: &mut Vec<Seg<'d>>, out: &mut Vec<Unknown>) {
    let span = |k: Option<&Key>| k.and_then(Key::span).unwrap_or(0..0);
    let entries: Vec<(&'d str, Range<usize>, Node<'d>)> = match node {
        Node::Item(Item::Table(t)) | Node::Table(t) => t
            .iter()
            .map(|(k, v)| (k, span(t.key(k)), Node::Item(v)))
            .collect(),
        Node::Item(Item::Value(Value::InlineTable(t))) | Node::Value(Value::InlineTable(t)) => t
            .iter()
            .map(|(k, v)| (k, span(t.key(k)), Node::Value(v)))
            .collect(),
        Node::Item(Item::ArrayOfTables(a)) => {
            let children = a.iter().map(Node::Table).collect();
            return walk_seq(children, path, out);
        }
        Node::Item(Item::Value(Value::Array(a))) | Node::Value(Value::Array(a)) => {
            let children = a.iter().map(Node::Value).collect();
            return walk_seq(children, path, out);
        }
        _ => return,
    };
    let fields = fields_at(path);
    for (key, span, child) in entries {
        if let Some(fields) = fields.filter(|f| !f.contains(&key)) {
            out.push(Unknown {
                span,
                message: message(path, key, fields),
            });
            continue;
        }
        path.push(Seg::Key(key));
        walk(child, path, out);
        path.pop();
    }
}

fn walk_seq<'d>(children: Vec<Node<'d>>, path: &mut Vec<Seg<'d>>, out: &mut Vec<Unknown>) {
    for (i, child) in children.into_iter().enumerate() {
        path.push(Seg::Idx(i));
        walk(child, path, out);
        path.pop();
    }
}

/// "unknown key `queues.billing.strateg`, expected one of `skills`, ...".
fn message(path: &[Seg], key: &str, fields: &[&str]) -> String {
    let mut full = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                full.push_str(k);
                full.push('.');
            }
            Seg::Idx(i) => {
                full.pop();
                full.push_str(&format!("[{i}]."));
            }
        }
    }
    full.push_str(key);
    let expected: Vec<String> = fields.iter().map(|f| format!("`{f}`")).collect();
    format!(
        "unknown key `{full}`, expected one of {}",
        expected.join(", ")
    )
}

/// The field names a serde-derived struct asks for, read by handing it a
/// deserializer that records the list and stops.
fn fields_of<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    // The error is the stop signal; the list is what we wanted.
    let _ = T::deserialize(Introspect(&mut fields));
    fields
}

struct Introspect<'a>(&'a mut &'static [&'static str]);

#[derive(Debug)]
struct Stop;

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("introspection stop")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Stop
    }
}

impl<'de> Deserializer<'de> for Introspect<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        *self.0 = fields;
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_lists_come_from_the_derives() {
        let node = fields_of::<RawNode>();
        assert!(node.contains(&"type") && node.contains(&"queue"));
        assert!(!node.contains(&"kind"));
        assert_eq!(
            fields_of::<RawNumber>(),
            &["number", "to", "ring_s", "media_encryption"][..]
        );
    }
}
