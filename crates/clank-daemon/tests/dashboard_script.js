// Runs the dashboard's script (argv[2]) against a stand-in DOM and EventSource, and checks it
// moves a status cell through a deployment's events: the first `status` event, `transition`s,
// the previous ACTIVE deployment shown SUPERSEDED, the stream closed once settled, its "… so
// far" duration turned into how long it took (from the settling event's time). Exits
// non-zero on the first difference. Run by `tests/ui.rs`.
"use strict";

const fs = require("fs");
const vm = require("vm");
const assert = require("assert");

function cell(number, status, follow) {
  const attrs = { "data-status": status, "data-deployment": String(number) };
  if (follow) {
    attrs["data-follow"] = follow;
  }
  return {
    attrs,
    textContent: status,
    className: "status status-" + status.toLowerCase(),
    getAttribute(name) {
      return Object.prototype.hasOwnProperty.call(this.attrs, name) ? this.attrs[name] : null;
    },
    setAttribute(name, value) {
      this.attrs[name] = String(value);
    },
  };
}

const active = cell(1, "ACTIVE", null);
const pending = cell(2, "PENDING", "/ui/x/deployments/2/events");
const cells = [active, pending];
const cancelForm = { hidden: false };
// Deployment #2's running duration: created at 1 000 000 ms, 4 s so far when the page loaded.
const runningFor = {
  attrs: { "data-duration-of": "2", "data-created": "1000000" },
  textContent: "4s so far",
  getAttribute(name) {
    return Object.prototype.hasOwnProperty.call(this.attrs, name) ? this.attrs[name] : null;
  },
  removeAttribute(name) {
    delete this.attrs[name];
  },
};

const sources = [];
class FakeEventSource {
  constructor(url) {
    this.url = url;
    this.listeners = {};
    this.closed = false;
    sources.push(this);
  }
  addEventListener(name, fn) {
    (this.listeners[name] = this.listeners[name] || []).push(fn);
  }
  close() {
    this.closed = true;
  }
  emit(name, data) {
    (this.listeners[name] || []).forEach((fn) => fn({ data: JSON.stringify(data) }));
  }
}

const document = {
  readyState: "complete",
  querySelectorAll(selector) {
    let found;
    if (selector === ".canvas[data-save]") {
      // No canvas on this page (the canvas is proven in Chromium: tests/browser).
      found = [];
    } else if (/^form\[data-cancel="\d+"\]$/.test(selector)) {
      found = selector === 'form[data-cancel="2"]' ? [cancelForm] : [];
    } else if (/^\[data-duration-of="\d+"\]$/.test(selector)) {
      found = [runningFor].filter((d) => selector === '[data-duration-of="' + d.attrs["data-duration-of"] + '"]');
    } else if (selector === "pre.log[data-follow]") {
      // No followed log on this page (see dashboard_logs_script.js).
      found = [];
    } else if (selector === ".status[data-follow]") {
      found = cells.filter((c) => c.getAttribute("data-follow"));
    } else {
      const m = /^\.status\[data-status=([A-Z_]+)\]$/.exec(selector);
      assert.ok(m, "unexpected selector " + selector);
      found = cells.filter((c) => c.getAttribute("data-status") === m[1]);
    }
    return found;
  },
  addEventListener() {
    assert.fail("the document is loaded already");
  },
};

const context = vm.createContext({ document, EventSource: FakeEventSource, JSON, Date, Math, Number, isFinite });
vm.runInContext(fs.readFileSync(process.argv[2], "utf8"), context);

assert.strictEqual(sources.length, 1, "one stream, for the unsettled deployment only");
const source = sources[0];
assert.strictEqual(source.url, "/ui/x/deployments/2/events");

source.emit("status", { number: 2, status: "DEPLOYING" });
assert.strictEqual(pending.textContent, "DEPLOYING");
assert.strictEqual(pending.className, "status status-deploying");

source.emit("log", { type: "log", message: "<b>not markup</b>" });
assert.strictEqual(pending.textContent, "DEPLOYING", "log lines leave the status alone");

source.emit("transition", { type: "transition", from: "DEPLOYING", to: "HEALTH_CHECKING" });
assert.strictEqual(pending.textContent, "HEALTH_CHECKING");
assert.strictEqual(pending.getAttribute("data-status"), "HEALTH_CHECKING");
assert.strictEqual(source.closed, false);
assert.strictEqual(cancelForm.hidden, false, "in progress, it can still be cancelled");
assert.strictEqual(runningFor.textContent, "4s so far", "in progress, it is still running");

source.emit("transition", { type: "transition", at: 1000000 + 187000, from: "HEALTH_CHECKING", to: "ACTIVE" });
assert.strictEqual(pending.textContent, "ACTIVE");
assert.strictEqual(pending.className, "status status-active");
assert.strictEqual(active.textContent, "SUPERSEDED", "the previous ACTIVE is superseded");
assert.strictEqual(active.className, "status status-superseded");
assert.strictEqual(source.closed, true, "a settled deployment's stream is closed");
assert.strictEqual(cancelForm.hidden, true, "a settled deployment's Cancel button goes");
assert.strictEqual(runningFor.textContent, "3m 07s", "a settled deployment's duration is how long it took");
assert.strictEqual(runningFor.getAttribute("data-duration-of"), null, "and is not running any more");

console.log("dashboard script: ok");
