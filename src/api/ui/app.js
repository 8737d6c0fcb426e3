// The operator dashboard of a cartwheel node (`GET /ui`): polls `GET /v1/cluster` on
// the node that served the page and draws the regions, their nodes and their traffic.
//
// Rates and percentiles are computed here, from the differences between successive
// polls of each node's cumulative latency histograms; the node keeps no history for
// the page. Every string from the JSON reaches the page through textContent or
// setAttribute, never as HTML. The page talks to no other origin.
'use strict';

(function () {
  const REFRESH_MS_DEFAULT = 2000;
  const REFRESH_MS_MIN = 500;
  const REFRESH_MS_MAX = 60000;
  // The sliding window of the percentiles and the sparkline.
  const WINDOW_MS = 5 * 60 * 1000;
  // A poll that has not answered by then (at least this, at most the refresh period)
  // counts as failed: the node itself waits for every other node's overview first.
  const FETCH_TIMEOUT_MS_MIN = 5000;
  const CLUSTER_PATH = '/v1/cluster';
  const OP_ORDER = ['read', 'write'];
  const CLASS_ORDER = ['kv', 'auth', 'user', 'resp'];
  const STATES = ['alive', 'suspect', 'dead'];
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const SPARK_WIDTH = 300;
  const SPARK_HEIGHT = 40;

  // ---- Pure helpers: histograms, rates, formatting (no DOM) ----

  function refreshFromQuery(search) {
    const raw = new URLSearchParams(search).get('refresh');
    const value = raw === null || raw.trim() === '' ? NaN : Number(raw);
    if (!Number.isFinite(value)) return REFRESH_MS_DEFAULT;
    return Math.min(REFRESH_MS_MAX, Math.max(REFRESH_MS_MIN, Math.round(value)));
  }

  // What a counter array gained since `previous`. A node that restarted starts again
  // from zero: any bucket going down means a reset, and the new counts are the gain.
  function deltaCounts(previous, next) {
    if (!previous || previous.length !== next.length) return next.slice();
    const delta = new Array(next.length);
    for (let i = 0; i < next.length; i++) {
      const gained = next[i] - previous[i];
      if (gained < 0) return next.slice();
      delta[i] = gained;
    }
    return delta;
  }

  function addInto(total, counts) {
    for (let i = 0; i < counts.length; i++) total[i] = (total[i] || 0) + counts[i];
    return total;
  }

  function sum(counts) {
    let total = 0;
    for (const count of counts) total += count;
    return total;
  }

  // The q-quantile of a histogram (`counts[i]` in (bounds[i-1], bounds[i]], the last
  // bucket above the last bound), by linear interpolation inside its bucket.
  // {ms, over: false}, or {ms: last bound, over: true} in the open bucket; null if empty.
  function percentile(counts, bounds, q) {
    const total = sum(counts);
    if (total <= 0) return null;
    const rank = q * total;
    let below = 0;
    for (let i = 0; i < counts.length; i++) {
      const count = counts[i];
      if (count > 0 && below + count >= rank) {
        if (i >= bounds.length) return { ms: bounds[bounds.length - 1], over: true };
        const lower = i === 0 ? 0 : bounds[i - 1];
        const fraction = Math.min(1, Math.max(0, (rank - below) / count));
        return { ms: lower + (bounds[i] - lower) * fraction, over: false };
      }
      below += count;
    }
    return { ms: bounds[bounds.length - 1], over: true };
  }

  // Two or three significant digits; each threshold is where the shorter form would
  // round up to the next one (9.96 ms is "10 ms", not "10.0 ms").
  function formatMs(ms) {
    if (ms >= 9950) return Math.round(ms / 1000) + ' s';
    if (ms >= 999.5) return (ms / 1000).toFixed(1) + ' s';
    if (ms >= 9.95) return Math.round(ms) + ' ms';
    if (ms >= 0.995) return ms.toFixed(1) + ' ms';
    return ms.toFixed(2) + ' ms';
  }

  function formatPercentile(result) {
    if (!result) return '–';
    return (result.over ? '> ' : '') + formatMs(result.ms);
  }

  const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

  const compact = new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 });

  // Operations per second; `short` keeps large ones to a few characters (table cells).
  function formatRate(rate, short) {
    if (rate === null || rate === undefined || !Number.isFinite(rate)) return '–';
    if (rate > 0 && rate < 10) return rate.toFixed(1);
    if (short && rate >= 10000) return compact.format(rate);
    return integer.format(rate);
  }

  function formatSeconds(seconds) {
    if (seconds < 1) return seconds.toFixed(1) + ' s';
    if (seconds < 60) return Math.round(seconds) + ' s';
    if (seconds < 3600) return Math.round(seconds / 60) + ' min';
    if (seconds < 86400) return (seconds / 3600).toFixed(1) + ' h';
    return (seconds / 86400).toFixed(1) + ' d';
  }

  function plural(count, one, many) {
    return integer.format(count) + ' ' + (count === 1 ? one : many);
  }

  function ordered(values, order) {
    return Array.from(new Set(values)).sort((a, b) => {
      const ia = order.indexOf(a);
      const ib = order.indexOf(b);
      if (ia !== ib) return (ia < 0 ? order.length : ia) - (ib < 0 ? order.length : ib);
      return a < b ? -1 : a > b ? 1 : 0;
    });
  }

  function byRegionThenNode(a, b) {
    if (a.region !== b.region) return a.region < b.region ? -1 : 1;
    return a.node < b.node ? -1 : a.node > b.node ? 1 : 0;
  }

  function seriesKey(region, op, klass) {
    return region + '\u0000' + op + '\u0000' + klass;
  }

  // ---- History: per-poll deltas over the sliding window ----

  // What the page remembers between polls: each node's last counters (`previous`, only
  // for the nodes of the last poll), and one sample per poll over the window, whose
  // `series` maps region/op/class to the bucket gains summed over that region's nodes.
  // `nodeRates` holds each node's operations and failures per second at the last poll.
  function makeHistory(refreshMs) {
    return {
      samplesMax: Math.ceil(WINDOW_MS / refreshMs) + 1,
      bounds: null,
      polls: 0,
      lastMs: null,
      previous: new Map(),
      samples: [],
      nodeRates: new Map(),
    };
  }

  function ingest(history, data, nowMs) {
    const bounds = Array.isArray(data.latency_bounds_ms) ? data.latency_bounds_ms : [];
    if (JSON.stringify(bounds) !== JSON.stringify(history.bounds)) {
      history.bounds = bounds.slice();
      history.previous = new Map();
      history.samples = [];
      history.lastMs = null;
    }
    const timeMs = Number.isFinite(data.generated_unix_ms) ? data.generated_unix_ms : nowMs;
    const elapsedS = history.lastMs === null ? 0 : (timeMs - history.lastMs) / 1000;
    const poll = ++history.polls;
    const series = new Map();
    const nodeRates = new Map();
    const next = new Map();
    for (const node of data.nodes || []) {
      const overview = node.overview;
      if (!node.reachable || !overview) continue;
      const totals = [overview.reads || 0, overview.writes || 0, overview.failures || 0];
      const nodeKey = 'node\u0000' + node.node;
      const before = history.previous.get(nodeKey);
      next.set(nodeKey, { poll, counts: totals });
      if (before && before.poll === poll - 1 && elapsedS > 0) {
        const gained = deltaCounts(before.counts, totals);
        nodeRates.set(node.node, { ops: (gained[0] + gained[1]) / elapsedS, failures: gained[2] / elapsedS });
      }
      for (const entry of overview.latency || []) {
        if (!Array.isArray(entry.counts) || entry.counts.length !== bounds.length + 1) continue;
        const key = node.node + '\u0000' + entry.op + '\u0000' + entry.class;
        const previous = history.previous.get(key);
        next.set(key, { poll, counts: entry.counts.slice() });
        if (!previous || previous.poll !== poll - 1) continue;
        const target = seriesKey(node.region, entry.op, entry.class);
        series.set(target, addInto(series.get(target) || [], deltaCounts(previous.counts, entry.counts)));
      }
    }
    history.previous = next;
    history.nodeRates = nodeRates;
    if (elapsedS > 0) {
      history.samples.push({ timeMs, elapsedS, series });
    }
    // A clock that went back starts the rates again from this poll.
    history.lastMs = timeMs;
    while (
      history.samples.length > history.samplesMax ||
      (history.samples.length > 0 && history.samples[0].timeMs < timeMs - WINDOW_MS)
    ) {
      history.samples.shift();
    }
  }

  // Rates (from the latest poll), window histograms and the sparkline of one region.
  function regionTraffic(history, region, ops, classes) {
    const samples = history.samples;
    const latest = samples.length > 0 ? samples[samples.length - 1] : null;
    const cell = () => ({ rate: latest ? 0 : null, counts: [] });
    const byOp = new Map(ops.map((op) => [op, cell()]));
    const byClass = new Map(classes.map((klass) => [klass, new Map(ops.map((op) => [op, cell()]))]));
    const spark = [];
    for (const sample of samples) {
      let total = 0;
      for (const op of ops) {
        for (const klass of classes) {
          const counts = sample.series.get(seriesKey(region, op, klass));
          if (!counts) continue;
          const operations = sum(counts);
          total += operations;
          addInto(byOp.get(op).counts, counts);
          addInto(byClass.get(klass).get(op).counts, counts);
          if (sample === latest) {
            byOp.get(op).rate += operations / sample.elapsedS;
            byClass.get(klass).get(op).rate += operations / sample.elapsedS;
          }
        }
      }
      spark.push({ fromMs: sample.timeMs - sample.elapsedS * 1000, timeMs: sample.timeMs, rate: total / sample.elapsedS });
    }
    return { byOp, byClass, spark };
  }

  // ---- DOM helpers: text only ----

  function el(tag, className, text) {
    const element = document.createElement(tag);
    if (className) element.className = className;
    if (text !== undefined && text !== null) element.textContent = String(text);
    return element;
  }

  function svg(tag, attributes) {
    const element = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
    return element;
  }

  function stateClass(state) {
    return STATES.includes(state) ? state : 'unknown';
  }

  // A step line of each poll's rate over the interval it covers, across the window (or
  // across the history there is, while it is shorter than the window).
  function sparkline(points, nowMs, label) {
    const figure = el('figure', 'spark');
    const max = points.reduce((top, point) => Math.max(top, point.rate), 0);
    const chart = svg('svg', {
      viewBox: '0 0 ' + SPARK_WIDTH + ' ' + SPARK_HEIGHT,
      preserveAspectRatio: 'none',
      role: 'img',
      'aria-label': label,
    });
    chart.appendChild(svg('line', { x1: 0, y1: SPARK_HEIGHT - 0.5, x2: SPARK_WIDTH, y2: SPARK_HEIGHT - 0.5, class: 'spark-axis' }));
    let spanMs = 0;
    if (points.length > 0) {
      const startMs = Math.max(nowMs - WINDOW_MS, points[0].fromMs);
      spanMs = Math.max(1, nowMs - startMs);
      const x = (timeMs) => Math.max(0, Math.min(SPARK_WIDTH, ((timeMs - startMs) / spanMs) * SPARK_WIDTH));
      const y = (rate) => (max > 0 ? SPARK_HEIGHT - 2 - (rate / max) * (SPARK_HEIGHT - 4) : SPARK_HEIGHT - 2);
      const line = [];
      for (const point of points) {
        line.push(x(point.fromMs).toFixed(1) + ',' + y(point.rate).toFixed(1));
        line.push(x(point.timeMs).toFixed(1) + ',' + y(point.rate).toFixed(1));
      }
      const first = x(points[0].fromMs).toFixed(1);
      const last = x(points[points.length - 1].timeMs).toFixed(1);
      const area = [first + ',' + SPARK_HEIGHT].concat(line, [last + ',' + SPARK_HEIGHT]);
      chart.appendChild(svg('polygon', { points: area.join(' '), class: 'spark-area' }));
      chart.appendChild(svg('polyline', { points: line.join(' '), class: 'spark-line' }));
    }
    figure.appendChild(chart);
    const caption = el('figcaption', 'muted');
    caption.textContent = points.length > 0
      ? 'ops/s over the last ' + formatSeconds(spanMs / 1000) + ' (peak ' + formatRate(max) + ')'
      : 'ops/s: waiting for a second poll';
    figure.appendChild(caption);
    return figure;
  }

  // ---- Rendering ----

  // The ring epoch most reachable nodes report; nodes on another one are flagged.
  function commonEpoch(nodes) {
    const counts = new Map();
    for (const node of nodes) {
      if (!node.overview || !Number.isFinite(node.overview.ring_epoch)) continue;
      counts.set(node.overview.ring_epoch, (counts.get(node.overview.ring_epoch) || 0) + 1);
    }
    let best = null;
    for (const [epoch, count] of counts) {
      if (best === null || count > best.count || (count === best.count && epoch > best.epoch)) {
        best = { epoch, count };
      }
    }
    return { epoch: best ? best.epoch : null, distinct: counts };
  }

  function renderHeader(data, nodes, epochs, receivedMs) {
    document.getElementById('served-by').textContent = 'cluster served by ' + String(data.served_by);
    const time = Number.isFinite(data.generated_unix_ms) ? data.generated_unix_ms : receivedMs;
    document.getElementById('updated').textContent = 'updated ' + new Date(time).toLocaleTimeString();
    const tally = { alive: 0, suspect: 0, dead: 0, other: 0 };
    for (const node of nodes) tally[STATES.includes(node.state) ? node.state : 'other'] += 1;
    let counts = plural(nodes.length, 'node', 'nodes') + ': ' + tally.alive + ' alive, ' +
      tally.suspect + ' suspect, ' + tally.dead + ' dead';
    if (tally.other > 0) counts += ', ' + tally.other + ' unknown';
    const countsElement = document.getElementById('node-counts');
    countsElement.textContent = counts;
    countsElement.className = tally.dead > 0 ? 'bad' : tally.suspect > 0 ? 'warn' : '';
    const ring = document.getElementById('ring-summary');
    if (epochs.distinct.size > 1) {
      const parts = Array.from(epochs.distinct).sort((a, b) => b[0] - a[0])
        .map(([epoch, count]) => epoch + ' on ' + plural(count, 'node', 'nodes'));
      ring.textContent = 'ring epochs differ: ' + parts.join(', ');
      ring.className = 'warn';
    } else {
      ring.textContent = epochs.epoch === null ? '' : 'ring epoch ' + epochs.epoch;
      ring.className = '';
    }
  }

  function renderUnmet(unmet) {
    const banner = document.getElementById('unmet-banner');
    const list = document.getElementById('unmet-list');
    const items = (Array.isArray(unmet) ? unmet : []).map((entry) => el('li', null,
      'in ' + String(entry.region) + ', ' + String(entry.class) + ' ' + String(entry.op) + 's at ' +
      String(entry.level) + ' cannot be met for ' + plural(Number(entry.partitions) || 0, 'partition', 'partitions')));
    list.replaceChildren(...items);
    banner.hidden = items.length === 0;
  }

  function fact(label, value, tone) {
    const item = el('div', 'fact' + (tone ? ' ' + tone : ''));
    item.appendChild(el('dt', null, label));
    item.appendChild(el('dd', null, value));
    return item;
  }

  function opTile(op, cell, bounds) {
    const tile = el('div', 'tile');
    tile.appendChild(el('div', 'tile-label', op + 's/s'));
    tile.appendChild(el('div', 'tile-value', formatRate(cell.rate)));
    tile.appendChild(el('div', 'tile-detail', 'p50 ' + formatPercentile(percentile(cell.counts, bounds, 0.5))));
    tile.appendChild(el('div', 'tile-detail', 'p99 ' + formatPercentile(percentile(cell.counts, bounds, 0.99))));
    return tile;
  }

  function classTable(traffic, ops, classes, bounds) {
    const table = el('table', 'classes');
    const head = el('thead');
    const top = el('tr');
    top.appendChild(el('th', null, 'class'));
    const sub = el('tr');
    sub.appendChild(el('th'));
    for (const op of ops) {
      const group = el('th', 'group', op);
      group.colSpan = 3;
      top.appendChild(group);
      for (const name of ['/s', 'p50', 'p99']) sub.appendChild(el('th', 'num', name));
    }
    head.append(top, sub);
    const body = el('tbody');
    for (const klass of classes) {
      const row = el('tr');
      row.appendChild(el('th', null, klass));
      for (const op of ops) {
        const cell = traffic.byClass.get(klass).get(op);
        row.appendChild(el('td', 'num', formatRate(cell.rate, true)));
        row.appendChild(el('td', 'num', formatPercentile(percentile(cell.counts, bounds, 0.5))));
        row.appendChild(el('td', 'num', formatPercentile(percentile(cell.counts, bounds, 0.99))));
      }
      body.appendChild(row);
    }
    table.append(head, body);
    const wrap = el('div', 'table-wrap');
    wrap.appendChild(table);
    return wrap;
  }

  function regionFacts(nodes) {
    let hints = 0, outOfSync = 0, oldest = 0, transfers = 0, changing = 0, unreachable = 0;
    for (const node of nodes) {
      const overview = node.overview;
      if (!node.reachable || !overview) { unreachable += 1; continue; }
      hints += overview.hints_pending || 0;
      outOfSync += overview.partitions_out_of_sync || 0;
      oldest = Math.max(oldest, overview.oldest_divergence_s || 0);
      transfers += overview.transfers_in_flight || 0;
      if (overview.ring_change_pending) changing += 1;
    }
    const facts = el('dl', 'facts');
    facts.appendChild(fact('hints pending', integer.format(hints), hints > 0 ? 'warn' : ''));
    facts.appendChild(fact('repair',
      outOfSync > 0 ? plural(outOfSync, 'partition', 'partitions') + ' out of sync, oldest ' + formatSeconds(oldest) : 'in sync',
      outOfSync > 0 ? 'warn' : ''));
    facts.appendChild(fact('ring change',
      changing > 0 || transfers > 0
        ? 'pending on ' + plural(changing, 'node', 'nodes') + ', ' + plural(transfers, 'transfer', 'transfers') + ' in flight'
        : 'none in flight',
      changing > 0 || transfers > 0 ? 'warn' : ''));
    if (unreachable > 0) facts.appendChild(fact('unreachable', plural(unreachable, 'node', 'nodes'), 'bad'));
    return facts;
  }

  function nodeDetails(node, epochs, rates) {
    const overview = node.overview;
    const parts = [];
    const warnings = [];
    parts.push(overview.partitions_owned + ' owned / ' + overview.partitions_held + ' held partitions');
    if (overview.keys !== null && overview.keys !== undefined) parts.push(plural(overview.keys, 'key', 'keys'));
    if (rates) parts.push(formatRate(rates.ops, true) + ' ops/s');
    if (rates && rates.failures > 0) warnings.push(formatRate(rates.failures) + ' failures/s');
    parts.push(integer.format(overview.hints_pending || 0) + ' hints');
    if (overview.partitions_out_of_sync > 0) {
      warnings.push(plural(overview.partitions_out_of_sync, 'partition', 'partitions') +
        ' out of sync (oldest ' + formatSeconds(overview.oldest_divergence_s || 0) + ')');
    }
    if (overview.ring_change_pending) warnings.push('ring change pending');
    if (overview.transfers_in_flight > 0) warnings.push(plural(overview.transfers_in_flight, 'transfer', 'transfers') + ' in flight');
    const epochText = 'epoch ' + overview.ring_epoch;
    if (epochs.epoch !== null && overview.ring_epoch !== epochs.epoch) {
      warnings.push('ring ' + epochText + ' (most nodes: ' + epochs.epoch + ')');
    } else {
      parts.push(epochText);
    }
    return { parts, warnings };
  }

  function renderNode(node, epochs, rates) {
    const state = stateClass(node.state);
    const item = el('li', 'node node-' + state + (node.reachable ? '' : ' node-unreachable'));
    item.setAttribute('data-node', String(node.node));
    item.setAttribute('data-state', String(node.state));
    item.setAttribute('data-reachable', node.reachable === true ? 'true' : 'false');
    const head = el('div', 'node-head');
    head.appendChild(el('span', 'node-id', node.node));
    head.appendChild(el('span', 'badge badge-' + state, node.state));
    if (node.status && node.status !== 'member') head.appendChild(el('span', 'badge badge-status', node.status));
    item.appendChild(head);
    if (node.reachable && node.overview) {
      const details = nodeDetails(node, epochs, rates);
      const facts = el('div', 'node-facts');
      details.parts.forEach((part, index) => {
        if (index > 0) facts.appendChild(document.createTextNode(' · '));
        facts.appendChild(el('span', 'part', part));
      });
      item.appendChild(facts);
      for (const warning of details.warnings) item.appendChild(el('div', 'node-warn', warning));
    } else {
      item.appendChild(el('div', 'node-error', 'unreachable: ' + String(node.error || 'no answer')));
    }
    return item;
  }

  function renderRegion(region, nodes, context) {
    const card = el('article', 'region');
    card.setAttribute('data-region', region);
    const head = el('header', 'region-head');
    head.appendChild(el('h2', null, region));
    const alive = nodes.filter((node) => node.state === 'alive').length;
    head.appendChild(el('span', alive === nodes.length ? 'muted' : 'warn', alive + ' of ' + nodes.length + ' alive'));
    card.appendChild(head);
    const traffic = regionTraffic(context.history, region, context.ops, context.classes);
    const tiles = el('div', 'tiles');
    for (const op of context.ops) tiles.appendChild(opTile(op, traffic.byOp.get(op), context.bounds));
    card.appendChild(tiles);
    card.appendChild(sparkline(traffic.spark, context.nowMs, 'operations per second in ' + region));
    if (context.classes.length > 0) card.appendChild(classTable(traffic, context.ops, context.classes, context.bounds));
    card.appendChild(regionFacts(nodes));
    const list = el('ul', 'nodes');
    for (const node of nodes) list.appendChild(renderNode(node, context.epochs, context.history.nodeRates.get(node.node)));
    card.appendChild(list);
    return card;
  }

  function render(data, history, receivedMs) {
    const nodes = (Array.isArray(data.nodes) ? data.nodes.slice() : []).sort(byRegionThenNode);
    const epochs = commonEpoch(nodes);
    renderHeader(data, nodes, epochs, receivedMs);
    renderUnmet(data.unmet);
    const ops = [];
    const classes = [];
    for (const node of nodes) {
      for (const entry of (node.overview && node.overview.latency) || []) {
        ops.push(String(entry.op));
        classes.push(String(entry.class));
      }
    }
    const context = {
      history,
      bounds: history.bounds,
      ops: ordered(OP_ORDER.concat(ops), OP_ORDER),
      classes: ordered(classes, CLASS_ORDER),
      epochs,
      nowMs: Number.isFinite(data.generated_unix_ms) ? data.generated_unix_ms : receivedMs,
    };
    const regions = new Map();
    for (const node of nodes) {
      const region = String(node.region);
      if (!regions.has(region)) regions.set(region, []);
      regions.get(region).push(node);
    }
    const cards = Array.from(regions, ([region, members]) => renderRegion(region, members, context));
    document.getElementById('regions').replaceChildren(...cards);
    const root = document.getElementById('app');
    root.setAttribute('data-nodes', String(nodes.length));
    root.setAttribute('data-loaded', 'true');
  }

  function showPollFailure(failure, lastData) {
    const banner = document.getElementById('poll-banner');
    const root = document.getElementById('app');
    if (failure === null) {
      banner.hidden = true;
      root.classList.remove('stale');
      return;
    }
    const target = lastData ? String(lastData.served_by) : location.host;
    banner.textContent = 'cannot reach ' + target + ' (' + failure + ')' +
      (lastData ? '; showing the last data received' : '');
    banner.hidden = false;
    if (lastData) root.classList.add('stale');
  }

  // ---- Polling ----

  async function fetchCluster(timeoutMs) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    try {
      const response = await fetch(CLUSTER_PATH, {
        cache: 'no-store',
        credentials: 'same-origin',
        headers: { Accept: 'application/json' },
        signal: controller.signal,
      });
      if (!response.ok) throw new Error('HTTP ' + response.status);
      const data = await response.json();
      if (!data || typeof data !== 'object' || !Array.isArray(data.nodes)) {
        throw new Error('unexpected answer');
      }
      return data;
    } catch (error) {
      if (error && error.name === 'AbortError') throw new Error('no answer within ' + formatMs(timeoutMs));
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  function start() {
    const refreshMs = refreshFromQuery(location.search);
    const timeoutMs = Math.max(FETCH_TIMEOUT_MS_MIN, refreshMs);
    const history = makeHistory(refreshMs);
    let lastData = null;
    document.getElementById('refresh-note').textContent = 'refreshes every ' + formatMs(refreshMs) +
      '; rates from the last poll, percentiles and sparklines over the last ' + formatSeconds(WINDOW_MS / 1000) +
      ' (set ?refresh=ms)';
    async function poll() {
      const startedMs = Date.now();
      try {
        const data = await fetchCluster(timeoutMs);
        const receivedMs = Date.now();
        ingest(history, data, receivedMs);
        render(data, history, receivedMs);
        lastData = data;
        showPollFailure(null, lastData);
      } catch (error) {
        showPollFailure(String((error && error.message) || error), lastData);
        if (window.console) console.warn('cartwheel: poll failed:', error);
      }
      setTimeout(poll, Math.max(0, refreshMs - (Date.now() - startedMs)));
    }
    poll();
  }

  if (typeof document !== 'undefined') {
    start();
  } else if (typeof module !== 'undefined') {
    // For checking the arithmetic outside a browser (`node`); the page never takes this path.
    module.exports = { refreshFromQuery, deltaCounts, percentile, formatMs, ingest, makeHistory, regionTraffic };
  }
})();
