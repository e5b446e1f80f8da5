//! The form in which a copy hashes its records: serde's data model written as tagged,
//! length-prefixed binary.
//!
//! A copy compares what it sent with what the target holds by per-kind checksums. Neither
//! side is ever written out, so they need not be export lines: this form hashes the same
//! information (every value with its type, every struct field in declaration order, every
//! sequence and map in order) for a fraction of the work: strings are copied as they are
//! instead of escaped, numbers are not formatted, and struct fields go by position, not by
//! name (a field that serde skips leaves a mark in its place). Records that differ in any
//! value have different forms, so equal checksums mean equal records, as they do for
//! export lines.

use std::borrow::Cow;
use std::ops::Range;

use serde::de::{self, DeserializeSeed, Visitor};
use serde::ser::{self, Serialize};

#[cfg(test)]
use super::DocumentText;
use super::{ChangeEntry, Record, RecordKind};

/// Appends `record`'s canonical form to `out`.
pub(super) fn encode(record: &Record, out: &mut Vec<u8>) {
    let encoded = match record {
        Record::Change(change) => encode_change(change, out),
        other => other.serialize(&mut Canonical(out)),
    };
    // Domain types serialize without failure (string-keyed maps, finite numbers) and a
    // change's document is JSON (its store checked it when reading); should either ever
    // fail, the form ends in a mark no complete form has.
    if encoded.is_err() {
        out.push(FAILED);
    }
}

/// A change entry in the form serde gives `Record::Change` holding the same change with its
/// document as a `serde_json::Value`, the document written straight from its text: a store
/// that keeps `{"b":1,"a":2}` and one that keeps `{"a": 2, "b": 1}` hold the same change.
fn encode_change(change: &ChangeEntry, out: &mut Vec<u8>) -> Done {
    let ChangeEntry { seq, at, kind, resource_id, op, revision, actor, reason, resource } = change;
    let mut form = Canonical(out);
    // `Record`'s variants are declared in `RecordKind` order.
    form.variant(RecordKind::Change as u32);
    form.tag(STRUCT);
    seq.serialize(&mut form)?;
    at.serialize(&mut form)?;
    kind.serialize(&mut form)?;
    resource_id.serialize(&mut form)?;
    op.serialize(&mut form)?;
    revision.serialize(&mut form)?;
    actor.serialize(&mut form)?;
    reason.serialize(&mut form)?;
    document(resource.get(), form.0).map_err(|_| Failed)?;
    form.tag(END);
    Ok(())
}

/// Appends the canonical form of the JSON document `text`: the form of its value as a
/// `serde_json::Value` (object keys in byte order, the last of repeated keys), read from
/// the text without building the value.
fn document(text: &str, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    let mut reader = serde_json::Deserializer::from_str(text);
    Document(out).deserialize(&mut reader)?;
    reader.end()
}

/// Writes the canonical form of the JSON value it is handed.
struct Document<'a>(&'a mut Vec<u8>);

impl<'de> DeserializeSeed<'de> for Document<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Document<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Canonical(self.0).tag(UNIT);
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        written(ser::Serializer::serialize_bool(&mut Canonical(self.0), v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        written(ser::Serializer::serialize_i64(&mut Canonical(self.0), v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        written(ser::Serializer::serialize_u64(&mut Canonical(self.0), v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        written(ser::Serializer::serialize_f64(&mut Canonical(self.0), v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        Canonical(self.0).bytes(STR, v.as_bytes());
        Ok(())
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.push(SEQ);
        while seq.next_element_seed(Document(&mut *self.0))?.is_some() {}
        self.0.push(END);
        Ok(())
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Each value's form goes to `values`; the entries are then written in key order.
        let mut values = Vec::new();
        let mut entries: Vec<(Cow<'de, str>, Range<usize>)> = Vec::new();
        while let Some(key) = map.next_key_seed(Key)? {
            let start = values.len();
            map.next_value_seed(Document(&mut values))?;
            entries.push((key, start..values.len()));
        }
        // Stable: of repeated keys, the last one read comes last and is the one kept.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut form = Canonical(self.0);
        form.tag(MAP);
        for (i, (key, value)) in entries.iter().enumerate() {
            if entries.get(i + 1).is_some_and(|next| next.0 == *key) {
                continue;
            }
            form.bytes(STR, key.as_bytes());
            form.0.extend_from_slice(&values[value.clone()]);
        }
        form.tag(END);
        Ok(())
    }
}

/// A scalar's form, written by the serializer above (which never fails on one).
fn written<E: de::Error>(done: Done) -> Result<(), E> {
    done.map_err(E::custom)
}

/// An object key, borrowed from the text unless it has escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Cow<'de, str>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v))
    }
}

// One tag per kind of value, so that no two values of different kinds (the string "1" and
// the number 1 in a JSON document) share a form.
const NONE: u8 = 0;
const SOME: u8 = 1;
const FALSE: u8 = 2;
const TRUE: u8 = 3;
const SIGNED: u8 = 4;
const UNSIGNED: u8 = 5;
const FLOAT: u8 = 6;
const CHAR: u8 = 7;
const STR: u8 = 8;
const BYTES: u8 = 9;
const UNIT: u8 = 10;
const VARIANT: u8 = 11;
const SEQ: u8 = 12;
const MAP: u8 = 13;
const STRUCT: u8 = 14;
const END: u8 = 15;
const WIDE: u8 = 16;
const WIDE_SIGNED: u8 = 17;
const SKIPPED: u8 = 18;
const FAILED: u8 = 255;

struct Canonical<'a>(&'a mut Vec<u8>);

impl Canonical<'_> {
    fn tag(&mut self, tag: u8) {
        self.0.push(tag);
    }

    /// A length or an index, seven bits a byte (LEB128): most take one byte.
    fn number(&mut self, mut n: u64) {
        while n >= 0x80 {
            self.0.push((n & 0x7f) as u8 | 0x80);
            n >>= 7;
        }
        self.0.push(n as u8);
    }

    fn bytes(&mut self, tag: u8, bytes: &[u8]) {
        self.0.push(tag);
        self.number(bytes.len() as u64);
        self.0.extend_from_slice(bytes);
    }

    fn variant(&mut self, index: u32) {
        self.0.push(VARIANT);
        self.number(u64::from(index));
    }
}

#[derive(Debug)]
struct Failed;

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the value does not serialize")
    }
}

impl std::error::Error for Failed {}

impl ser::Error for Failed {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Failed
    }
}

type Done = Result<(), Failed>;

impl<'a, 'b> ser::Serializer for &'a mut Canonical<'b> {
    type Ok = ();
    type Error = Failed;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn serialize_bool(self, v: bool) -> Done {
        self.tag(if v { TRUE } else { FALSE });
        Ok(())
    }

    fn serialize_i8(self, v: i8) -> Done {
        self.serialize_i64(i64::from(v))
    }

    fn serialize_i16(self, v: i16) -> Done {
        self.serialize_i64(i64::from(v))
    }

    fn serialize_i32(self, v: i32) -> Done {
        self.serialize_i64(i64::from(v))
    }

    fn serialize_i64(self, v: i64) -> Done {
        // Non-negative values take the unsigned form: JSON does not tell 5i64 from 5u64.
        match u64::try_from(v) {
            Ok(v) => self.serialize_u64(v),
            Err(_) => {
                self.tag(SIGNED);
                self.0.extend_from_slice(&v.to_le_bytes());
                Ok(())
            }
        }
    }

    fn serialize_i128(self, v: i128) -> Done {
        match i64::try_from(v) {
            Ok(v) => self.serialize_i64(v),
            Err(_) if v > 0 => self.serialize_u128(v.unsigned_abs()),
            Err(_) => {
                self.tag(WIDE_SIGNED);
                self.0.extend_from_slice(&v.to_le_bytes());
                Ok(())
            }
        }
    }

    fn serialize_u8(self, v: u8) -> Done {
        self.serialize_u64(u64::from(v))
    }

    fn serialize_u16(self, v: u16) -> Done {
        self.serialize_u64(u64::from(v))
    }

    fn serialize_u32(self, v: u32) -> Done {
        self.serialize_u64(u64::from(v))
    }

    fn serialize_u64(self, v: u64) -> Done {
        self.tag(UNSIGNED);
        self.0.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }

    fn serialize_u128(self, v: u128) -> Done {
        match u64::try_from(v) {
            Ok(v) => self.serialize_u64(v),
            Err(_) => {
                self.tag(WIDE);
                self.0.extend_from_slice(&v.to_le_bytes());
                Ok(())
            }
        }
    }

    fn serialize_f32(self, v: f32) -> Done {
        self.serialize_f64(f64::from(v))
    }

    fn serialize_f64(self, v: f64) -> Done {
        self.tag(FLOAT);
        self.0.extend_from_slice(&v.to_bits().to_le_bytes());
        Ok(())
    }

    fn serialize_char(self, v: char) -> Done {
        self.tag(CHAR);
        self.0.extend_from_slice(&u32::from(v).to_le_bytes());
        Ok(())
    }

    fn serialize_str(self, v: &str) -> Done {
        self.bytes(STR, v.as_bytes());
        Ok(())
    }

    fn serialize_bytes(self, v: &[u8]) -> Done {
        self.bytes(BYTES, v);
        Ok(())
    }

    fn serialize_none(self) -> Done {
        self.tag(NONE);
        Ok(())
    }

    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Done {
        self.tag(SOME);
        value.serialize(self)
    }

    fn serialize_unit(self) -> Done {
        self.tag(UNIT);
        Ok(())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Done {
        self.serialize_unit()
    }

    fn serialize_unit_variant(self, _name: &'static str, index: u32, _variant: &'static str) -> Done {
        self.variant(index);
        Ok(())
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _name: &'static str, value: &T) -> Done {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        value: &T,
    ) -> Done {
        self.variant(index);
        value.serialize(self)
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Self, Failed> {
        self.tag(SEQ);
        Ok(self)
    }

    fn serialize_tuple(self, len: usize) -> Result<Self, Failed> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Self, Failed> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        len: usize,
    ) -> Result<Self, Failed> {
        self.variant(index);
        self.serialize_seq(Some(len))
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Self, Failed> {
        self.tag(MAP);
        Ok(self)
    }

    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self, Failed> {
        self.tag(STRUCT);
        Ok(self)
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self, Failed> {
        self.variant(index);
        self.tag(STRUCT);
        Ok(self)
    }
}

/// Sequences and tuples: their elements in order, then an end mark.
macro_rules! sequence {
    ($($trait:ident :: $element:ident),+) => {$(
        impl ser::$trait for &mut Canonical<'_> {
            type Ok = ();
            type Error = Failed;

            fn $element<T: ?Sized + Serialize>(&mut self, value: &T) -> Done {
                value.serialize(&mut **self)
            }

            fn end(self) -> Done {
                self.tag(END);
                Ok(())
            }
        }
    )+};
}

sequence!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

/// Structs: their fields by position (names are the type's, not the value's), a field that
/// serde leaves out (`skip_serializing_if`) marked so the next cannot take its place.
macro_rules! structure {
    ($($trait:ident),+) => {$(
        impl ser::$trait for &mut Canonical<'_> {
            type Ok = ();
            type Error = Failed;

            fn serialize_field<T: ?Sized + Serialize>(&mut self, _key: &'static str, value: &T) -> Done {
                value.serialize(&mut **self)
            }

            fn skip_field(&mut self, _key: &'static str) -> Done {
                self.tag(SKIPPED);
                Ok(())
            }

            fn end(self) -> Done {
                self.tag(END);
                Ok(())
            }
        }
    )+};
}

structure!(SerializeStruct, SerializeStructVariant);

impl ser::SerializeMap for &mut Canonical<'_> {
    type Ok = ();
    type Error = Failed;

    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Done {
        key.serialize(&mut **self)
    }

    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Done {
        value.serialize(&mut **self)
    }

    fn end(self) -> Done {
        self.tag(END);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn form(value: &serde_json::Value) -> Vec<u8> {
        let mut out = Vec::new();
        value.serialize(&mut Canonical(&mut out)).expect("serializes");
        out
    }

    #[derive(serde::Serialize)]
    struct Fields {
        #[serde(skip_serializing_if = "Option::is_none")]
        a: Option<&'static str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        b: Option<&'static str>,
    }

    #[test]
    fn a_skipped_field_is_not_mistaken_for_the_next() {
        let form = |fields: &Fields| {
            let mut out = Vec::new();
            fields.serialize(&mut Canonical(&mut out)).expect("serializes");
            out
        };
        assert_ne!(form(&Fields { a: None, b: Some("x") }), form(&Fields { a: Some("x"), b: None }));
    }

    fn document_form(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        document(text, &mut out).expect("valid JSON");
        out
    }

    #[test]
    fn a_document_read_from_text_has_the_form_of_its_value() {
        let texts = [
            "null",
            "true",
            "0",
            "-0",
            "18446744073709551615",
            "-9223372036854775808",
            "1.5",
            "-2.5e-3",
            r#""plain""#,
            r#""esc\"aped \u00e9 \ud83d\ude00""#,
            "[]",
            "{}",
            r#"[1, [2, [3, {}]], "x", null]"#,
            r#"{"b": 1, "a": {"z": [true, false], "y": {}}, "": 0}"#,
            r#"{"k\u0065y": 1, "key": 2}"#,
            r#"{"dup": 1, "other": 0, "dup": 2}"#,
            r#"{"é": 1, "e": 2, "ab": 3, "b": 4}"#,
            " { \"spaced\" :\t[ 1 ,2 ] } ",
        ];
        for text in texts {
            let value: serde_json::Value = serde_json::from_str(text).expect("valid JSON");
            assert_eq!(document_form(text), form(&value), "{text}");
        }
        assert_eq!(document_form(r#"{"a":1,"b":[2]}"#), document_form(r#"{"b": [2], "a": 1}"#));
        for bad in ["", "{", "[1,]", r#"{"a" 1}"#, "1 2", "nul"] {
            assert!(document(bad, &mut Vec::new()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_change_entry_has_the_form_of_its_change_record() {
        let change = bosun_core::ChangeRecord {
            seq: 7,
            at: bosun_core::Timestamp::from_unix_micros(1_700_000_000_123_456),
            kind: bosun_core::ResourceKind::Node,
            resource_id: "gpu-1".into(),
            op: bosun_core::ChangeOp::Updated,
            revision: bosun_core::Revision::FIRST,
            actor: "operator:alice".parse().expect("actor"),
            reason: "cordon".into(),
            resource: json!({"id": "gpu-1", "labels": {"b": "2", "a": "1"}, "gpus": [{"index": 0}]}),
        };
        // What the record's form was before entries kept their documents as text.
        let mut expected = Vec::new();
        ser::Serializer::serialize_newtype_variant(
            &mut Canonical(&mut expected),
            "Record",
            RecordKind::Change as u32,
            "change",
            &change,
        )
        .expect("serializes");
        let spellings = [
            r#"{"gpus":[{"index":0}],"labels":{"a":"1","b":"2"},"id":"gpu-1"}"#.to_owned(),
            "{\n  \"id\": \"gpu-1\",\n  \"labels\": {\"b\": \"2\", \"a\": \"1\"},\n  \"gpus\": [{\"index\": 0}]\n}"
                .to_owned(),
            serde_json::to_string(&change.resource).expect("serializes"),
        ];
        for text in spellings {
            let entry = change.clone().try_map_resource(|_| DocumentText::parse(text.clone())).expect("JSON");
            assert!(!entry.resource.get().contains('\n'), "one line: {}", entry.resource.get());
            let mut form = Vec::new();
            encode(&Record::Change(Box::new(entry)), &mut form);
            assert_eq!(form, expected, "{text}");
        }
    }

    #[test]
    fn values_that_differ_in_kind_shape_or_content_have_different_forms() {
        let values = [
            json!(null),
            json!(false),
            json!(true),
            json!(0),
            json!(1),
            json!(-1),
            json!(1.0),
            json!("1"),
            json!(""),
            json!("a"),
            json!("ab"),
            json!("x".repeat(200)),
            json!("x".repeat(201)),
            json!([]),
            json!({}),
            json!([null]),
            json!([1]),
            json!([[1]]),
            json!([1, 2]),
            json!(["a", "b"]),
            json!(["ab"]),
            json!([{}]),
            json!({"a": 1}),
            json!({"a": "1"}),
            json!({"a": null}),
            json!({"a": {}}),
            json!({"ab": 1}),
            json!({"a": 1, "b": 2}),
            json!({"a": {"b": 2}}),
        ];
        let forms: Vec<Vec<u8>> = values.iter().map(form).collect();
        for (i, a) in forms.iter().enumerate() {
            assert_eq!(*a, form(&values[i].clone()), "{}: the same value, the same form", values[i]);
            for (j, b) in forms.iter().enumerate().skip(i + 1) {
                assert_ne!(a, b, "{} and {}", values[i], values[j]);
            }
        }
    }
}
