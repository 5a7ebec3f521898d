/**
 * JSON bodies: a valid one for the route, then mutations of its value and of its text, and
 * whether the service must refuse the result with 400 whatever else the request does.
 */
import type { Field } from './fixtures.js';
import { hostileString, invalidUtf8 } from './hostile-values.js';
import type { Rng } from './rng.js';

/** docs/http-api.md: bodies nested deeper than this are refused with 400. */
const MAX_BODY_DEPTH = 64;

export function randomFields(rng: Rng): Field[] {
  const types = ['text', 'textarea', 'number', 'date', 'email', 'phone', 'select', 'checkbox'];
  const fields: Field[] = [];
  for (let i = rng.between(0, 5); i > 0; i--) {
    const type = rng.pick(types);
    fields.push({
      name: `f${fields.length}${rng.text(rng.between(0, 6), 'abcXYZ_09')}`,
      label: rng.pick(VALID_TEXT).slice(0, 500) || 'x',
      type,
      ...(type === 'select'
        ? { options: ['a', rng.pick(VALID_TEXT).slice(0, 200) || 'b', rng.text(5)] }
        : {}),
    });
  }
  return fields;
}

/** Text a form or an answer may hold: odd, but storable (no NUL, no lone surrogate). */
const VALID_TEXT: readonly string[] = [
  'Jane Q. Patient',
  'Zoë Ünïcödé',
  'emoji 😀👩‍⚕️ and CJK 患者',
  '\u202eright to left\u202c',
  'tab\tnew\nline\r\nreturn',
  '\u0007bell \u001b[31mescape',
  '<script>alert(1)</script>',
  "'; DROP TABLE forms; --",
  '(((((((((()))))))))) \\ / % _',
  'x'.repeat(1000),
  'word '.repeat(200),
];

export function validAnswers(rng: Rng): Record<string, unknown> {
  const answers: Record<string, unknown> = {};
  const all: Record<string, unknown> = {
    fullName: rng.pick(VALID_TEXT),
    notes: rng.pick(['', ...VALID_TEXT, 'n'.repeat(10_000), '\n'.repeat(10_000), 'word '.repeat(2000)]),
    age: rng.pick([0, 42, -1, 1.5, 1e300]),
    dob: rng.pick(['1980-02-29', '2000-01-01']),
    email: 'patient@clinic.example',
    phone: '+1 (555) 010-0000',
    plan: rng.pick(['basic', 'plus']),
    consent: rng.chance(0.5),
    constructor: 'a field named constructor',
  };
  for (const [name, value] of Object.entries(all)) if (rng.chance(0.6)) answers[name] = value;
  return answers;
}

/** A value for a JSON schema (for routes the fuzzer has no fixtures for). */
export function fromSchema(schema: unknown, rng: Rng, depth = 0): unknown {
  if (typeof schema !== 'object' || schema === null || depth > 6) return null;
  const s = schema as Record<string, unknown>;
  if (Array.isArray(s.enum)) return rng.pick(s.enum as unknown[]);
  const type = Array.isArray(s.type) ? (s.type[0] as unknown) : s.type;
  switch (type) {
    case 'object': {
      const out: Record<string, unknown> = {};
      const required = new Set(Array.isArray(s.required) ? (s.required as string[]) : []);
      for (const [name, property] of Object.entries((s.properties ?? {}) as Record<string, unknown>)) {
        if (required.has(name) || rng.chance(0.5)) out[name] = fromSchema(property, rng, depth + 1);
      }
      return out;
    }
    case 'array':
      return Array.from({ length: rng.between(Number(s.minItems ?? 0), 3) }, () =>
        fromSchema(s.items, rng, depth + 1),
      );
    case 'integer':
    case 'number':
      return rng.between(0, 100);
    case 'boolean':
      return rng.chance(0.5);
    case 'string':
      return rng.text(Math.max(Number(s.minLength ?? 1), 3));
    default:
      return null;
  }
}

/** Numbers JSON.stringify cannot write: a marker string, replaced in the text after. */
const RAW_NUMBERS = [
  '1e309',
  '-1e309',
  '9007199254740993',
  '-0',
  '1e-400',
  '123456789012345678901234567890',
  '0.1e-99999',
];

function wrongValue(rng: Rng): unknown {
  switch (rng.int(12)) {
    case 0:
      return null;
    case 1:
      return rng.chance(0.5);
    case 2:
      return rng.pick([0, -1, 3.14, 2 ** 53, -(2 ** 31)]);
    case 3:
      return `@@raw:${rng.pick(RAW_NUMBERS)}@@`;
    case 4:
      return [];
    case 5:
      return {};
    case 6:
      return [hostileString(rng)];
    case 7:
      return { $gt: '', $ne: null };
    case 8:
      return deepValue(rng);
    default:
      return hostileString(rng);
  }
}

function deepValue(rng: Rng): unknown {
  // As text, so that building it costs nothing here; parsed only by the service.
  const depth = rng.pick([64, 1000, 20_000, 200_000]);
  return rng.chance(0.5)
    ? `@@raw:${'['.repeat(depth)}${']'.repeat(depth)}@@`
    : `@@raw:${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}@@`;
}

/** Every place in a JSON value: object keys and array indexes down from the root. */
function places(value: unknown, path: (string | number)[] = [], out: (string | number)[][] = []) {
  out.push(path);
  if (Array.isArray(value)) value.forEach((item, index) => places(item, [...path, index], out));
  else if (typeof value === 'object' && value !== null) {
    for (const [key, item] of Object.entries(value)) places(item, [...path, key], out);
  }
  return out;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  // defineProperty, so that `__proto__` is a key of the JSON and not this object's prototype.
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

interface BodyMutation {
  readonly value: unknown;
  readonly kind: string;
}

export function mutateValue(rng: Rng, original: unknown): BodyMutation {
  // A copy through JSON keeps own `__proto__` keys as keys.
  const value = JSON.parse(JSON.stringify(original)) as unknown;
  const all = places(value);
  const path = rng.pick(all.length > 1 ? all.slice(1) : all);
  const parentPath = path.slice(0, -1);
  let parent: unknown = value;
  for (const step of parentPath) parent = (parent as Record<string | number, unknown>)[step];
  const last = path[path.length - 1];
  const holder = parent as Record<string, unknown>;
  const holderIsObject = isRecord(parent);
  switch (rng.int(9)) {
    case 0:
      return { value: wrongTopLevel(rng), kind: 'top-level non-object' };
    case 1:
      if (last !== undefined && holderIsObject) {
        // eslint-disable-next-line @typescript-eslint/no-dynamic-delete -- removing a field is the mutation
        delete holder[String(last)];
        return { value, kind: `missing ${path.join('/')}` };
      }
      return { value: {}, kind: 'empty object' };
    case 2:
    case 3: {
      if (last === undefined) return { value: wrongTopLevel(rng), kind: 'top-level non-object' };
      setOwn(holder, String(last), wrongValue(rng));
      return { value, kind: `wrong value at ${path.join('/')}` };
    }
    case 4: {
      const target = holderIsObject ? holder : value;
      if (!isRecord(target)) return { value, kind: 'unchanged' };
      const key = rng.pick(['__proto__', 'constructor', 'prototype', 'isAdmin', 'roles', '$where', '']);
      const payload =
        key === 'constructor' ? { prototype: { polluted: 'fuzz' } } : { polluted: 'fuzz', isAdmin: true };
      setOwn(target, key, payload);
      return { value, kind: `extra key ${key}` };
    }
    case 5: {
      if (typeof value !== 'object' || value === null || Array.isArray(value))
        return { value, kind: 'unchanged' };
      const extra = value as Record<string, unknown>;
      for (let i = rng.pick([3, 300, 20_000]); i > 0; i--) extra[`extra${i}`] = rng.pick([1, 'x', null]);
      return { value, kind: 'many extra fields' };
    }
    case 6: {
      if (last === undefined) return { value: deepValue(rng), kind: 'deep nesting' };
      setOwn(holder, String(last), deepValue(rng));
      return { value, kind: `deep nesting at ${path.join('/')}` };
    }
    case 7: {
      if (last === undefined) return { value, kind: 'unchanged' };
      setOwn(
        holder,
        String(last),
        Array.from({ length: rng.pick([1000, 100_000]) }, () => 0),
      );
      return { value, kind: `long array at ${path.join('/')}` };
    }
    default: {
      if (last === undefined) return { value, kind: 'unchanged' };
      setOwn(holder, String(last), hostileString(rng));
      return { value, kind: `hostile string at ${path.join('/')}` };
    }
  }
}

// eslint-disable-next-line no-control-regex -- NUL is what the service must refuse
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * Whether a (mutated) body must be refused with 400 whatever else the request does: not an
 * object, a `__proto__` key or a `constructor.prototype` anywhere, NUL or half a surrogate pair
 * anywhere, a required field missing, or a field of the wrong type or length (by the route's
 * schema, top level only).
 */
export function mustRefuse(value: unknown, schema: unknown): boolean {
  // A whole body of nested objects (deepValue) is an object: refused for its depth, or else for
  // what the schema requires of an object holding only `a`.
  if (typeof value === 'string' && value.startsWith('@@raw:{')) {
    const depth = value.split('{').length - 1;
    return depth > MAX_BODY_DEPTH || mustRefuse({ a: 1 }, schema);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return true;
  const poisoned = (node: unknown, depth: number): boolean => {
    if (typeof node === 'string') return UNSTORABLE.test(node);
    if (typeof node !== 'object' || node === null || depth > 50) return false;
    return Object.entries(node).some(
      ([key, inner]) =>
        key === '__proto__' ||
        UNSTORABLE.test(key) ||
        (key === 'constructor' && typeof inner === 'object' && inner !== null && 'prototype' in inner) ||
        poisoned(inner, depth + 1),
    );
  };
  if (poisoned(value, 0)) return true;
  const { required = [], properties = {} } = (schema ?? {}) as {
    required?: string[];
    properties?: Record<string, { type?: string; minLength?: number; maxLength?: number }>;
  };
  const fields = value as Record<string, unknown>;
  if (required.some((name) => !Object.hasOwn(fields, name))) return true;
  return Object.entries(properties).some(([name, property]) => {
    if (!Object.hasOwn(fields, name)) return false;
    const field = fields[name];
    // A raw marker stands for a number, an array or an object: never a string.
    const raw = typeof field === 'string' && field.startsWith('@@raw:');
    const kind = raw ? 'raw' : Array.isArray(field) ? 'array' : field === null ? 'null' : typeof field;
    if (property.type === 'string') {
      if (kind !== 'string') return true;
      // Code points, as the schema validator counts them.
      const length = (field as string).replace(/[\ud800-\udbff][\udc00-\udfff]/g, '_').length;
      return length < (property.minLength ?? 0) || length > (property.maxLength ?? Infinity);
    }
    if (property.type === 'object') return kind !== 'object' && kind !== 'raw';
    if (property.type === 'array') return kind !== 'array' && kind !== 'raw';
    return false;
  });
}

function wrongTopLevel(rng: Rng): unknown {
  return rng.pick<unknown>([null, [], [{}], 'a string', 42, true, '@@raw:1e309@@']);
}

export function jsonText(value: unknown): Buffer {
  let text = JSON.stringify(value);
  for (let at = text.indexOf('"@@raw:'); at !== -1; at = text.indexOf('"@@raw:', at)) {
    const end = text.indexOf('@@"', at + 7);
    const raw = text.slice(at + 7, end).replaceAll('\\"', '"');
    text = text.slice(0, at) + raw + text.slice(end + 3);
    at += raw.length;
  }
  return Buffer.from(text);
}

/** Mutations of the JSON text itself. */
export function mutateText(rng: Rng, text: Buffer): { body: Buffer; kind: string } {
  const at = rng.int(text.length + 1);
  switch (rng.int(8)) {
    case 0:
      return { body: text.subarray(0, Math.min(at, text.length - 1)), kind: 'truncated JSON' };
    case 1:
      return {
        body: Buffer.concat([
          text.subarray(0, at),
          Buffer.from(rng.pick(['}', ']', ',', '"', ':', '\\', 'x'])),
          text.subarray(at),
        ]),
        kind: 'a stray character',
      };
    case 2: {
      // Invalid UTF-8 inside a string (after a quote).
      const quote = text.indexOf('"', at) === -1 ? text.indexOf('"') : text.indexOf('"', at);
      const where = quote === -1 ? at : quote + 1;
      return {
        body: Buffer.concat([text.subarray(0, where), invalidUtf8(rng), text.subarray(where)]),
        kind: 'invalid UTF-8 in a string',
      };
    }
    case 3:
      return { body: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), text]), kind: 'a BOM' };
    case 4:
      return {
        body: Buffer.from(
          text.toString().replace(/^\{/, '{"email":1,"email":"dup@clinic.example","__proto__":{"x":1},'),
        ),
        kind: 'duplicate and __proto__ keys in the text',
      };
    case 5:
      return {
        body: Buffer.from(
          rng.pick([
            '',
            ' ',
            'null',
            '[]',
            '"text"',
            '1',
            'NaN',
            'undefined',
            '{',
            '{}}',
            '{"a":}',
            "{'a':1}",
          ]),
        ),
        kind: 'not a JSON object',
      };
    case 6:
      return { body: rng.bytes(rng.between(1, 2000)), kind: 'random bytes' };
    default:
      return {
        body: Buffer.concat([text, Buffer.from(rng.pick([' garbage', '\u0000', '\n{}', ']']))]),
        kind: 'trailing garbage',
      };
  }
}
