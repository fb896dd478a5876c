// A JSON Schema check for the structured-output tests, for the keywords
// shardlm's converter supports (see coordinator/grammar/
// json_schema_to_grammar.h): returns "" when `value` fits, else why not.
// Written from the specification, independent of the server's grammar code.
const dateRe = /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$/;
const timeRe = /^([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$/;
const uuidRe = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

function typeOf(v) {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v;  // object, string, boolean, number
}

function isType(v, t) {
  if (t === "integer") return typeof v === "number" && Number.isInteger(v);
  return typeOf(v) === t;
}

function equal(a, b) {
  return JSON.stringify(sortKeys(a)) === JSON.stringify(sortKeys(b));
}
function sortKeys(v) {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v !== null && typeof v === "object") {
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys(v[k])]));
  }
  return v;
}

function formatOk(format, s) {
  if (format === "date") return dateRe.test(s);
  if (format === "time") return timeRe.test(s);
  if (format === "uuid") return uuidRe.test(s);
  if (format === "date-time") {
    const t = s.search(/[Tt]/);
    return t > 0 && dateRe.test(s.slice(0, t)) && timeRe.test(s.slice(t + 1));
  }
  return true;  // other formats are annotations
}

export function checkSchema(root, value) {
  function check(s, v, at) {
    if (s === true) return "";
    if (s === false) return `${at}: schema false`;
    if (s.$ref !== undefined) {
      if (s.$ref === "#") return check(root, v, at);
      const m = /^#\/(\$defs|definitions)\/(.+)$/.exec(s.$ref);
      if (!m) return `${at}: unresolvable $ref`;
      return check(root[m[1]][m[2]], v, at);
    }
    if ("const" in s && !equal(s.const, v)) return `${at}: not the const`;
    if (s.enum && !s.enum.some((e) => equal(e, v))) return `${at}: not in enum`;
    if (s.type !== undefined) {
      const types = Array.isArray(s.type) ? s.type : [s.type];
      if (!types.some((t) => isType(v, t))) return `${at}: not of type ${JSON.stringify(s.type)}`;
    }
    if (s.anyOf && !s.anyOf.some((b) => check(b, v, at) === "")) return `${at}: fits no anyOf branch`;
    if (s.oneOf) {
      const n = s.oneOf.filter((b) => check(b, v, at) === "").length;
      if (n !== 1) return `${at}: fits ${n} oneOf branches`;
    }
    for (const b of s.allOf ?? []) {
      const e = check(b, v, at);
      if (e) return e;
    }
    if (typeof v === "string") {
      const n = [...v].length;
      if (s.minLength !== undefined && n < s.minLength) return `${at}: shorter than minLength`;
      if (s.maxLength !== undefined && n > s.maxLength) return `${at}: longer than maxLength`;
      if (s.format && !formatOk(s.format, v)) return `${at}: not a ${s.format}`;
    }
    if (Array.isArray(v)) {
      if (s.minItems !== undefined && v.length < s.minItems) return `${at}: fewer than minItems`;
      if (s.maxItems !== undefined && v.length > s.maxItems) return `${at}: more than maxItems`;
      const prefix = s.prefixItems ?? [];
      for (let i = 0; i < v.length; i++) {
        const sub = i < prefix.length ? prefix[i] : s.items;
        if (sub === undefined) continue;
        const e = check(sub, v[i], `${at}/${i}`);
        if (e) return e;
      }
    }
    if (typeOf(v) === "object") {
      for (const r of s.required ?? []) {
        if (!(r in v)) return `${at}: missing ${r}`;
      }
      const props = s.properties ?? {};
      for (const [k, x] of Object.entries(v)) {
        const sub = k in props ? props[k] : s.additionalProperties;
        if (sub === undefined) continue;
        const e = check(sub, x, `${at}/${k}`);
        if (e) return e;
      }
    }
    return "";
  }
  return check(root, value, "#");
}
