// Runs the dashboard's script (argv[2]) against a stand-in DOM and EventSource, and checks its
// live logs: a service's followed output replaces the page's tail, lines go in as text only
// (never markup), at most `data-keep` stay, the stream pauses while the tab is hidden and
// stops for good at the daemon's `end`; a deploy log drops the live copy of a line its history
// already had and stops once the deployment settles. Exits non-zero on the first difference.
// Run by `tests/ui.rs`.
"use strict";

const fs = require("fs");
const vm = require("vm");
const assert = require("assert");

class Node {
  constructor(tag) {
    this.tag = tag;
    this.childNodes = [];
    this.className = "";
    this.attrs = {};
    this.text = "";
    this.scrollTop = 0;
    this.clientHeight = 100;
  }
  get firstChild() {
    return this.childNodes[0] || null;
  }
  get scrollHeight() {
    return this.childNodes.length * 10;
  }
  appendChild(c) {
    this.childNodes.push(c);
    return c;
  }
  removeChild(c) {
    const i = this.childNodes.indexOf(c);
    assert.ok(i >= 0, "removing a node that is not a child");
    this.childNodes.splice(i, 1);
    return c;
  }
  getAttribute(name) {
    return Object.prototype.hasOwnProperty.call(this.attrs, name) ? this.attrs[name] : null;
  }
  set textContent(v) {
    this.childNodes = [];
    this.text = String(v);
  }
  get textContent() {
    return this.text + this.childNodes.map((c) => c.textContent).join("");
  }
  set innerHTML(_v) {
    assert.fail("the script must never write markup");
  }
  insertAdjacentHTML() {
    assert.fail("the script must never write markup");
  }
}

function box(id, kind, follow, keep) {
  const b = new Node("pre");
  b.attrs = { id, "data-follow": follow, "data-kind": kind, "data-keep": String(keep), "aria-describedby": id + "-status" };
  return b;
}

const serviceLog = box("service-log", "service", "/ui/s/logs", 3);
const fromPage = new Node("span");
fromPage.textContent = "rendered by the server\n";
serviceLog.appendChild(fromPage);
const deployLog = box("deploy-log", "deploy", "/ui/s/deployments/2/log", 100);
const notes = { "service-log-status": new Node("p"), "deploy-log-status": new Node("p") };

const sources = [];
class FakeEventSource {
  constructor(url) {
    this.url = url;
    this.listeners = {};
    this.readyState = 0;
    this.closed = false;
    sources.push(this);
  }
  addEventListener(name, fn) {
    (this.listeners[name] = this.listeners[name] || []).push(fn);
  }
  close() {
    this.closed = true;
    this.readyState = 2;
  }
  emit(name, data) {
    this.emitRaw(name, data === undefined ? undefined : JSON.stringify(data));
  }
  emitRaw(name, text) {
    const event = text === undefined ? {} : { data: text };
    (this.listeners[name] || []).forEach((fn) => fn(event));
  }
}

const docListeners = {};
const document = {
  readyState: "complete",
  hidden: false,
  querySelectorAll(selector) {
    if (selector === "pre.log[data-follow]") {
      return [serviceLog, deployLog];
    }
    return [];
  },
  getElementById(id) {
    return notes[id] || null;
  },
  createElement(tag) {
    return new Node(tag);
  },
  createTextNode(text) {
    const t = new Node("#text");
    t.text = String(text);
    return t;
  },
  addEventListener(name, fn) {
    (docListeners[name] = docListeners[name] || []).push(fn);
  },
};
const window = { addEventListener() {} };

const context = vm.createContext({ document, window, EventSource: FakeEventSource, JSON, Date, String, parseInt });
vm.runInContext(fs.readFileSync(process.argv[2], "utf8"), context);

function visibility(hidden) {
  document.hidden = hidden;
  (docListeners.visibilitychange || []).forEach((fn) => fn());
}

// The service's output.
const logs = sources.find((s) => s.url === "/ui/s/logs");
assert.ok(logs, "the service log is followed");
logs.emit("open");
assert.strictEqual(notes["service-log-status"].textContent, "Following live.");
assert.strictEqual(serviceLog.childNodes.length, 1, "the page's lines stay until the stream's come");
const XSS = "<img src=x onerror=alert(1)><script>alert(2)</script>";
logs.emit("line", { process: "web", replica: 0, stream: "stdout", line: XSS, at: 1 });
assert.strictEqual(serviceLog.childNodes.length, 1, "the stream's tail replaced the page's");
assert.strictEqual(serviceLog.textContent, "web.0 " + XSS + "\n", "the line, as text");
logs.emit("line", { process: "web", replica: 1, stream: "stderr", line: "oops", at: 2 });
assert.strictEqual(serviceLog.childNodes[1].className, "line stderr");
for (let i = 0; i < 5; i++) {
  logs.emit("line", { process: "web", replica: 0, stream: "stdout", line: "tick " + i, at: 3 + i });
}
assert.strictEqual(serviceLog.childNodes.length, 3, "at most data-keep lines");
assert.ok(serviceLog.textContent.endsWith("web.0 tick 4\n"), serviceLog.textContent);
logs.emitRaw("error", "the runtime lost a line");
assert.strictEqual(notes["service-log-status"].textContent, "the runtime lost a line");
assert.strictEqual(logs.closed, false, "a line the daemon could not read does not end the stream");

// A hidden tab lets go of its streams; shown again, it follows from a fresh tail.
visibility(true);
assert.strictEqual(logs.closed, true, "closed while hidden");
visibility(false);
const again = sources.filter((s) => s.url === "/ui/s/logs").pop();
assert.notStrictEqual(again, logs);
assert.strictEqual(again.url, "/ui/s/logs");
again.emit("line", { process: "web", replica: 0, stream: "stdout", line: "fresh", at: 9 });
assert.strictEqual(serviceLog.textContent, "web.0 fresh\n", "the new stream's tail replaces the old lines");

// The daemon's `end`: stopped for good, and said why.
again.emit("end", { reason: "stopped following after 30 minutes" });
assert.strictEqual(again.closed, true);
assert.ok(notes["service-log-status"].textContent.includes("30 minutes"));
const count = sources.length;
visibility(true);
visibility(false);
assert.ok(sources.slice(count).every((s) => s.url !== "/ui/s/logs"), "no new stream after `end`");

// The deploy log: history, then live events, without the live copy of a line it had.
const deploys = sources.filter((s) => s.url === "/ui/s/deployments/2/log");
assert.ok(deploys.slice(0, -1).every((s) => s.closed), "one deploy log stream at a time");
const deploy = deploys.pop();
assert.ok(deploy, "the deploy log is followed");
deploy.emit("log", { at: 1000, message: "pulling <b>image</b>" });
deploy.emit("history", { since: 2000 });
deploy.emit("status", { number: 2, status: "DEPLOYING" });
deploy.emit("log", { type: "log", at: 1999, message: "pulling <b>image</b>" });
deploy.emit("log", { type: "log", at: 2001, message: "started" });
deploy.emit("transition", { type: "transition", at: 2002, from: "DEPLOYING", to: "HEALTH_CHECKING", reason: null });
assert.strictEqual(
  deployLog.textContent,
  "1970-01-01T00:00:01.000Z  pulling <b>image</b>\n" +
    "1970-01-01T00:00:02.001Z  started\n" +
    "1970-01-01T00:00:02.002Z  DEPLOYING \u2192 HEALTH_CHECKING\n"
);
assert.strictEqual(deploy.closed, false);
deploy.emit("transition", { type: "transition", at: 2003, from: "HEALTH_CHECKING", to: "ACTIVE", reason: null });
assert.strictEqual(deploy.closed, true, "a settled deployment's log stream is closed");
assert.ok(notes["deploy-log-status"].textContent.includes("ACTIVE"));

console.log("dashboard logs script: ok");
