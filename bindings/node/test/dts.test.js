'use strict';
// index.d.ts is hand-maintained: it must declare exactly what index.js exports — the same
// classes, and for each class the same methods, static methods and properties.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

// CLANK_NODE_PACKAGE: an installed package directory to test instead of this tree (scripts/test).
const PKG_DIR = process.env.CLANK_NODE_PACKAGE || path.join(__dirname, '..');
const clank = require(PKG_DIR);

/** `{ name: { methods: Set, statics: Set, props: Set } }` for each `export declare class`. */
function declaredClasses(source) {
  const classes = {};
  const lines = source.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^export declare class (\w+)/.exec(lines[i]);
    if (!m) continue;
    const decl = { methods: new Set(), statics: new Set(), props: new Set() };
    classes[m[1]] = decl;
    if (lines[i].trimEnd().endsWith('{}')) continue;
    for (i++; i < lines.length && !/^}/.test(lines[i]); i++) {
      const line = lines[i].trim();
      if (line.startsWith('//') || line.startsWith('/**') || line.startsWith('*')) continue;
      let mm;
      if ((mm = /^static (\w+)\(/.exec(line))) decl.statics.add(mm[1]);
      else if (/^(private )?constructor\(/.test(line)) continue;
      else if ((mm = /^\[Symbol\.(\w+)\]\(/.exec(line))) decl.methods.add(`@@${mm[1]}`);
      else if ((mm = /^(\w+)\(/.exec(line))) decl.methods.add(mm[1]);
      else if ((mm = /^readonly (\w+):/.exec(line))) decl.props.add(mm[1]);
      else if (line) assert.fail(`index.d.ts: unrecognised class member line: ${line}`);
    }
  }
  return classes;
}

/**
 * The prototypes whose members a class shows: its own, and those of unexported base classes
 * it inherits from (e.g. `Events` and `Logs` from one subscription class), never an exported
 * class's (declared with it) nor `Error`'s or `Object`'s.
 */
function ownPrototypes(Class) {
  const exported = new Set(Object.values(clank));
  const protos = [Class.prototype];
  for (
    let p = Object.getPrototypeOf(Class.prototype);
    p && p !== Object.prototype && p !== Error.prototype && !exported.has(p.constructor);
    p = Object.getPrototypeOf(p)
  ) {
    protos.push(p);
  }
  return protos;
}

function runtimeShape(Class) {
  const methods = new Set();
  const props = new Set();
  for (const proto of ownPrototypes(Class)) {
    for (const key of Reflect.ownKeys(proto)) {
      if (key === 'constructor') continue;
      const d = Object.getOwnPropertyDescriptor(proto, key);
      const name = typeof key === 'symbol' ? `@@${key.description.replace('Symbol.', '')}` : key;
      if (name.startsWith('_')) continue; // private helpers
      if (d.get) props.add(name);
      else if (typeof d.value === 'function') methods.add(name);
    }
  }
  const statics = new Set(
    Object.getOwnPropertyNames(Class).filter(
      (k) => !['length', 'name', 'prototype'].includes(k) && typeof Class[k] === 'function',
    ),
  );
  return { methods, statics, props };
}

const declared = declaredClasses(fs.readFileSync(path.join(PKG_DIR, 'index.d.ts'), 'utf8'));

test('index.d.ts declares exactly the exported names', () => {
  const dtsSource = fs.readFileSync(path.join(PKG_DIR, 'index.d.ts'), 'utf8');
  const functions = [...dtsSource.matchAll(/^export declare function (\w+)/gm)].map((m) => m[1]);
  assert.deepEqual(
    [...Object.keys(declared), ...functions].sort(),
    Object.keys(clank).sort(),
  );
  for (const name of Object.keys(clank)) assert.equal(typeof clank[name], 'function', name);
});

for (const [name, decl] of Object.entries(declared)) {
  test(`index.d.ts: class ${name} has exactly the runtime's members`, () => {
    const actual = runtimeShape(clank[name]);
    assert.deepEqual([...decl.methods].sort(), [...actual.methods].sort(), `${name} methods`);
    assert.deepEqual([...decl.statics].sort(), [...actual.statics].sort(), `${name} statics`);
    // Declared properties are getters, or (errors) fields every instance has.
    const instanceFields =
      clank[name] === clank.ClankError || clank[name].prototype instanceof clank.ClankError
        ? Object.keys(new clank[name]('m'))
        : [];
    const props = new Set([...actual.props, ...instanceFields.filter((f) => decl.props.has(f))]);
    assert.deepEqual([...decl.props].sort(), [...props].sort(), `${name} properties`);
  });
}

test('subclasses declared in index.d.ts extend ClankError at runtime', () => {
  const source = fs.readFileSync(path.join(PKG_DIR, 'index.d.ts'), 'utf8');
  for (const m of source.matchAll(/^export declare class (\w+) extends ClankError/gm)) {
    assert.ok(new clank[m[1]]('x') instanceof clank.ClankError, m[1]);
  }
});
