//! Protobuf encoding of an OpenAPI v2 JSON document into gnostic's `openapi.v2.Document` message (the form
//! kubectl downloads). Only what kubectl reads is encoded: swagger, info, paths with operations (parameters,
//! vendor extensions) and definitions (schemas with refs, types, properties, items, required, descriptions and
//! `x-kubernetes-*` extensions).

use serde_json::Value;

/// A protobuf message being written.
#[derive(Default)]
struct Msg(Vec<u8>);

impl Msg {
    fn varint(&mut self, mut v: u64) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(b);
                return;
            }
            self.0.push(b | 0x80);
        }
    }

    fn key(&mut self, field: u32, wire: u8) {
        self.varint((u64::from(field) << 3) | u64::from(wire));
    }

    fn bytes(&mut self, field: u32, data: &[u8]) {
        self.key(field, 2);
        self.varint(data.len() as u64);
        self.0.extend_from_slice(data);
    }

    fn string(&mut self, field: u32, s: &str) {
        if !s.is_empty() {
            self.bytes(field, s.as_bytes());
        }
    }

    fn msg(&mut self, field: u32, m: Msg) {
        self.bytes(field, &m.0);
    }

    fn boolean(&mut self, field: u32, b: bool) {
        if b {
            self.key(field, 0);
            self.varint(1);
        }
    }

    fn int64(&mut self, field: u32, v: i64) {
        if v != 0 {
            self.key(field, 0);
            self.varint(v as u64);
        }
    }

    fn double(&mut self, field: u32, v: f64) {
        self.key(field, 1);
        self.0.extend_from_slice(&v.to_le_bytes());
    }
}

/// `Any { yaml = 2 }`.
fn any_yaml(v: &Value) -> Msg {
    let mut m = Msg::default();
    let yaml = serde_yaml::to_string(v).unwrap_or_default();
    m.string(2, &yaml);
    m
}

/// `NamedAny { name = 1, value = 2 }`.
fn named_any(name: &str, v: &Value) -> Msg {
    let mut m = Msg::default();
    m.string(1, name);
    m.msg(2, any_yaml(v));
    m
}

fn schema(s: &Value) -> Msg {
    let mut m = Msg::default();
    let Some(obj) = s.as_object() else { return m };
    if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
        m.string(1, r);
    }
    if let Some(f) = obj.get("format").and_then(Value::as_str) {
        m.string(2, f);
    }
    if let Some(t) = obj.get("title").and_then(Value::as_str) {
        m.string(3, t);
    }
    if let Some(d) = obj.get("description").and_then(Value::as_str) {
        m.string(4, d);
    }
    if let Some(d) = obj.get("default") {
        m.msg(5, any_yaml(d));
    }
    for (key, field) in [("maximum", 7u32), ("minimum", 9)] {
        if let Some(n) = obj.get(key).and_then(Value::as_f64) {
            m.double(field, n);
        }
    }
    for (key, field) in [("maxLength", 11u32), ("minLength", 12), ("maxItems", 14), ("minItems", 15), ("maxProperties", 17), ("minProperties", 18)] {
        if let Some(n) = obj.get(key).and_then(Value::as_i64) {
            m.int64(field, n);
        }
    }
    if let Some(p) = obj.get("pattern").and_then(Value::as_str) {
        m.string(13, p);
    }
    if let Some(u) = obj.get("uniqueItems").and_then(Value::as_bool) {
        m.boolean(16, u);
    }
    for r in obj.get("required").and_then(Value::as_array).into_iter().flatten() {
        if let Some(r) = r.as_str() {
            m.string(19, r);
        }
    }
    for e in obj.get("enum").and_then(Value::as_array).into_iter().flatten() {
        m.msg(20, any_yaml(e));
    }
    match obj.get("additionalProperties") {
        Some(Value::Bool(b)) => {
            let mut a = Msg::default();
            a.key(2, 0);
            a.varint(u64::from(*b));
            m.msg(21, a);
        }
        Some(v @ Value::Object(_)) => {
            let mut a = Msg::default();
            a.msg(1, schema(v));
            m.msg(21, a);
        }
        _ => {}
    }
    if let Some(t) = obj.get("type") {
        let mut ti = Msg::default();
        match t {
            Value::String(s) => ti.string(1, s),
            Value::Array(a) => {
                for s in a.iter().filter_map(Value::as_str).filter(|s| *s != "null") {
                    ti.string(1, s);
                }
            }
            _ => {}
        }
        m.msg(22, ti);
    }
    if let Some(items) = obj.get("items") {
        let mut ii = Msg::default();
        match items {
            Value::Array(a) => {
                for i in a {
                    ii.msg(1, schema(i));
                }
            }
            other => ii.msg(1, schema(other)),
        }
        m.msg(23, ii);
    }
    for a in obj.get("allOf").and_then(Value::as_array).into_iter().flatten() {
        m.msg(24, schema(a));
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        let mut p = Msg::default();
        for (name, ps) in props {
            let mut ns = Msg::default();
            ns.string(1, name);
            ns.msg(2, schema(ps));
            p.msg(1, ns);
        }
        m.msg(25, p);
    }
    if let Some(r) = obj.get("readOnly").and_then(Value::as_bool) {
        m.boolean(27, r);
    }
    for (k, v) in obj {
        if k.starts_with("x-") {
            m.msg(31, named_any(k, v));
        }
    }
    m
}

fn parameter(p: &Value) -> Msg {
    // ParametersItem { parameter = 1: Parameter }
    let mut param = Msg::default();
    if p["in"] == "body" {
        let mut body = Msg::default();
        body.string(1, p["description"].as_str().unwrap_or_default());
        body.string(2, p["name"].as_str().unwrap_or_default());
        body.string(3, "body");
        body.boolean(4, p["required"].as_bool().unwrap_or(false));
        body.msg(5, schema(&p["schema"]));
        param.msg(1, body);
    } else {
        let mut q = Msg::default();
        q.boolean(1, p["required"].as_bool().unwrap_or(false));
        q.string(2, "query");
        q.string(3, p["description"].as_str().unwrap_or_default());
        q.string(4, p["name"].as_str().unwrap_or_default());
        q.string(6, p["type"].as_str().unwrap_or("string"));
        q.boolean(20, p["uniqueItems"].as_bool().unwrap_or(false));
        let mut nb = Msg::default();
        nb.msg(3, q);
        param.msg(2, nb);
    }
    let mut item = Msg::default();
    item.msg(1, param);
    item
}

fn operation(op: &Value) -> Msg {
    let mut m = Msg::default();
    for t in op["tags"].as_array().into_iter().flatten() {
        m.string(1, t.as_str().unwrap_or_default());
    }
    m.string(3, op["description"].as_str().unwrap_or_default());
    m.string(5, op["operationId"].as_str().unwrap_or_default());
    for p in op["produces"].as_array().into_iter().flatten() {
        m.string(6, p.as_str().unwrap_or_default());
    }
    for c in op["consumes"].as_array().into_iter().flatten() {
        m.string(7, c.as_str().unwrap_or_default());
    }
    for p in op["parameters"].as_array().into_iter().flatten() {
        m.msg(8, parameter(p));
    }
    // Responses { response_code = 1: NamedResponseValue { name, value: ResponseValue { response = 1 } } }
    let mut responses = Msg::default();
    if let Some(rs) = op["responses"].as_object() {
        for (code, r) in rs {
            let mut resp = Msg::default();
            resp.string(1, r["description"].as_str().unwrap_or_default());
            let mut si = Msg::default();
            si.msg(1, schema(&r["schema"]));
            resp.msg(2, si);
            let mut rv = Msg::default();
            rv.msg(1, resp);
            let mut named = Msg::default();
            named.string(1, code);
            named.msg(2, rv);
            responses.msg(1, named);
        }
    }
    m.msg(9, responses);
    if let Some(o) = op.as_object() {
        for (k, v) in o {
            if k.starts_with("x-") {
                m.msg(13, named_any(k, v));
            }
        }
    }
    m
}

/// Encodes the whole document.
pub fn encode_document(doc: &Value) -> Vec<u8> {
    let mut d = Msg::default();
    d.string(1, doc["swagger"].as_str().unwrap_or("2.0"));
    let mut info = Msg::default();
    info.string(1, doc["info"]["title"].as_str().unwrap_or_default());
    info.string(2, doc["info"]["version"].as_str().unwrap_or_default());
    d.msg(2, info);
    let mut paths = Msg::default();
    for (p, item) in doc["paths"].as_object().into_iter().flatten() {
        let mut pi = Msg::default();
        for (verb, field) in [("get", 2u32), ("put", 3), ("post", 4), ("delete", 5), ("patch", 8)] {
            if let Some(op) = item.get(verb) {
                pi.msg(field, operation(op));
            }
        }
        let mut named = Msg::default();
        named.string(1, p);
        named.msg(2, pi);
        paths.msg(2, named);
    }
    d.msg(8, paths);
    let mut defs = Msg::default();
    for (name, s) in doc["definitions"].as_object().into_iter().flatten() {
        let mut ns = Msg::default();
        ns.string(1, name);
        ns.msg(2, schema(s));
        defs.msg(1, ns);
    }
    d.msg(9, defs);
    d.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn varints_and_strings_encode_like_protobuf() {
        let mut m = Msg::default();
        m.varint(300);
        assert_eq!(m.0, vec![0xac, 0x02]);
        let mut s = Msg::default();
        s.string(1, "hi");
        assert_eq!(s.0, vec![0x0a, 0x02, b'h', b'i']);
    }

    #[test]
    fn schema_fields_land_on_gnostic_numbers() {
        let enc = schema(&json!({"$ref": "#/definitions/x"})).0;
        assert_eq!(enc[0], (1 << 3) | 2);
        let enc = schema(&json!({"type": "string"})).0;
        assert_eq!(&enc[..2], &[0xb2, 0x01], "field 22, wire type 2, as a two-byte varint");
        assert_eq!(&enc[2..], &[8, 0x0a, 6, b's', b't', b'r', b'i', b'n', b'g']);
    }
}
