// ES module entry of the package: the CommonJS API (index.js) under the same names (Node finds
// them in index.js's `module.exports = { ... }`), plus a default export of the whole module.
// test/esm.test.mjs checks that both entries export the same names.
export * from './index.js';
import clank from './index.js';
export default clank;
