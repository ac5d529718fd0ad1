// The Clank dashboard's only script: live status of deployments in progress. Each status
// cell of a deployment that has not settled names its event stream (`data-follow`); the
// daemon's Server-Sent Events update the cell in place, and once it settles its "… so far"
// duration (`data-duration-of`, started at `data-created`) becomes how long it took. Pages
// work without it.
"use strict";

(function () {
  var SETTLED = ["ACTIVE", "SUPERSEDED", "FAILED", "CANCELLED"];

  // `12s`, `3m 07s`, `1h 02m`: as the pages print a duration.
  function duration(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    var two = function (n) {
      return (n < 10 ? "0" : "") + n;
    };
    if (s < 60) {
      return s + "s";
    }
    if (s < 3600) {
      return Math.floor(s / 60) + "m " + two(s % 60) + "s";
    }
    return Math.floor(s / 3600) + "h " + two(Math.floor((s % 3600) / 60)) + "m";
  }

  // Deployment `number` settled at `at` (milliseconds since the epoch): its running
  // durations say how long it took.
  function settleDuration(number, at) {
    document.querySelectorAll('[data-duration-of="' + number + '"]').forEach(function (el) {
      var created = Number(el.getAttribute("data-created"));
      if (!isFinite(created)) {
        return;
      }
      el.textContent = duration(at - created);
      el.removeAttribute("data-duration-of");
    });
  }

  function show(cell, status) {
    cell.textContent = status;
    cell.className = "status status-" + status.toLowerCase();
    cell.setAttribute("data-status", status);
    if (SETTLED.indexOf(status) >= 0) {
      // A settled deployment can no longer be cancelled: its Cancel buttons go.
      var number = cell.getAttribute("data-deployment");
      document.querySelectorAll('form[data-cancel="' + number + '"]').forEach(function (form) {
        form.hidden = true;
      });
    }
  }

  function follow(cell) {
    var url = cell.getAttribute("data-follow");
    if (!url || typeof EventSource === "undefined") {
      return;
    }
    var source = new EventSource(url);
    var update = function (status, at) {
      if (!status) {
        return;
      }
      if (status === "ACTIVE") {
        // The previous ACTIVE deployment of the service is superseded by this one.
        document.querySelectorAll(".status[data-status=ACTIVE]").forEach(function (other) {
          if (other !== cell) {
            show(other, "SUPERSEDED");
          }
        });
      }
      show(cell, status);
      if (SETTLED.indexOf(status) >= 0) {
        settleDuration(cell.getAttribute("data-deployment"), typeof at === "number" ? at : Date.now());
        source.close();
      }
    };
    source.addEventListener("status", function (e) {
      // The deployment as it is: when it settled is in its history.
      var d = JSON.parse(e.data);
      var at;
      (d.history || []).forEach(function (h) {
        if (at === undefined && SETTLED.indexOf(h.to) >= 0) {
          at = h.at;
        }
      });
      update(d.status, at);
    });
    source.addEventListener("transition", function (e) {
      var t = JSON.parse(e.data);
      update(t.to, t.at);
    });
    source.addEventListener("error", function () {
      // The stream ends once the deployment settles; a dropped one is retried by the browser
      // unless the deployment is settled already.
      if (SETTLED.indexOf(cell.getAttribute("data-status")) >= 0) {
        source.close();
      }
    });
  }

  function start() {
    document.querySelectorAll(".status[data-follow]").forEach(follow);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();

// The project canvas: cards placed at their saved positions (data-x, data-y), the known
// connections (the list after the canvas) drawn as lines between card centres, cards moved by
// dragging or, when focused, by the arrow keys (Shift: further), and what moved saved for this
// user with a same-origin POST carrying the page's CSRF token. Without the script the cards
// stay a list and the connections a list of sentences.
(function () {
  var STEP = 10;
  var BIG_STEP = 50;
  var MARGIN = 40;
  var SVG = "http://www.w3.org/2000/svg";

  function place(card, x, y) {
    x = Math.max(0, Math.round(x));
    y = Math.max(0, Math.round(y));
    card.setAttribute("data-x", String(x));
    card.setAttribute("data-y", String(y));
    card.style.left = x + "px";
    card.style.top = y + "px";
  }

  function pos(card) {
    return {
      x: parseInt(card.getAttribute("data-x"), 10) || 0,
      y: parseInt(card.getAttribute("data-y"), 10) || 0,
    };
  }

  function setup(canvas) {
    var list = canvas.querySelector(".cards");
    var cards = Array.prototype.slice.call(list.querySelectorAll(":scope > .card"));
    var edgeList = canvas.nextElementSibling;
    while (edgeList && !(edgeList.matches && edgeList.matches("ul.edges"))) {
      edgeList = edgeList.nextElementSibling;
    }
    var edges = edgeList ? Array.prototype.slice.call(edgeList.querySelectorAll("li[data-from]")) : [];
    var status = document.querySelector(".canvas-status");
    var byId = {};
    cards.forEach(function (c) {
      byId[c.getAttribute("data-card")] = c;
    });
    canvas.classList.add("canvas-live");
    document.body.classList.add("has-canvas");
    var svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "edges");
    svg.setAttribute("aria-hidden", "true");
    canvas.insertBefore(svg, list);
    var lines = edges.map(function (e) {
      var line = document.createElementNS(SVG, "line");
      svg.appendChild(line);
      return { line: line, from: byId[e.getAttribute("data-from")], to: byId[e.getAttribute("data-to")] };
    });

    function redraw() {
      var w = 0;
      var h = 0;
      cards.forEach(function (c) {
        var p = pos(c);
        w = Math.max(w, p.x + c.offsetWidth + MARGIN);
        h = Math.max(h, p.y + c.offsetHeight + MARGIN);
      });
      list.style.width = w + "px";
      list.style.height = h + "px";
      svg.setAttribute("width", String(w));
      svg.setAttribute("height", String(h));
      lines.forEach(function (l) {
        if (!l.from || !l.to) {
          return;
        }
        var a = pos(l.from);
        var b = pos(l.to);
        l.line.setAttribute("x1", String(a.x + l.from.offsetWidth / 2));
        l.line.setAttribute("y1", String(a.y + l.from.offsetHeight / 2));
        l.line.setAttribute("x2", String(b.x + l.to.offsetWidth / 2));
        l.line.setAttribute("y2", String(b.y + l.to.offsetHeight / 2));
      });
    }

    var pending = {};
    var timer = null;
    function save(card) {
      var p = pos(card);
      pending[card.getAttribute("data-card")] = p.x + "," + p.y;
      if (timer) {
        clearTimeout(timer);
      }
      timer = setTimeout(flush, 300);
    }
    function flush() {
      timer = null;
      var entries = Object.keys(pending).map(function (id) {
        return id + ":" + pending[id];
      });
      pending = {};
      if (entries.length === 0) {
        return;
      }
      var body = new URLSearchParams();
      body.set("csrf", canvas.getAttribute("data-csrf"));
      body.set("positions", entries.join(";"));
      fetch(canvas.getAttribute("data-save"), {
        method: "POST",
        credentials: "same-origin",
        body: body,
      }).then(function (r) {
        if (status) {
          status.textContent = r.ok ? "Layout saved." : "Could not save the layout (" + r.status + ").";
        }
      }, function () {
        if (status) {
          status.textContent = "Could not save the layout: the daemon is unreachable.";
        }
      });
    }

    cards.forEach(function (card) {
      var p = pos(card);
      place(card, p.x, p.y);
      var drag = null;
      card.addEventListener("pointerdown", function (e) {
        if (e.button !== 0 || e.target.closest("a, button, input")) {
          return;
        }
        var at = pos(card);
        drag = { x: e.clientX - at.x, y: e.clientY - at.y, moved: false };
        card.setPointerCapture(e.pointerId);
        card.classList.add("dragging");
        e.preventDefault();
      });
      card.addEventListener("pointermove", function (e) {
        if (!drag) {
          return;
        }
        drag.moved = true;
        place(card, e.clientX - drag.x, e.clientY - drag.y);
        redraw();
      });
      var end = function () {
        if (!drag) {
          return;
        }
        var moved = drag.moved;
        drag = null;
        card.classList.remove("dragging");
        if (moved) {
          save(card);
        }
      };
      card.addEventListener("pointerup", end);
      card.addEventListener("pointercancel", end);
      card.addEventListener("keydown", function (e) {
        if (e.target !== card) {
          return;
        }
        var step = e.shiftKey ? BIG_STEP : STEP;
        var d = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] }[e.key];
        if (!d) {
          return;
        }
        e.preventDefault();
        var at = pos(card);
        place(card, at.x + d[0], at.y + d[1]);
        redraw();
        save(card);
      });
    });
    redraw();
    window.addEventListener("resize", redraw);
  }

  function start() {
    document.querySelectorAll(".canvas[data-save]").forEach(setup);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();

// Live logs: each `pre.log[data-follow]` follows its stream. `data-kind="service"` is the
// running service's output (`line` events; the stream starts with the same tail the page
// shows, and replaces it); `data-kind="deploy"` is a deployment's deploy log (`log` events:
// the log so far, a `history` event, then the deployment's events until it settles). Lines
// are added as text, never as markup (they are the service's output: an attacker's, for all
// we know), at most `data-keep` of them. A stream stops while the tab is hidden (and follows
// again once it is shown), when the daemon ends it (`end`), and when the deployment settles.
(function () {
  var SETTLED = ["ACTIVE", "SUPERSEDED", "FAILED", "CANCELLED"];

  function stamp(at) {
    return new Date(at).toISOString();
  }

  function setup(box) {
    var url = box.getAttribute("data-follow");
    var keep = parseInt(box.getAttribute("data-keep"), 10) || 1000;
    var note = document.getElementById(box.getAttribute("aria-describedby"));
    var source = null;
    // A new stream sends its start again: its first line replaces what is shown.
    var fresh = false;
    // Deploy log: live lines published before this (ms) are in the history sent already.
    var since = null;
    var done = false;

    function say(text) {
      if (note) {
        note.textContent = text;
      }
    }

    function clearIfFresh() {
      if (!fresh) {
        return;
      }
      fresh = false;
      while (box.firstChild) {
        box.removeChild(box.firstChild);
      }
    }

    function add(text, className, from) {
      clearIfFresh();
      var atEnd = box.scrollHeight - box.scrollTop - box.clientHeight < 8;
      var line = document.createElement("span");
      line.className = className;
      if (from) {
        var src = document.createElement("span");
        src.className = "src";
        src.textContent = from;
        line.appendChild(src);
      }
      line.appendChild(document.createTextNode(text + "\n"));
      box.appendChild(line);
      while (box.childNodes.length > keep) {
        box.removeChild(box.firstChild);
      }
      if (atEnd) {
        box.scrollTop = box.scrollHeight;
      }
    }

    function close() {
      if (source) {
        source.close();
        source = null;
      }
    }

    function stop(reason) {
      done = true;
      close();
      say(reason);
    }

    function settledAs(status) {
      if (SETTLED.indexOf(status) >= 0) {
        stop("The deployment is " + status + ": its log is complete.");
      }
    }

    function open() {
      if (done || source || typeof EventSource === "undefined") {
        return;
      }
      var s = new EventSource(url);
      source = s;
      fresh = true;
      since = null;
      s.addEventListener("open", function () {
        say("Following live.");
      });
      s.addEventListener("line", function (e) {
        var l = JSON.parse(e.data);
        add(String(l.line), l.stream === "stderr" ? "line stderr" : "line", l.process + "." + l.replica + " ");
      });
      s.addEventListener("log", function (e) {
        var l = JSON.parse(e.data);
        if (since === null || l.at >= since) {
          add(stamp(l.at) + "  " + l.message, "line");
        }
      });
      s.addEventListener("history", function (e) {
        clearIfFresh();
        since = JSON.parse(e.data).since;
      });
      s.addEventListener("transition", function (e) {
        var t = JSON.parse(e.data);
        if (since === null || t.at >= since) {
          add(stamp(t.at) + "  " + t.from + " \u2192 " + t.to + (t.reason ? ": " + t.reason : ""), "line");
        }
        settledAs(t.to);
      });
      s.addEventListener("status", function (e) {
        settledAs(JSON.parse(e.data).status);
      });
      s.addEventListener("end", function (e) {
        stop("The daemon " + JSON.parse(e.data).reason + "; reload the page to follow again.");
      });
      s.addEventListener("error", function (e) {
        if (s !== source) {
          return;
        }
        if (typeof e.data === "string") {
          // The daemon could not read a line: said, and the stream goes on.
          say(e.data);
        } else if (s.readyState === 2) {
          stop("Not following: the stream was refused or closed; reload the page to try again.");
        } else {
          say("Reconnecting\u2026");
        }
      });
    }

    document.addEventListener("visibilitychange", function () {
      if (document.hidden) {
        if (source) {
          close();
          say("Paused while this tab is hidden.");
        }
      } else {
        open();
      }
    });
    window.addEventListener("pagehide", close);
    window.addEventListener("pageshow", function (e) {
      if (e.persisted) {
        open();
      }
    });
    open();
  }

  function start() {
    document.querySelectorAll("pre.log[data-follow]").forEach(setup);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
