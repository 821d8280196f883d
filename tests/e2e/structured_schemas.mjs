// A deterministic corpus of varied JSON Schemas for the structured-output
// acceptance test: nested objects, arrays with minItems/maxItems, enums and
// const, bounded strings, patterns and formats, bounded numbers, $ref/$defs
// (recursive too), anyOf/oneOf, optional properties. Strings and arrays are
// bounded where a random-weight model could otherwise write until
// max_tokens: the test checks the grammar, not the model's taste.

// mulberry32: a small seeded PRNG, so the corpus is the same every run.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = ['id', 'name', 'title', 'kind', 'count', 'tags', 'owner', 'score', 'city', 'level',
  'color', 'size', 'active', 'note', 'code', 'price', 'rank', 'mode', 'zone', 'step'];

function maker(seed) {
  const r = rng(seed);
  const int = (lo, hi) => lo + Math.floor(r() * (hi - lo + 1));
  const pick = (xs) => xs[int(0, xs.length - 1)];
  const names = (n) => {
    const out = new Set();
    while (out.size < n) out.add(pick(WORDS) + (r() < 0.3 ? `_${int(1, 9)}` : ''));
    return [...out];
  };
  const boundedString = () => {
    const lo = int(0, 3);
    return { type: 'string', minLength: lo, maxLength: lo + int(1, 12) };
  };
  const leaf = () => {
    switch (int(0, 9)) {
      case 0: return boundedString();
      case 1: return { type: 'integer', minimum: int(-50, 0), maximum: int(1, 5000) };
      case 2: return { type: 'boolean' };
      case 3: return { enum: ['red', 'green', 'blue', 'cyan'].slice(0, int(2, 4)) };
      case 4: return { type: 'number', minimum: 0, maximum: int(2, 1000) };
      case 5: return { type: 'string', pattern: pick(['^[a-z]{2,6}$', '^[A-Z][0-9]{3}$', '^(yes|no)$', '^\\d{1,4}-\\d{2}$']) };
      case 6: return { type: 'string', format: pick(['date', 'uuid', 'ipv4', 'email', 'time']) };
      case 7: return { enum: [1, 2, 3, 'many', null] };
      case 8: return { type: 'null' };
      default: return { const: pick(['v1', 7, true]) };
    }
  };
  const object = (depth, props) => {
    const keys = names(props);
    const properties = {};
    for (const k of keys) properties[k] = depth > 0 && r() < 0.35 ? object(depth - 1, int(1, 3)) : leaf();
    const required = keys.filter(() => r() < 0.7);
    const o = { type: 'object', properties, additionalProperties: false };
    if (required.length) o.required = required;
    return o;
  };
  const array = (items) => {
    const lo = int(0, 2);
    return { type: 'array', items, minItems: lo, maxItems: lo + int(1, 3) };
  };
  return { r, int, pick, leaf, object, array, boundedString };
}

// Schema number i of the corpus, one of ten families.
function schemaAt(i) {
  const m = maker(1000 + i);
  switch (i % 10) {
    case 0:  // flat object of every leaf kind
      return m.object(0, m.int(2, 5));
    case 1:  // nested objects
      return m.object(2, m.int(2, 3));
    case 2:  // arrays of objects and of leaves
      return {
        type: 'object',
        properties: { items: m.array(m.object(0, 2)), labels: m.array(m.boundedString()) },
        required: ['items', 'labels'],
        additionalProperties: false,
      };
    case 3:  // a top-level array with bounds
      return m.array(m.pick([m.leaf(), m.object(0, 2)]));
    case 4:  // $defs and $ref, used twice
      return {
        $defs: { part: m.object(0, m.int(1, 3)) },
        type: 'object',
        properties: { first: { $ref: '#/$defs/part' }, second: { $ref: '#/$defs/part' }, n: m.leaf() },
        required: ['first', 'second'],
        additionalProperties: false,
      };
    case 5:  // anyOf of differently shaped branches
      return {
        anyOf: [m.object(0, 2), { type: 'integer', minimum: 0, maximum: m.int(1, 99) }, m.boundedString()].slice(0, m.int(2, 3)),
      };
    case 6:  // enums and const in an object
      return {
        type: 'object',
        properties: {
          status: { enum: ['open', 'closed', 'pending'] },
          version: { const: m.int(1, 3) },
          flags: m.array({ enum: ['a', 'b', 'c'] }),
        },
        required: ['status', 'version', 'flags'],
        additionalProperties: false,
      };
    case 7:  // a bounded recursive tree through $ref
      return {
        $defs: {
          node: {
            type: 'object',
            properties: {
              label: { type: 'string', maxLength: 4 },
              children: { type: 'array', items: { $ref: '#/$defs/node' }, maxItems: 1 },
            },
            required: ['label'],
            additionalProperties: false,
          },
        },
        $ref: '#/$defs/node',
      };
    case 8:  // oneOf between records with a discriminating const
      return {
        oneOf: [
          { type: 'object', properties: { kind: { const: 'a' }, x: m.leaf() }, required: ['kind', 'x'], additionalProperties: false },
          { type: 'object', properties: { kind: { const: 'b' }, y: m.boundedString() }, required: ['kind', 'y'], additionalProperties: false },
        ],
      };
    default:  // optional-only properties, prefixItems, nullable types
      return {
        type: 'object',
        properties: {
          pair: { type: 'array', prefixItems: [m.leaf(), { type: 'integer', minimum: 0, maximum: 9 }], items: false, minItems: 2 },
          maybe: { type: ['string', 'null'], maxLength: m.int(1, 8) },
          extra: m.object(1, 2),
        },
        additionalProperties: false,
      };
  }
}

export function schemaCorpus(n) {
  return Array.from({ length: n }, (_, i) => schemaAt(i));
}
