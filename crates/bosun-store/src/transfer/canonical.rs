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

use serde::ser::{self, Serialize};

use super::Record;

/// Appends `record`'s canonical form to `out`.
pub(super) fn encode(record: &Record, out: &mut Vec<u8>) {
    // Domain types serialize without failure (string-keyed maps, finite numbers); should one
    // ever fail, its form ends in a mark no complete form has.
    if record.serialize(&mut Canonical(out)).is_err() {
        out.push(FAILED);
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
