// livedag DAG widget: an SVG view of the kernel's task graph (anywidget ES module).
//
//   kernel ── model "snapshot" (whole view, on (re)load) ──> store ──> SVG + legend + panel
//          ── model "diff" (changes, every ~150 ms) ───────┘
//   clicks ── model.send({type: "resubmit" | "cancel" | "resubmit_failed" | "drill" | "pin"})
//                                                                  ──> kernel queue
//
// Layout comes from Python (layer, row) and never moves, so an update only touches the
// nodes that changed. The detail panel reads the store: a click needs no kernel round trip.
// Two tabs share the store and the selection: the DAG, and the timeline (a lane per worker
// process, a bar per try of a task, from the diff's "timeline" part).

const STATES = ["pending", "launched", "running", "done", "failed", "dep_fail", "cached",
  "cancelled", "superseded"];
const DX = 150; // px between layers
const DY = 26; // px between rows
const NW = 118; // node width
const NH = 19; // node height
const AW = 200; // aggregated box width
const AH = 46;
const SVGNS = "http://www.w3.org/2000/svg";
const QUEUED_AFTER_MS = 1200;

/** @type {Map<string, Store>} one store per widget model, shared by its views */
const stores = new Map();

// User Timing entries (DevTools' Performance panel, bench/widget_browser.py): when a diff
// arrived and how long each redraw took. Cleared now and then so a long session keeps few.
let timings = 0;
function timing(name, start, detail) {
  try {
    if (start === null) performance.mark(name, { detail });
    else performance.measure(name, { start, detail });
    if (++timings % 1000 === 0) {
      performance.clearMarks("livedag:diff");
      performance.clearMeasures("livedag:redraw");
    }
  } catch (_) { /* timing is optional */ }
}

/**
 * @typedef {{id: number, app: string, state: string, group: string, layer: number,
 *   row: number, deps: number[], folded_into?: number, blocked?: number, [k: string]: any}} Node
 * @typedef {{key: string, app: string, label: string, shown: number, total: number}} Focus
 *   the aggregated box drilled into: its newest `shown` tasks are sent one by one
 * @typedef {{key: string, task: number, try: number, app: string, lane: string, slot: number,
 *   start: number, end: number | null, state: string}} Bar  one try of a task, as it ran
 * @typedef {{key: string, host: string, pid: number | null, block: string | null,
 *   order: number, runs: number, slots: number}} Lane  one worker process
 * @typedef {{lanes: Map<string, Lane>, bars: Map<string, Bar>, offset: number,
 *   perLane: number}} Timeline  offset: the kernel's clock minus the page's
 * @typedef {{rev: number, mode: string, nodes: Map<number, Node>, groups: Map<string, any>,
 *   agg: Map<string, any>, legend: Record<string, number>, cascades: any[],
 *   focus: Focus | null, timeline: Timeline, views: Set<View>, acks: any[], stale: boolean,
 *   ui: any}} Store
 * @typedef {{onChange: (ids: number[] | null) => void, onAcks: (acks: any[]) => void}} View
 */

/** @returns {Store} */
function newStore() {
  return { rev: -1, mode: "nodes", nodes: new Map(), groups: new Map(), agg: new Map(),
    legend: {}, cascades: [], focus: null, timeline: newTimeline(), views: new Set(), acks: [],
    stale: false,
    // What the user did, kept here so that a view drawn again (the output is refreshed at
    // the end of a run, or shown twice) keeps the selection, zoom, tab and status line.
    ui: { selected: null, view: null, userMoved: false, status: ["", ""], showBlocked: false,
      tab: "dag" } };
}

/** @returns {Timeline} */
function newTimeline() {
  return { lanes: new Map(), bars: new Map(), offset: 0, perLane: 0 };
}

/** The timeline part of a snapshot (replaces) or of a diff (applies on top). */
function applyTimeline(store, t) {
  if (!t) return;
  if (t.reset) store.timeline = newTimeline();
  const tl = store.timeline;
  if (typeof t.now === "number") tl.offset = t.now - Date.now() / 1000;
  if (typeof t.bars_per_lane === "number") tl.perLane = t.bars_per_lane;  // 0: no limit
  for (const l of t.lanes || []) tl.lanes.set(l.key, l);
  for (const k of t.gone || []) tl.bars.delete(k);
  for (const b of t.bars || []) tl.bars.set(b.key, b);
}

/** Replace everything with a snapshot (only if it is newer than what we have). */
function loadSnapshot(store, snap) {
  if (!snap || typeof snap.rev !== "number" || snap.rev < store.rev) return false;
  store.rev = snap.rev;
  store.mode = snap.mode || "nodes";
  store.nodes = new Map((snap.nodes || []).map((n) => [n.id, n]));
  store.groups = new Map((snap.groups || []).map((g) => [g.key, g]));
  store.agg = new Map((snap.agg || []).map((g) => [g.key, g]));
  store.legend = snap.legend || {};
  store.cascades = snap.cascades || [];
  store.focus = snap.focus || null;
  applyTimeline(store, snap.timeline);
  store.stale = false;
  return true;
}

/** The aggregated box a node belongs to (Graph's key: cell-run group, NUL, app). */
function boxKey(n) {
  return `${n.group}\u0000${n.app}`;
}

/** A new focus: forget the tasks of the old one (failures stay: they are always sent). */
function setFocus(store, focus) {
  store.focus = focus || null;
  for (const [id, n] of store.nodes) {
    if (n.state !== "failed" && (!store.focus || boxKey(n) !== store.focus.key)) {
      store.nodes.delete(id);
    }
  }
}

/** Apply one diff; returns the changed node ids, null for "redraw everything", or false
 * when the diff does not follow what we have (the kernel is asked for a snapshot). */
function applyDiff(store, d) {
  if (!d || typeof d.rev !== "number" || d.rev <= store.rev) return [];
  if (d.reset) {
    loadSnapshot(store, d);
    return null;
  }
  if (d.rev !== store.rev + 1) {
    store.stale = true;
    return false;
  }
  store.rev = d.rev;
  const modeChanged = d.mode !== store.mode;
  store.mode = d.mode;
  store.legend = d.legend || store.legend;
  for (const g of d.groups || []) store.groups.set(g.key, g);
  for (const g of d.agg || []) store.agg.set(g.key, g);
  if (d.cascades) store.cascades = d.cascades;
  applyTimeline(store, d.timeline);
  const focusChanged = "focus" in d;
  if (focusChanged) setFocus(store, d.focus);
  const ids = [];
  for (const n of d.nodes || []) {
    store.nodes.set(n.id, n);
    ids.push(n.id);
  }
  // Aggregated boxes are few: they are drawn again on every change anyway.
  return modeChanged || focusChanged ? null : ids;
}

function storeFor(model) {
  const uid = model.get("uid");
  let store = stores.get(uid);
  if (!store) {
    store = newStore();
    stores.set(uid, store);
    loadSnapshot(store, model.get("snapshot"));
    applyDiff(store, model.get("diff"));
    model.on("change:snapshot", () => {
      if (loadSnapshot(store, model.get("snapshot"))) {
        for (const v of store.views) v.onChange(null);
      }
    });
    model.on("change:diff", () => {
      const d = model.get("diff");
      if (d && d.legend) {
        timing("livedag:diff", null, { rev: d.rev,
          tasks: Object.values(d.legend).reduce((a, b) => a + b, 0) });
      }
      const ids = applyDiff(store, d);
      // Acks first: a diff that arrives after a gap is not applied, but the commands
      // it answers are done, and must not stay "queued: kernel busy".
      if (d && d.acks && d.acks.length) for (const v of store.views) v.onAcks(d.acks);
      if (ids === false) {
        model.send({ type: "resync" });
        return;
      }
      for (const v of store.views) v.onChange(ids);
    });
  }
  return store;
}

function el(tag, attrs = {}, text = "") {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text) e.textContent = text;
  return e;
}

function svg(tag, attrs = {}) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

function fmtTime(t) {
  if (!t) return "";
  return new Date(t * 1000).toLocaleTimeString();
}

function fmtDur(a, b) {
  if (!a || !b) return "";
  const s = b - a;
  return s < 1 ? `${Math.round(s * 1000)} ms` : `${s.toFixed(1)} s`;
}

/**
 * CPU seconds of a try ("—": not reported).
 * @param {number | null | undefined} s
 * @returns {string}
 */
function fmtCpu(s) {
  if (s === undefined || s === null) return "—";
  if (s < 0.01) return `${+(s * 1000).toFixed(1)} ms`;
  return s < 600 ? `${s.toFixed(2)} s` : `${(s / 60).toFixed(1)} min`;
}

/**
 * A try's peak resident memory ("—": not reported, or 0: the executor cannot tell).
 * @param {number | null | undefined} b  bytes
 * @returns {string}
 */
function fmtBytes(b) {
  if (!b) return "—";
  const mib = b / 2 ** 20;
  if (mib < 1) return `${Math.max(1, Math.round(b / 1024))} KiB`;
  return mib < 1024 ? `${Math.round(mib)} MiB` : `${(mib / 1024).toFixed(1)} GiB`;
}

const TL_GUTTER = 190; // px for the lane labels
const TL_BAR = 14; // bar height
const TL_AXIS = 22;

/** Round steps for the time axis, in seconds. */
const TL_STEPS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30,
  60, 120, 300, 600, 900, 1800, 3600, 7200];

function fmtSpan(s) {
  if (s < 1) return `${+(s * 1000).toFixed(1)} ms`;
  if (s < 120) return `${+s.toFixed(2)} s`;
  return `${+(s / 60).toFixed(1)} min`;
}

/**
 * @typedef {object} TimelineView  one view's timeline tab; what its functions share
 * @property {Store} store
 * @property {(id: number) => void} onSelect  a bar was clicked
 * @property {HTMLElement} el
 * @property {HTMLElement} caption
 * @property {SVGSVGElement} plot
 * @property {Map<number, SVGRectElement[]>} barsOf  each task's bars as last drawn
 * @property {number | string | null} selected  marked in the bars (a task id)
 */

/**
 * @typedef {object} TimeScale  the time axis across the plot
 * @property {number} t0  the first start (kernel's clock, s)
 * @property {number} span  s shown (at least 1 ms)
 * @property {number} k  px per s
 * @property {number} width  the plot's width, px
 * @property {(t: number) => number} x  where time t goes, px
 */

/**
 * The timeline tab: a lane per worker process (host:pid), a bar per try of a task from the
 * moment it ran to its end, coloured by how it ended; running bars grow with the clock.
 * @param {Store} store
 * @param {(id: number) => void} onSelect  a bar was clicked
 * @returns {TimelineView}
 */
function newTimelineView(store, onSelect) {
  const box = el("div", { class: "ld-timeline" });
  const caption = el("div", { class: "ld-tl-caption" });
  const plot = /** @type {SVGSVGElement} */ (svg("svg", { class: "ld-tl-plot" }));
  box.append(caption, plot);
  return { store, onSelect, el: box, caption, plot, barsOf: new Map(), selected: null };
}

/**
 * Lanes by host, then pid (none first), then the kernel's order.
 * @param {Lane} a
 * @param {Lane} b
 */
function laneOrder(a, b) {
  return a.host.localeCompare(b.host) || (a.pid ?? -1) - (b.pid ?? -1) || a.order - b.order;
}

/**
 * Draw the whole timeline again from the store, with the task sel's bars marked.
 * @param {TimelineView} tv
 * @param {number | string | null} sel
 */
function drawTimeline(tv, sel) {
  tv.selected = sel;
  const tl = tv.store.timeline;
  tv.plot.innerHTML = "";
  tv.barsOf = new Map();
  const bars = [...tl.bars.values()];
  if (!bars.length) {
    tv.caption.textContent = "No task has run yet: a bar appears when a task starts running.";
    tv.plot.setAttribute("height", "0");
    return;
  }
  const now = Date.now() / 1000 + tl.offset;
  const scale = timeScale(tv, bars, now);
  const { top, bottom, capped } = drawLanes(tv, bars, scale.width);
  drawAxis(tv, scale, bottom);
  let drawn = 0;  // a bar whose lane is not known (yet) is neither drawn nor counted
  for (const b of bars) {
    const ly = top.get(b.lane);
    if (ly === undefined) continue;
    drawBar(tv, b, ly, scale, now);
    drawn += 1;
  }
  tv.plot.setAttribute("width", String(scale.width));
  tv.plot.setAttribute("height", String(bottom + 4));
  tv.caption.textContent = timelineCaption(drawn, top.size, scale.span, capped, tl.perLane);
}

/**
 * The time axis for these bars: the first start to the last end (now, for a running bar)
 * across the plot's width.
 * @param {TimelineView} tv
 * @param {Bar[]} bars
 * @param {number} now  the kernel's clock, s
 * @returns {TimeScale}
 */
function timeScale(tv, bars, now) {
  let t0 = Infinity;
  let t1 = -Infinity;
  for (const b of bars) {
    t0 = Math.min(t0, b.start);
    t1 = Math.max(t1, b.end ?? now);
  }
  const width = Math.max(300, tv.el.clientWidth - 4);
  const plotW = width - TL_GUTTER - 14;
  const span = Math.max(t1 - t0, 1e-3);
  const k = plotW / span;
  return { t0, span, k, width, x: (t) => TL_GUTTER + (t - t0) * k };
}

/**
 * Each lane's use: how many of its bars are drawn, and how many rows (slots) they take.
 * @param {Bar[]} bars
 * @returns {Map<string, [number, number]>}
 */
function laneUse(bars) {
  const kept = new Map();
  for (const b of bars) {
    const [n, rows] = kept.get(b.lane) || [0, 1];
    kept.set(b.lane, [n + 1, Math.max(rows, b.slot + 1)]);
  }
  return kept;
}

/**
 * The lanes that have bars, top to bottom, each as tall as its busiest moment needed.
 * @param {TimelineView} tv
 * @param {Bar[]} bars
 * @param {number} width  px
 * @returns {{top: Map<string, number>, bottom: number, capped: number}}  each lane's top
 *   y, the y below the last lane, and how many lanes have runs not drawn
 */
function drawLanes(tv, bars, width) {
  const lanes = [...tv.store.timeline.lanes.values()].sort(laneOrder);
  const kept = laneUse(bars);
  const top = new Map();
  let y = TL_AXIS;
  let capped = 0;
  for (const l of lanes) {
    if (!kept.has(l.key)) continue;
    const [n, rows] = kept.get(l.key);
    top.set(l.key, y);
    if (l.runs > n) capped += 1;
    y += drawLane(tv, l, n, rows, y, width);
  }
  return { top, bottom: y, capped };
}

/**
 * One lane: its band, its name (host:pid), its block and how many runs it drew.
 * @param {TimelineView} tv
 * @param {Lane} l
 * @param {number} n  its bars drawn
 * @param {number} rows  the rows (slots) they take
 * @param {number} y  its top, px
 * @param {number} width  px
 * @returns {number}  its height, px
 */
function drawLane(tv, l, n, rows, y, width) {
  const h = Math.max(32, rows * (TL_BAR + 3) + 10);
  tv.plot.append(svg("rect", { class: "ld-tl-lane", x: 0, y, width, height: h }));
  const name = svg("text", { class: "ld-tl-name", x: 6, y: y + 13 });
  name.textContent = l.key;
  const more = svg("text", { class: "ld-tl-sub", x: 6, y: y + 25 });
  more.textContent = (l.block != null ? `block ${l.block} · ` : "")
    + (l.runs > n ? `newest ${n} of ${l.runs} runs` : `${l.runs} run${l.runs === 1 ? "" : "s"}`);
  tv.plot.append(name, more);
  return h;
}

/**
 * The time axis: round steps, about one per 90 px, each a tick down to bottom; the first
 * labelled with the clock time, the others with the time since.
 * @param {TimelineView} tv
 * @param {TimeScale} scale
 * @param {number} bottom  px
 */
function drawAxis(tv, { t0, span, k, x }, bottom) {
  const step = TL_STEPS.find((st) => st * k >= 90) || TL_STEPS[TL_STEPS.length - 1];
  for (let t = 0; t <= span + 1e-9; t += step) {
    const tx = x(t0 + t);
    tv.plot.append(svg("line", { class: "ld-tl-tick", x1: tx, x2: tx, y1: TL_AXIS - 4,
      y2: bottom }));
    const label = svg("text", { class: "ld-tl-time", x: tx + 3, y: TL_AXIS - 8 });
    label.textContent = t ? `+${fmtSpan(t)}` : new Date(t0 * 1000).toLocaleTimeString();
    tv.plot.append(label);
  }
}

/**
 * One try's bar, with a tooltip and, if it is wide enough, a label; a click selects its task.
 * @param {TimelineView} tv
 * @param {Bar} b
 * @param {number} ly  its lane's top, px
 * @param {TimeScale} scale
 * @param {number} now  the kernel's clock, s: where a running bar ends
 */
function drawBar(tv, b, ly, { k, x }, now) {
  const end = b.end ?? now;
  const y = ly + 5 + b.slot * (TL_BAR + 3);
  const mark = b.task === tv.selected ? " ld-selected" : "";
  const r = svg("rect", { class: `ld-tl-bar ld-${b.state}${mark}`, x: x(b.start), y,
    width: Math.max(2, (end - b.start) * k), height: TL_BAR, rx: 2,
    "data-task": b.task, "data-key": b.key, "data-state": b.state });
  const tip = svg("title");
  tip.textContent = `task ${b.task} '${b.app}', try ${b.try}: ${b.state}`
    + ` · ${fmtSpan(end - b.start)}${b.end == null ? " so far" : ""} · ${b.lane}`;
  r.append(tip);
  r.addEventListener("click", (e) => {
    e.stopPropagation();
    tv.onSelect(b.task);
  });
  tv.plot.append(r);
  const w = Number(r.getAttribute("width"));
  if (w > 40) { // room for a label: the task, then its app as far as it fits
    const t = svg("text", { class: `ld-tl-label ld-${b.state}`, x: x(b.start) + 4, y: y + 11 });
    t.textContent = `${b.task} ${b.app}`.slice(0, Math.floor((w - 6) / 6.5));
    tv.plot.append(t);
  }
  if (!tv.barsOf.has(b.task)) tv.barsOf.set(b.task, []);
  tv.barsOf.get(b.task).push(/** @type {SVGRectElement} */ (r));
}

/**
 * The caption: runs, worker processes and time drawn, and whether older runs were left out.
 * @param {number} runs  bars drawn
 * @param {number} procs  lanes drawn
 * @param {number} span  s
 * @param {number} capped  lanes with runs not drawn
 * @param {number} perLane  the kernel's limit of bars per lane (0: not known)
 */
function timelineCaption(runs, procs, span, capped, perLane) {
  const limit = perLane ? `, the newest ${perLane} per lane` : "";
  return `${runs} run${runs === 1 ? "" : "s"} in ${procs}`
    + ` worker process${procs === 1 ? "" : "es"} (host:pid), ${fmtSpan(span)}`
    + (capped ? ` · older runs not drawn${limit}` : "")
    + " · click a bar for its task";
}

/**
 * Mark the selected task's bars (no redraw).
 * @param {TimelineView} tv
 * @param {number | string | null} sel
 */
function highlightBars(tv, sel) {
  for (const r of tv.barsOf.get(/** @type {number} */ (tv.selected)) || []) {
    r.classList.remove("ld-selected");
  }
  tv.selected = sel;
  for (const r of tv.barsOf.get(/** @type {number} */ (sel)) || []) {
    r.classList.add("ld-selected");
  }
}

/** Whether a bar is still running (it grows: draw again soon). @param {TimelineView} tv */
function timelineRunning(tv) {
  return [...tv.store.timeline.bars.values()].some((b) => b.end == null);
}

// One rendered view. Its elements and the state its handlers share live in a context
// object (Ctx) that each function below takes first; what must outlive the view (the
// selection, zoom, tab, status line) is kept in store.ui, shared with the store's views.

/**
 * @typedef {ReturnType<typeof buildToolbar>} Toolbar
 * @typedef {ReturnType<typeof buildCanvas>} Canvas
 */

/**
 * @typedef {object} ViewState
 * @property {any} model
 * @property {Store} store
 * @property {any} ui  store.ui: what a view drawn again keeps
 * @property {HTMLElement} cascades
 * @property {HTMLElement} panel  the detail panel
 * @property {TimelineView} timeline
 * @property {Map<number, SVGGElement>} nodeEls
 * @property {Map<number, SVGPathElement[]>} edgeEls  edges into a node
 * @property {number | string | null} selected  a task id, or an aggregated box's key
 * @property {{x: number, y: number, k: number}} view  pan and zoom (the object in ui.view)
 * @property {boolean} userMoved  the user panned or zoomed: stop fitting
 * @property {Set<number> | null} pending  ids to draw at the next frame (null: all)
 * @property {number} frame  the requested animation frame, 0: none
 * @property {Map<string, {text: string, timer: any}>} inflight  commands not yet answered
 * @property {Map<number, [number, number]> | null} place  where a drilled-into box's tasks go
 * @property {string | null} shownFocus  the key of the box drawn drilled into
 * @property {boolean} dagStale  changes arrived while the timeline was shown
 * @property {any} liveTimer
 * @property {Map<number, number>} pinAsked  tasks whose details were asked for (aggregated view)
 */

/** @typedef {Toolbar & Canvas & ViewState} Ctx  one rendered view */

/** The toolbar: title, tabs, Overview and breadcrumb, legend, buttons, status line. */
function buildToolbar() {
  const bar = el("div", { class: "ld-bar" });
  const title = el("span", { class: "ld-title" }, "livedag");
  const legend = el("span", { class: "ld-legend" });
  const status = el("span", { class: "ld-status", "data-testid": "status" });
  const btnFailed = el("button", { class: "ld-btn ld-resubmit-failed" }, "Resubmit all failed");
  const btnFit = el("button", { class: "ld-btn ld-fit" }, "Fit");
  const btnOverview = el("button", { class: "ld-btn ld-overview" }, "\u25c2 Overview");
  const tabs = el("span", { class: "ld-tabs" });
  const tabDag = el("button", { class: "ld-tab ld-tab-dag", "data-tab": "dag" }, "DAG");
  const tabTimeline = el("button", { class: "ld-tab ld-tab-timeline", "data-tab": "timeline" },
    "Timeline");
  tabs.append(tabDag, tabTimeline);
  const crumb = el("span", { class: "ld-crumb" });
  const blockedLabel = el("label", { class: "ld-toggle" });
  const blockedBox = /** @type {HTMLInputElement} */ (
    el("input", { type: "checkbox", class: "ld-show-blocked" }));
  blockedLabel.append(blockedBox, document.createTextNode(" show blocked"));
  bar.append(title, tabs, btnOverview, crumb, legend, btnFailed, btnFit, blockedLabel, status);
  return { bar, legend, status, btnFailed: /** @type {HTMLButtonElement} */ (btnFailed), btnFit,
    btnOverview, tabDag, tabTimeline, crumb, blockedLabel, blockedBox };
}

/**
 * The SVG canvas: a world group (panned and zoomed) of group boxes, edges and nodes.
 * @param {number} height  px
 */
function buildCanvas(height) {
  const canvas = /** @type {SVGSVGElement} */ (svg("svg", { class: "ld-canvas" }));
  canvas.style.height = `${height}px`;
  const world = /** @type {SVGGElement} */ (svg("g", { class: "ld-world" }));
  const groupLayer = svg("g", { class: "ld-groups" });
  const edgeLayer = svg("g", { class: "ld-edges" });
  const nodeLayer = svg("g", { class: "ld-nodes" });
  world.append(groupLayer, edgeLayer, nodeLayer);
  canvas.append(world);
  return { canvas, world, groupLayer, edgeLayer, nodeLayer };
}

/**
 * A new view in root: its elements, and its state as the store's ui left it.
 * @param {any} model
 * @param {HTMLElement} root
 * @returns {Ctx}
 */
function newView(model, root) {
  const store = storeFor(model);
  root.classList.add("livedag-dag");
  root.innerHTML = "";
  const ui = store.ui;
  const view = ui.view || { x: 10, y: 10, k: 1 };
  ui.view = view;
  /** @type {Ctx} */
  const ctx = { ...buildToolbar(), ...buildCanvas(model.get("height")), model, store, ui,
    cascades: el("div", { class: "ld-cascades" }), panel: el("div", { class: "ld-panel" }),
    timeline: /** @type {any} */ (null), nodeEls: new Map(), edgeEls: new Map(),
    selected: ui.selected, view, userMoved: ui.userMoved, pending: new Set(), frame: 0,
    inflight: ui.inflight || (ui.inflight = new Map()), place: null,
    shownFocus: store.mode === "aggregate" && store.focus ? store.focus.key : null,
    dagStale: false, liveTimer: 0, pinAsked: new Map() };
  ctx.panel.append(el("div", { class: "ld-hint" }, "Click a task to see its details."));
  ctx.timeline = newTimelineView(store, (id) => select(ctx, id));
  ctx.timeline.el.style.height = `${model.get("height")}px`;
  const main = el("div", { class: "ld-main" });
  main.append(ctx.canvas, ctx.timeline.el, ctx.panel);
  root.append(ctx.bar, ctx.cascades, main);
  ctx.blockedBox.checked = ui.showBlocked;
  return ctx;
}

/**
 * Whether a node is shown: one folded into the task that blocks it only with "show blocked".
 * @param {Ctx} ctx
 * @param {Node | undefined} n
 */
function visible(ctx, n) {
  return n && (n.folded_into === undefined || ctx.blockedBox.checked);
}

/** Pan and zoom the world group as ctx.view says. @param {Ctx} ctx */
function applyView(ctx) {
  const { view } = ctx;
  ctx.world.setAttribute("transform", `translate(${view.x},${view.y}) scale(${view.k})`);
}

/** Pan and zoom so that the whole graph fits the canvas (at most 125 %). @param {Ctx} ctx */
function fit(ctx) {
  const box = ctx.world.getBBox();
  const w = ctx.canvas.clientWidth || 800;
  const h = ctx.canvas.clientHeight || 400;
  if (!box.width || !box.height) return;
  const k = Math.min(1.25, Math.max(0.02, Math.min((w - 20) / box.width, (h - 20) / box.height)));
  Object.assign(ctx.view, { k, x: 10 - box.x * k, y: 10 - box.y * k });
  applyView(ctx);
}

/**
 * Where a node goes: its cell in the drilled-into grid, else Python's (layer, row).
 * @param {Ctx} ctx
 * @param {Node} n
 * @returns {[number, number]}
 */
function nodeXY(ctx, n) {
  const p = ctx.place && ctx.place.get(n.id);
  return p || [n.layer * DX, n.row * DY];
}

/**
 * A task's node: made the first time it is seen, then brought up to date in place (state,
 * selection, shown or not, "+N blocked" badge, tooltip, its edges in).
 * @param {Ctx} ctx
 * @param {Node} n
 */
function drawNode(ctx, n) {
  const g = ctx.nodeEls.get(n.id) || newNode(ctx, n);
  const cls = n.state === "superseded" ? `ld-${n.real_state || "done"} ld-superseded`
    : `ld-${n.state}`;
  g.setAttribute("class", `ld-node ${cls}${n.id === ctx.selected ? " ld-selected" : ""}`);
  g.setAttribute("data-state", n.state);
  g.style.display = visible(ctx, n) ? "" : "none";
  g.querySelector(".ld-badge").textContent = n.blocked ? `+${n.blocked} blocked` : "";
  g.querySelector("title").textContent = `task ${n.id} ${n.app}: ${n.state}`
    + (n.exc_type ? `\n${n.exc_type}: ${n.message || ""}` : "");
  for (const p of ctx.edgeEls.get(n.id) || []) {
    const src = ctx.store.nodes.get(Number(p.getAttribute("data-from")));
    p.style.display = visible(ctx, n) && visible(ctx, src) ? "" : "none";
  }
}

/**
 * A node's elements (box, label, badge, tooltip; a click selects it) and its edges in.
 * @param {Ctx} ctx
 * @param {Node} n
 * @returns {SVGGElement}
 */
function newNode(ctx, n) {
  const g = /** @type {SVGGElement} */ (svg("g", { class: "ld-node", "data-id": n.id }));
  const [x, y] = nodeXY(ctx, n);
  g.setAttribute("transform", `translate(${x},${y})`);
  const rect = svg("rect", { width: NW, height: NH, rx: 4 });
  const label = svg("text", { x: 6, y: 13 });
  label.textContent = `${n.id} ${n.app}`.slice(0, 18);
  const badge = svg("text", { class: "ld-badge", x: NW + 3, y: 13 });
  const title = svg("title");
  g.append(rect, label, badge, title);
  g.addEventListener("click", (e) => {
    e.stopPropagation();
    select(ctx, n.id);
  });
  ctx.nodeLayer.append(g);
  ctx.nodeEls.set(n.id, g);
  ctx.edgeEls.set(n.id, drawEdgesInto(ctx, n, x, y));
  return g;
}

/**
 * The edges from a node's deps (those drawn) into the node at (x, y).
 * @param {Ctx} ctx
 * @param {Node} n
 * @param {number} x
 * @param {number} y
 * @returns {SVGPathElement[]}
 */
function drawEdgesInto(ctx, n, x, y) {
  const paths = [];
  for (const dep of n.deps) {
    const p = ctx.store.nodes.get(dep);
    if (!p || (ctx.place && !ctx.place.has(dep))) continue;
    const [x1, y1] = nodeXY(ctx, p);
    const sx = x1 + NW;
    const sy = y1 + NH / 2;
    const ty = y + NH / 2;
    const mx = (sx + x) / 2;
    const path = /** @type {SVGPathElement} */ (svg("path", { class: "ld-edge", "data-from": dep,
      d: `M${sx},${sy} C${mx},${sy} ${mx},${ty} ${x},${ty}` }));
    ctx.edgeLayer.append(path);
    paths.push(path);
  }
  return paths;
}

/** A labelled box around each cell run's shown tasks (greyed once superseded). @param {Ctx} ctx */
function drawGroups(ctx) {
  const { store, groupLayer } = ctx;
  groupLayer.innerHTML = "";
  const boxes = new Map();
  for (const n of store.nodes.values()) {
    if (!visible(ctx, n)) continue;
    const [x, y] = nodeXY(ctx, n);
    const b = boxes.get(n.group) || { x0: x, y0: y, x1: x, y1: y };
    b.x0 = Math.min(b.x0, x); b.y0 = Math.min(b.y0, y);
    b.x1 = Math.max(b.x1, x); b.y1 = Math.max(b.y1, y);
    boxes.set(n.group, b);
  }
  for (const [key, b] of boxes) {
    const g = store.groups.get(key) || { label: key };
    const r = svg("rect", { class: `ld-group${g.superseded ? " ld-group-old" : ""}`,
      x: b.x0 - 8, y: b.y0 - 18, width: b.x1 - b.x0 + NW + 16, height: b.y1 - b.y0 + NH + 26,
      rx: 6 });
    const t = svg("text", { class: "ld-group-label", x: b.x0 - 4, y: b.y0 - 6 });
    t.textContent = g.label + (g.superseded ? " (superseded)" : "");
    groupLayer.append(r, t);
  }
}

/** Remove every node, edge and group box. @param {Ctx} ctx */
function clearCanvas(ctx) {
  ctx.nodeLayer.innerHTML = "";
  ctx.edgeLayer.innerHTML = "";
  ctx.groupLayer.innerHTML = "";
  ctx.nodeEls.clear();
  ctx.edgeEls.clear();
}

/**
 * The tasks of the box drilled into, as a grid: a block of columns per layer, each column
 * as tall as makes the grid about as wide as the canvas.
 * @param {Ctx} ctx
 */
function layoutFocus(ctx) {
  const { store, canvas } = ctx;
  const key = store.focus.key;
  const members = [...store.nodes.values()].filter((n) => boxKey(n) === key);
  const aspect = (canvas.clientWidth || 800) / (canvas.clientHeight || 400);
  const perCol = Math.max(8, Math.ceil(Math.sqrt(members.length * DX / (DY * aspect))));
  const byLayer = new Map();
  for (const n of members) {
    if (!byLayer.has(n.layer)) byLayer.set(n.layer, []);
    byLayer.get(n.layer).push(n);
  }
  const place = new Map();
  ctx.place = place;
  let col = 0;
  for (const layer of [...byLayer.keys()].sort((a, b) => a - b)) {
    const ns = byLayer.get(layer).sort((a, b) => a.row - b.row || a.id - b.id);
    ns.forEach((n, i) => place.set(n.id, [(col + Math.floor(i / perCol)) * DX,
      (i % perCol) * DY]));
    col += Math.ceil(ns.length / perCol);
  }
}

/**
 * The drilled-into view: the tasks that changed, or all of them laid out afresh when a
 * redraw is asked for or the box gained tasks.
 * @param {Ctx} ctx
 * @param {number[] | null} ids
 */
function drawFocus(ctx, ids) {
  const { store } = ctx;
  const grown = ids !== null && ids.some((id) => !ctx.place.has(id)
    && store.nodes.has(id) && boxKey(store.nodes.get(id)) === store.focus.key);
  if (ids === null || grown) {
    clearCanvas(ctx);
    layoutFocus(ctx);
    ids = [...ctx.place.keys()];
  }
  for (const id of ids) {
    if (ctx.place.has(id)) drawNode(ctx, store.nodes.get(id));
  }
}

/**
 * The plain view: the tasks that changed (null: all of them, drawn afresh), then the boxes
 * around cell runs.
 * @param {Ctx} ctx
 * @param {number[] | null} ids
 * @returns {number[]} the ids drawn
 */
function drawNodes(ctx, ids) {
  ctx.place = null;
  if (ids === null) {
    ctx.nodeLayer.innerHTML = "";
    ctx.edgeLayer.innerHTML = "";
    ctx.nodeEls.clear();
    ctx.edgeEls.clear();
    ids = [...ctx.store.nodes.keys()].sort((a, b) => a - b);
  }
  for (const id of ids) {
    const n = ctx.store.nodes.get(id);
    if (n) drawNode(ctx, n);
  }
  drawGroups(ctx);
  return ids;
}

/**
 * The aggregated view, drawn afresh: a box per (cell run, app), with edges between boxes.
 * @param {Ctx} ctx
 */
function drawAggregate(ctx) {
  ctx.place = null;
  clearCanvas(ctx);
  const pos = new Map();
  for (const a of ctx.store.agg.values()) pos.set(a.key, [a.layer * (AW + 60), a.row * (AH + 16)]);
  for (const a of ctx.store.agg.values()) {
    const [x, y] = pos.get(a.key);
    for (const d of a.deps || []) {
      const from = pos.get(d);
      if (!from) continue;
      const sx = from[0] + AW;
      const sy = from[1] + AH / 2;
      const mx = (sx + x) / 2;
      ctx.edgeLayer.append(svg("path", { class: "ld-edge",
        d: `M${sx},${sy} C${mx},${sy} ${mx},${y + AH / 2} ${x},${y + AH / 2}` }));
    }
    ctx.nodeLayer.append(aggBox(ctx, a, x, y));
  }
}

/**
 * One aggregated box at (x, y): a bar of its tasks' states, "app · label · count"; a click
 * selects it, a double click drills into it.
 * @param {Ctx} ctx
 * @param {any} a  the box, from store.agg
 * @param {number} x
 * @param {number} y
 */
function aggBox(ctx, a, x, y) {
  const g = svg("g", { class: `ld-agg${a.superseded ? " ld-superseded" : ""}${
    ctx.selected === a.key ? " ld-selected" : ""}`, transform: `translate(${x},${y})`,
  "data-key": a.key });
  g.append(svg("rect", { class: "ld-agg-box", width: AW, height: AH, rx: 5 }));
  const total = Object.values(a.counts).reduce((s, c) => s + c, 0) || 1;
  let off = 0;
  for (const s of STATES) {
    const c = a.counts[s] || 0;
    if (!c) continue;
    const w = (AW - 12) * c / total;
    g.append(svg("rect", { class: `ld-bar-seg ld-${s}`, x: 6 + off, y: 26, width: w,
      height: 12 }));
    off += w;
  }
  const t = svg("text", { x: 6, y: 17 });
  const n = Object.values(a.counts).reduce((s, c) => s + c, 0);
  t.textContent = `${a.app} · ${a.label} · ${n}`;
  g.append(t);
  g.addEventListener("click", (e) => {
    e.stopPropagation();
    select(ctx, a.key);
  });
  g.addEventListener("dblclick", (e) => {
    e.stopPropagation();
    drill(ctx, a.key);
  });
  return g;
}

/**
 * The legend's state counts, the "Resubmit all failed" button, and the first five
 * failure cascades (a click selects the root cause).
 * @param {Ctx} ctx
 */
function drawLegend(ctx) {
  const { store, legend, cascades } = ctx;
  legend.innerHTML = "";
  for (const s of STATES) {
    const c = store.legend[s];
    if (!c) continue;
    const chip = el("span", { class: `ld-chip ld-${s}`, "data-state": s });
    chip.append(el("i"), document.createTextNode(` ${s.replace("_", " ")} ${c}`));
    legend.append(chip);
  }
  ctx.btnFailed.disabled = !store.legend.failed;
  cascades.innerHTML = "";
  for (const c of store.cascades.slice(0, 5)) {
    const a = el("a", { class: "ld-cascade", href: "#", "data-root": c.root }, c.text);
    a.addEventListener("click", (e) => {
      e.preventDefault();
      select(ctx, c.root);
    });
    cascades.append(a);
  }
}

/**
 * Show the DAG or the timeline tab (and the toolbar parts that go with it).
 * @param {Ctx} ctx
 * @param {string} tab  "dag" or "timeline"
 */
function showTab(ctx, tab) {
  const { ui, store, timeline } = ctx;
  ui.tab = tab;
  const onTimeline = tab === "timeline";
  ctx.canvas.style.display = onTimeline ? "none" : "";
  timeline.el.style.display = onTimeline ? "" : "none";
  ctx.btnFit.style.display = onTimeline ? "none" : "";
  ctx.blockedLabel.style.display = onTimeline ? "none" : "";
  ctx.tabDag.classList.toggle("ld-on", !onTimeline);
  ctx.tabTimeline.classList.toggle("ld-on", onTimeline);
  drawCrumb(ctx, store.mode === "aggregate" ? store.focus : null);
  if (onTimeline) {
    drawTimeline(timeline, ctx.selected);
    live(ctx);
  } else if (ctx.dagStale) {
    ctx.dagStale = false;
    schedule(ctx, null);
  }
}

/**
 * While the timeline shows running bars, draw it again now and then: they grow.
 * @param {Ctx} ctx
 */
function live(ctx) {
  if (ctx.liveTimer || ctx.ui.tab !== "timeline" || !timelineRunning(ctx.timeline)) return;
  ctx.liveTimer = setTimeout(() => {
    ctx.liveTimer = 0;
    if (ctx.ui.tab !== "timeline") return;
    drawTimeline(ctx.timeline, ctx.selected);
    live(ctx);
  }, 500);
}

/**
 * In the aggregated view the page has only some tasks' details: ask for this one's.
 * @param {Ctx} ctx
 * @param {number} id
 */
function askDetails(ctx, id) {
  const asked = ctx.pinAsked.get(id);
  if (asked && Date.now() - asked < 3000) return;
  ctx.pinAsked.set(id, Date.now());
  ctx.model.send({ type: "pin", id });
}

/**
 * What the drilled-into view shows: its box grows while cells add tasks to it.
 * @param {Ctx} ctx
 * @param {Focus | null} focus
 */
function drawCrumb(ctx, focus) {
  if (ctx.ui.tab === "timeline") focus = null;
  ctx.btnOverview.style.display = focus ? "" : "none";
  if (!focus) {
    ctx.crumb.textContent = "";
    return;
  }
  const box = ctx.store.agg.get(focus.key);
  const total = box ? Object.values(box.counts).reduce((a, b) => a + b, 0) : focus.total;
  const shown = ctx.place ? ctx.place.size : focus.shown;
  ctx.crumb.textContent = `${focus.app} · ${focus.label}: ${
    shown === total ? `${total} tasks` : `the newest ${shown} of ${total} tasks`}`;
}

/**
 * Draw what changed (ids; null: everything) in the tab shown, then the legend, breadcrumb
 * and detail panel; keep the graph fitted until the user pans or zooms.
 * @param {Ctx} ctx
 * @param {number[] | null} ids
 */
function redraw(ctx, ids) {
  const t0 = performance.now();
  const { store, ui } = ctx;
  if (ui.tab === "timeline") {
    redrawTimeline(ctx, t0);
    return;
  }
  const focus = store.mode === "aggregate" ? store.focus : null;

  if ((focus && focus.key) !== ctx.shownFocus) {
    // Drilled in or back out: a new picture, fitted to the canvas.
    ctx.shownFocus = focus && focus.key;
    ctx.userMoved = ui.userMoved = false;
  }
  if (focus) {
    drawFocus(ctx, ids);
  } else if (store.mode === "aggregate") {
    drawAggregate(ctx);
  } else {
    ids = drawNodes(ctx, ids);
  }
  drawLegend(ctx);
  drawCrumb(ctx, focus);
  if (ctx.selected !== null) showDetail(ctx, ctx.selected, false);
  // Follow the graph as it grows until the user pans or zooms.
  if (!ctx.userMoved && (store.nodes.size || store.agg.size)) fit(ctx);
  timing("livedag:redraw", t0, { mode: store.mode, ids: ids === null ? -1 : ids.length });
}

/**
 * The redraw while the timeline is shown: the DAG waits until its tab is shown again.
 * @param {Ctx} ctx
 * @param {number} t0  when the redraw began (performance.now())
 */
function redrawTimeline(ctx, t0) {
  ctx.dagStale = true;
  drawTimeline(ctx.timeline, ctx.selected);
  live(ctx);
  drawLegend(ctx);
  if (ctx.selected !== null) showDetail(ctx, ctx.selected, false);
  timing("livedag:redraw", t0, { mode: "timeline", ids: ctx.store.timeline.bars.size });
}

/**
 * Redraw at the next animation frame, with the ids changed since (null: everything).
 * @param {Ctx} ctx
 * @param {number[] | null} ids
 */
function schedule(ctx, ids) {
  if (ids === null) ctx.pending = null;
  else if (ctx.pending !== null) for (const id of ids) ctx.pending.add(id);
  if (ctx.frame) return;
  ctx.frame = requestAnimationFrame(() => {
    ctx.frame = 0;
    const todo = ctx.pending === null ? null : [...ctx.pending];
    ctx.pending = new Set();
    redraw(ctx, todo);
  });
}

/**
 * Select a task (id) or an aggregated box (key): mark it in both tabs and show its details.
 * @param {Ctx} ctx
 * @param {number | string} id
 */
function select(ctx, id) {
  const { store, ui } = ctx;
  const before = ctx.selected;
  ctx.selected = id;
  ui.selected = id;
  for (const k of [before, id]) {
    // Only restyle a node this view has drawn: drawNode() would add one that the view
    // does not show (a box's task in the overview, a task outside the drilled-into box).
    if (typeof k === "number" && ctx.nodeEls.has(k) && store.nodes.has(k)) {
      drawNode(ctx, store.nodes.get(k));
    }
  }
  if (typeof id === "number") {
    const n = store.nodes.get(id);
    if (n && n.folded_into !== undefined && !ctx.blockedBox.checked) {
      ctx.blockedBox.checked = ui.showBlocked = true;
      schedule(ctx, null);
    }
  }
  if (store.mode === "aggregate" && !store.focus && ui.tab === "dag") drawAggregate(ctx);
  highlightBars(ctx.timeline, id);
  showDetail(ctx, id, true);
}

/**
 * Ask the kernel to open an aggregated box's tasks (key), or to go back (null).
 * @param {Ctx} ctx
 * @param {string | null} key
 */
function drill(ctx, key) {
  const a = key && ctx.store.agg.get(key);
  send(ctx, "drill", { key }, a ? `opening ${a.app} · ${a.label}` : "back to the overview");
}

/**
 * A command for the kernel; says "queued: kernel busy" if no answer comes soon.
 * @param {Ctx} ctx
 * @param {string} type
 * @param {Record<string, any>} fields
 * @param {string} text  what the status line says it does
 */
function send(ctx, type, fields, text) {
  const cmd = `c${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const timer = setTimeout(() => {
    if (ctx.inflight.has(cmd)) setStatus(ctx, `queued: kernel busy (${text})`, "queued");
  }, QUEUED_AFTER_MS);
  ctx.inflight.set(cmd, { text, timer });
  setStatus(ctx, `${text}...`, "sent");
  ctx.model.send({ type, ...fields, cmd });
}

/**
 * The status line (kept in ui for a view drawn again).
 * @param {Ctx} ctx
 * @param {string} text
 * @param {string} kind  sent, queued, ok or error (its data-kind)
 */
function setStatus(ctx, text, kind) {
  ctx.ui.status = [text, kind];
  ctx.status.textContent = text;
  ctx.status.setAttribute("data-kind", kind);
}

/**
 * The kernel's answers to commands: each one's outcome goes on the status line.
 * @param {Ctx} ctx
 * @param {any[]} acks
 */
function onAcks(ctx, acks) {
  for (const a of acks) {
    const f = ctx.inflight.get(a.cmd);
    if (f) {
      clearTimeout(f.timer);
      ctx.inflight.delete(a.cmd);
    }
    setStatus(ctx, a.text, a.ok ? "ok" : "error");
  }
}

/**
 * A titled section of the detail panel; a string body is shown preformatted.
 * @param {string} title
 * @param {string | HTMLElement} body
 */
function section(title, body, cls = "") {
  const s = el("div", { class: cls ? `ld-sec ${cls}` : "ld-sec" });
  s.append(el("div", { class: "ld-sec-title" }, title));
  if (typeof body === "string") s.append(el("pre", { class: "ld-pre" }, body));
  else s.append(body);
  return s;
}

/**
 * A link to a task: a click selects it.
 * @param {Ctx} ctx
 * @param {number} tid
 */
function taskLink(ctx, tid) {
  const n = ctx.store.nodes.get(tid);
  const a = el("a", { href: "#", class: "ld-link", "data-task": tid },
    `task ${tid}${n ? ` '${n.app}'` : ""}`);
  a.addEventListener("click", (e) => {
    e.preventDefault();
    select(ctx, tid);
  });
  return a;
}

/**
 * "label: task 1, task 2" with links to the tasks (root causes, failed tasks).
 * @param {Ctx} ctx
 * @param {string} label
 * @param {number[]} tids
 */
function taskLinks(ctx, label, tids) {
  const list = el("div", { class: "ld-root-cause" });
  list.append(document.createTextNode(label));
  tids.forEach((tid, i) => {
    if (i) list.append(document.createTextNode(", "));
    list.append(taskLink(ctx, tid));
  });
  return list;
}

/**
 * The detail panel for a task (id) or an aggregated box (key).
 * @param {Ctx} ctx
 * @param {number | string} id
 * @param {boolean} scroll  false: keep the panel's scroll position (a redraw)
 */
function showDetail(ctx, id, scroll) {
  const { panel, store } = ctx;
  const keepScroll = panel.scrollTop;
  panel.innerHTML = "";
  if (typeof id === "string") return showGroupDetail(ctx, id);
  const n = store.nodes.get(id);
  if (!n) {
    if (store.mode === "aggregate") {
      askDetails(ctx, id);
      panel.append(el("div", { class: "ld-hint" }, `task ${id}: fetching its details...`));
    } else {
      panel.append(el("div", { class: "ld-hint" }, `task ${id} is not in view`));
    }
    return;
  }
  const head = el("div", { class: "ld-head" });
  head.append(el("span", { class: `ld-pill ld-${n.state}` }, n.state.replace("_", " ")),
    el("b", {}, ` ${n.app}`), document.createTextNode(` · task ${n.id}`));
  panel.append(head);
  panel.append(taskActions(ctx, n));
  panel.append(taskFacts(n));
  if (n.root_cause_ids && n.root_cause_ids.length && n.state !== "failed") {
    panel.append(taskLinks(ctx, "root cause: ", n.root_cause_ids));
  }
  if (n.tries && n.tries.length) panel.append(section("tries", triesTable(n)));
  if (n.exc_type) panel.append(el("div", { class: "ld-error" }, `${n.exc_type}: ${n.message || ""}`));
  if (n.stdout) panel.append(section("stdout", n.stdout, "ld-stdout"));
  if (n.stderr) panel.append(section("stderr", n.stderr, "ld-stderr"));
  if (n.traceback) panel.append(section("traceback", n.traceback, "ld-traceback"));
  if (!scroll) panel.scrollTop = keepScroll;
}

/**
 * A task's Resubmit and Cancel buttons, enabled when its state allows.
 * @param {Ctx} ctx
 * @param {Node} n
 */
function taskActions(ctx, n) {
  const actions = el("div", { class: "ld-actions" });
  const canResubmit = ["failed", "dep_fail", "cancelled"].includes(n.real_state || n.state);
  const canCancel = ["pending", "launched"].includes(n.real_state || n.state);
  const rb = /** @type {HTMLButtonElement} */ (el("button", { class: "ld-btn ld-resubmit" },
    "Resubmit"));
  rb.disabled = !canResubmit;
  rb.addEventListener("click", () => send(ctx, "resubmit", { id: n.id },
    `resubmitting task ${n.id}`));
  const cb = /** @type {HTMLButtonElement} */ (el("button", { class: "ld-btn ld-cancel" },
    "Cancel"));
  cb.disabled = !canCancel;
  cb.addEventListener("click", () => send(ctx, "cancel", { id: n.id },
    `cancelling task ${n.id}`));
  actions.append(rb, cb);
  return actions;
}

/** Where and how a task ran: cell, args, executor, host and pid, block, job. @param {Node} n */
function taskFacts(n) {
  const dl = el("dl", { class: "ld-facts" });
  const fact = (k, v) => {
    if (v === undefined || v === null || v === "") return;
    dl.append(el("dt", {}, k), el("dd", {}, String(v)));
  };
  fact("cell", n.cell);
  fact("args", n.args);
  fact("executor", n.executor);
  fact("host", n.host ? `${n.host}${n.pid ? ` pid ${n.pid}` : ""}` : "");
  fact("block", n.block_id);
  fact("job", n.job_id);
  if (n.blocked) fact("blocks", `${n.blocked} dependent tasks`);
  return dl;
}

/** A row per try: when it launched, how long it ran, CPU, peak memory, outcome. @param {Node} n */
function triesTable(n) {
  const t = el("table", { class: "ld-tries" });
  t.append(el("tr", {}, ""));
  t.firstChild.append(...["try", "launched", "ran", "cpu", "peak mem", "outcome"]
    .map((h) => el("th", {}, h)));
  for (const tr of n.tries) {
    const row = el("tr");
    row.append(el("td", {}, String(tr.number)), el("td", {}, fmtTime(tr.launched)),
      el("td", {}, fmtDur(tr.started || tr.launched, tr.ended)),
      el("td", { class: "ld-cpu" }, fmtCpu(tr.cpu_time)),
      el("td", { class: "ld-peak" }, fmtBytes(tr.peak_rss)),
      el("td", {}, `${tr.outcome || "…"}${tr.exc_type ? ` (${tr.exc_type})` : ""}`));
    t.append(row);
  }
  return t;
}

/**
 * The detail panel for an aggregated box or a cell run: its state counts, "Show its N
 * tasks" (aggregated view), its failed tasks.
 * @param {Ctx} ctx
 * @param {string} key
 */
function showGroupDetail(ctx, key) {
  const { store, panel } = ctx;
  const a = store.agg.get(key) || store.groups.get(key);
  if (!a) return;
  panel.append(el("div", { class: "ld-head" }, `${a.app || ""} · ${a.label}`));
  const dl = el("dl", { class: "ld-facts" });
  for (const s of STATES) {
    if (a.counts[s]) dl.append(el("dt", {}, s), el("dd", {}, String(a.counts[s])));
  }
  panel.append(dl);
  if (a.app && store.mode === "aggregate") {
    const actions = el("div", { class: "ld-actions" });
    const n = Object.values(a.counts).reduce((s, c) => s + c, 0);
    const open = store.focus && store.focus.key === key;
    const b = /** @type {HTMLButtonElement} */ (el("button", { class: "ld-btn ld-drill" },
      open ? "Shown" : `Show its ${n} tasks`));
    b.disabled = !!open;
    b.addEventListener("click", () => drill(ctx, key));
    actions.append(b);
    panel.append(actions);
  }
  if (a.failed && a.failed.length) {
    panel.append(taskLinks(ctx, `failed (${a.n_failed}): `, a.failed));
  }
}

/**
 * Pan (drag) and zoom (wheel) on the canvas.
 * @param {Ctx} ctx
 * @returns {() => void} removes the listeners it put on the window
 */
function bindPanZoom(ctx) {
  const { canvas, view, ui } = ctx;
  let drag = null;
  canvas.addEventListener("mousedown", (e) => {
    drag = { x: e.clientX - view.x, y: e.clientY - view.y };
  });
  const onMove = (e) => {
    if (!drag) return;
    ctx.userMoved = ui.userMoved = true;
    view.x = e.clientX - drag.x;
    view.y = e.clientY - drag.y;
    applyView(ctx);
  };
  const onUp = () => { drag = null; };
  window.addEventListener("mousemove", onMove);
  window.addEventListener("mouseup", onUp);
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    ctx.userMoved = ui.userMoved = true;
    const r = canvas.getBoundingClientRect();
    const mx = e.clientX - r.left;
    const my = e.clientY - r.top;
    const f = Math.exp(-e.deltaY * 0.0015);
    const k = Math.min(4, Math.max(0.02, view.k * f));
    view.x = mx - (mx - view.x) * (k / view.k);
    view.y = my - (my - view.y) * (k / view.k);
    view.k = k;
    applyView(ctx);
  }, { passive: false });
  return () => {
    window.removeEventListener("mousemove", onMove);
    window.removeEventListener("mouseup", onUp);
  };
}

/** The toolbar's buttons, tabs and "show blocked" box. @param {Ctx} ctx */
function bindToolbar(ctx) {
  ctx.btnFit.addEventListener("click", () => {
    ctx.userMoved = ctx.ui.userMoved = false;
    fit(ctx);
  });
  ctx.btnFailed.addEventListener("click", () => send(ctx, "resubmit_failed", {},
    "resubmitting failed tasks"));
  ctx.btnOverview.addEventListener("click", () => drill(ctx, null));
  ctx.tabDag.addEventListener("click", () => showTab(ctx, "dag"));
  ctx.tabTimeline.addEventListener("click", () => showTab(ctx, "timeline"));
  ctx.blockedBox.addEventListener("change", () => {
    ctx.ui.showBlocked = ctx.blockedBox.checked;
    schedule(ctx, null);
  });
}

/**
 * The view: toolbar, legend, cascades, SVG canvas or timeline, detail panel. Draws what the
 * store has, then follows it; returns the cleanup anywidget calls when the view goes.
 * @param {{model: any, el: HTMLElement}} props
 */
function render({ model, el: root }) {
  timing("livedag:render", null, { uid: model.get("uid") });
  const ctx = newView(model, root);
  const { store, ui } = ctx;
  const unbindPanZoom = bindPanZoom(ctx);
  bindToolbar(ctx);
  if (ui.status[0]) setStatus(ctx, ui.status[0], ui.status[1]);

  /** @type {View} */
  const me = { onChange: (ids) => schedule(ctx, ids), onAcks: (acks) => onAcks(ctx, acks) };
  store.views.add(me);
  applyView(ctx);
  showTab(ctx, ui.tab || "dag");
  redraw(ctx, null);
  if (store.stale) model.send({ type: "resync" });
  // The element may not be laid out yet on first render: fit once it has a size.
  requestAnimationFrame(() => fit(ctx));
  return () => {
    store.views.delete(me);
    unbindPanZoom();
    if (ctx.frame) cancelAnimationFrame(ctx.frame);
    if (ctx.liveTimer) clearTimeout(ctx.liveTimer);
  };
}

export default { render };
