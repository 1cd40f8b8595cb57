// krwatch status page: draws one card per key result from the JSON API and
// fetches the API again every data-refresh-seconds seconds. Every value from
// the API is inserted as text or as an SVG attribute, never as markup.
"use strict";

(function () {
  const SVG_NS = "http://www.w3.org/2000/svg";
  // Chart geometry in CSS pixels. The width follows the card, so labels keep
  // their size on a phone instead of shrinking with a fixed viewBox.
  const CHART = { width: 640, height: 260, left: 58, right: 14, top: 14, bottom: 30 };
  const MIN_CHART_WIDTH = 280;
  const MAX_CHART_WIDTH = 900;
  const PIXELS_PER_TIME_TICK = 70;
  const LABEL_CHARACTER_PIXELS = 6.2;
  const LABEL_GAP_PIXELS = 6;
  const HOUR_SECONDS = 3600;
  const DAY_SECONDS = 24 * HOUR_SECONDS;
  const TIME_STEPS_SECONDS = [
    HOUR_SECONDS, 3 * HOUR_SECONDS, 6 * HOUR_SECONDS, 12 * HOUR_SECONDS,
    DAY_SECONDS, 2 * DAY_SECONDS, 7 * DAY_SECONDS, 14 * DAY_SECONDS, 28 * DAY_SECONDS,
    91 * DAY_SECONDS,
  ];
  const STATUS_TEXT = {
    on_track: "On track",
    at_risk: "At risk",
    off_track: "Off track",
    insufficient_data: "Insufficient data",
    achieved: "Achieved",
    missed: "Missed",
  };
  const ENDPOINTS = {
    key_results: "/api/v1/key_results",
    alerts: "/api/v1/alerts",
    sources: "/api/v1/sources",
  };
  const refreshSeconds = Number(document.body.dataset.refreshSeconds) || 15;
  const RESIZE_DELAY_MILLISECONDS = 150;
  let lastData = null;
  const numberFormat = new Intl.NumberFormat("en", { maximumSignificantDigits: 4 });
  const compactFormat = new Intl.NumberFormat("en", {
    notation: "compact",
    maximumSignificantDigits: 3,
  });
  const dayFormat = new Intl.DateTimeFormat("en", {
    weekday: "short", day: "numeric", month: "short", timeZone: "UTC",
  });
  const hourFormat = new Intl.DateTimeFormat("en", {
    hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: "UTC",
  });
  const dateTimeFormat = new Intl.DateTimeFormat("en", {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit",
    minute: "2-digit", hourCycle: "h23", timeZone: "UTC", timeZoneName: "short",
  });

  // DOM helpers -------------------------------------------------------------

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined && text !== null) {
      node.textContent = String(text);
    }
    return node;
  }

  function svgElement(tag, attributes) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      node.setAttribute(name, String(value));
    }
    return node;
  }

  // Formatting --------------------------------------------------------------

  function isNumber(value) {
    return typeof value === "number" && Number.isFinite(value);
  }

  function formatNumber(value, unit) {
    if (!isNumber(value)) {
      return "–";
    }
    const text = Math.abs(value) >= 1e5 ? compactFormat.format(value) : numberFormat.format(value);
    return unit ? text + " " + unit : text;
  }

  function formatPercent(probability) {
    return isNumber(probability) ? Math.round(probability * 100) + "%" : "–";
  }

  function toDate(value) {
    if (value === null || value === undefined) {
      return null;
    }
    const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
    return Number.isNaN(date.getTime()) ? null : date;
  }

  function formatDateTime(value) {
    const date = toDate(value);
    return date ? dateTimeFormat.format(date) : "–";
  }

  function formatLabels(labels) {
    const pairs = Object.entries(labels || {}).filter(([name]) => name !== "alertname");
    return pairs.map(([name, value]) => name + "=" + value).join(", ");
  }

  // Chart -------------------------------------------------------------------

  function niceStep(range, count) {
    const raw = range / Math.max(count, 1);
    const magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const factor of [1, 2, 2.5, 5, 10]) {
      if (factor * magnitude >= raw) {
        return factor * magnitude;
      }
    }
    return 10 * magnitude;
  }

  function valueTicks(low, high) {
    const step = niceStep(high - low, 4);
    const ticks = [];
    for (let tick = Math.ceil(low / step) * step; tick <= high + step * 1e-9; tick += step) {
      ticks.push(Math.abs(tick) < step * 1e-9 ? 0 : tick);
    }
    return ticks;
  }

  function timeTicks(start, end, width) {
    const maxTicks = Math.max(2, Math.floor(width / PIXELS_PER_TIME_TICK));
    const step = TIME_STEPS_SECONDS.find((s) => (end - start) / s <= maxTicks)
      || TIME_STEPS_SECONDS[TIME_STEPS_SECONDS.length - 1];
    const ticks = [];
    for (let tick = Math.ceil(start / step) * step; tick <= end; tick += step) {
      ticks.push(tick);
    }
    return { ticks: ticks, daily: step >= DAY_SECONDS };
  }

  function valueRange(chart) {
    const values = [chart.target];
    for (const point of chart.actual.concat(chart.glide_path, chart.forecast_path)) {
      values.push(point[1]);
    }
    for (const band of [chart.band_80, chart.band_95]) {
      if (band) {
        values.push(band[0], band[1]);
      }
    }
    const finite = values.filter(isNumber);
    let low = Math.min.apply(null, finite);
    let high = Math.max.apply(null, finite);
    if (low === high) {
      low -= Math.abs(low) * 0.1 || 1;
      high += Math.abs(high) * 0.1 || 1;
    }
    const padding = (high - low) * 0.06;
    return [low - padding, high + padding];
  }

  function makeScales(chart, chartWidth) {
    const [low, high] = valueRange(chart);
    const width = chartWidth - CHART.left - CHART.right;
    const height = CHART.height - CHART.top - CHART.bottom;
    const span = Math.max(chart.due - chart.start, 1);
    return {
      low: low,
      high: high,
      width: chartWidth,
      x: (time) => CHART.left + ((time - chart.start) / span) * width,
      y: (value) => CHART.top + (1 - (value - low) / (high - low)) * height,
    };
  }

  function pathData(points, scales) {
    return points
      .map((point, index) => (index ? "L" : "M") + scales.x(point[0]).toFixed(1)
        + " " + scales.y(point[1]).toFixed(1))
      .join(" ");
  }

  function drawAxes(group, chart, scales) {
    const bottom = CHART.height - CHART.bottom;
    for (const tick of valueTicks(scales.low, scales.high)) {
      const y = scales.y(tick).toFixed(1);
      group.append(svgElement("line", {
        class: "grid", x1: CHART.left, x2: scales.width - CHART.right, y1: y, y2: y,
      }));
      const label = svgElement("text", { class: "tick y-tick", x: CHART.left - 6, y: y });
      label.textContent = formatNumber(tick);
      group.append(label);
    }
    const times = timeTicks(chart.start, chart.due, scales.width - CHART.left - CHART.right);
    // Labels are placed from right to left, so the due date keeps its label.
    // The rightmost label is anchored at its end to stay inside the chart,
    // and a label that would overlap the one to its right is left out.
    let nextLabelLeft = Infinity;
    for (const tick of times.ticks.slice().reverse()) {
      const x = scales.x(tick);
      group.append(svgElement("line", {
        class: "grid", x1: x.toFixed(1), x2: x.toFixed(1), y1: CHART.top, y2: bottom,
      }));
      const text = (times.daily ? dayFormat : hourFormat).format(new Date(tick * 1000));
      const halfWidth = (text.length * LABEL_CHARACTER_PIXELS) / 2;
      const atEdge = x + halfWidth > scales.width - CHART.right;
      const right = atEdge ? x : x + halfWidth;
      if (right + LABEL_GAP_PIXELS > nextLabelLeft) {
        continue;
      }
      nextLabelLeft = right - 2 * halfWidth;
      const label = svgElement("text", {
        class: atEdge ? "tick x-tick x-tick-end" : "tick x-tick",
        x: x.toFixed(1),
        y: bottom + 16,
      });
      label.textContent = text;
      group.append(label);
    }
  }

  function drawBand(group, chart, scales, band, className) {
    const origin = chart.forecast_path[0];
    if (!band || !origin) {
      return;
    }
    const points = [origin, [chart.due, band[0]], [chart.due, band[1]]];
    group.append(svgElement("path", { class: className, d: pathData(points, scales) + " Z" }));
  }

  function chartWidth(container) {
    const width = Math.round(container.clientWidth) || CHART.width;
    return Math.min(Math.max(width, MIN_CHART_WIDTH), MAX_CHART_WIDTH);
  }

  function drawChart(kr, width) {
    const chart = kr.chart;
    const scales = makeScales(chart, width);
    const root = svgElement("svg", {
      class: "chart",
      viewBox: "0 0 " + width + " " + CHART.height,
      role: "img",
      "aria-label": "Actual, glide path, target and forecast of " + kr.name,
    });
    const title = svgElement("title");
    title.textContent = kr.name + ": forecast " + formatNumber(kr.forecast, kr.unit)
      + " against target " + formatNumber(kr.target, kr.unit);
    root.append(title);

    drawAxes(root, chart, scales);
    drawBand(root, chart, scales, chart.band_95, "band band-95");
    drawBand(root, chart, scales, chart.band_80, "band band-80");
    const targetY = scales.y(chart.target).toFixed(1);
    root.append(svgElement("line", {
      class: "target", x1: CHART.left, x2: width - CHART.right, y1: targetY, y2: targetY,
    }));

    root.append(svgElement("path", { class: "glide", d: pathData(chart.glide_path, scales) }));
    if (chart.actual.length) {
      root.append(svgElement("path", { class: "actual", d: pathData(chart.actual, scales) }));
    }
    if (chart.forecast_path.length) {
      root.append(svgElement("path", { class: "forecast", d: pathData(chart.forecast_path, scales) }));
    }

    if (chart.evaluated_at >= chart.start && chart.evaluated_at <= chart.due) {
      const x = scales.x(chart.evaluated_at).toFixed(1);
      root.append(svgElement("line", {
        class: "now", x1: x, x2: x, y1: CHART.top, y2: CHART.height - CHART.bottom,
      }));
    }
    if (chart.expected_now) {
      root.append(svgElement("circle", {
        class: "expected", r: 4,
        cx: scales.x(chart.expected_now[0]).toFixed(1),
        cy: scales.y(chart.expected_now[1]).toFixed(1),
      }));
    }
    return root;
  }

  function legend() {
    const list = element("ul", "legend");
    for (const [className, text] of [
      ["actual", "actual"], ["glide", "glide path"], ["target", "target"],
      ["forecast", "forecast"], ["band-80", "80% band"], ["band-95", "95% band"],
    ]) {
      const item = element("li");
      item.append(element("span", "swatch swatch-" + className), document.createTextNode(text));
      list.append(item);
    }
    return list;
  }

  // Cards and tables --------------------------------------------------------

  function fact(list, term, value) {
    list.append(element("dt", null, term), element("dd", null, value));
  }

  // Once the target is met, the run rate is room to spare, not a need. A
  // cumulative key result then needs nothing more. A level one may move
  // away from the target by up to the rate per day and still meet it.
  function runRateFact(kr) {
    const rate = kr.required_run_rate;
    if (!isNumber(rate)) {
      return ["Needed per day", "–"];
    }
    if (kr.measure === "cumulative") {
      return rate > 0
        ? ["Needed per day", formatNumber(rate, kr.unit)]
        : ["Needed per day", "none, the target is booked"];
    }
    const met = kr.direction === "increase" ? rate <= 0 : rate >= 0;
    return met
      ? ["Room per day", formatNumber(Math.abs(rate), kr.unit)]
      : ["Needed per day", formatNumber(rate, kr.unit)];
  }

  function bandText(low, high, unit) {
    return isNumber(low) && isNumber(high)
      ? formatNumber(low) + " – " + formatNumber(high, unit)
      : "–";
  }

  function card(kr) {
    const article = element("article", "card status-" + kr.status);
    article.dataset.keyResult = kr.name;
    const header = element("header", "card-header");
    const heading = element("div");
    heading.append(
      element("h3", null, kr.name),
      element("p", "meta", kr.objective + " · owner " + kr.owner),
    );
    const summary = element("div", "summary");
    summary.append(
      element("span", "probability", formatPercent(kr.attainment_probability)),
      element("span", "badge badge-" + kr.status, STATUS_TEXT[kr.status] || kr.status),
    );
    header.append(heading, summary);
    const holder = element("div", "chart-holder");
    article.append(header, holder, legend());

    const facts = element("dl", "facts");
    fact(facts, "Current", formatNumber(kr.current, kr.unit));
    fact(facts, "Target", formatNumber(kr.target, kr.unit));
    fact(facts, "Forecast", formatNumber(kr.forecast, kr.unit));
    fact(facts, "80% band", bandText(kr.lower_80, kr.upper_80, kr.unit));
    fact(facts, "95% band", bandText(kr.lower_95, kr.upper_95, kr.unit));
    const ahead = isNumber(kr.shortfall) && kr.shortfall < 0;
    fact(
      facts,
      ahead ? "Ahead of target by" : "Shortfall",
      formatNumber(ahead ? -kr.shortfall : kr.shortfall, kr.unit),
    );
    fact(facts, ...runRateFact(kr));
    fact(facts, "Decide by", formatDateTime(kr.decide_by));
    fact(facts, "Progress", formatPercent(kr.progress) + " (expected " + formatPercent(kr.expected_progress) + ")");
    fact(facts, "Due", formatDateTime(kr.due));
    article.append(facts);
    if (kr.reason) {
      article.append(element("p", "reason", kr.reason));
    }
    return article;
  }

  // ``labels`` name each cell, so a phone can show a row as a stacked list.
  function row(cells, labels) {
    const tr = element("tr");
    cells.forEach((cell, index) => {
      const td = cell instanceof Node ? cell : element("td", null, cell);
      if (labels) {
        td.dataset.label = labels[index];
      }
      tr.append(td);
    });
    return tr;
  }

  const ALERT_COLUMNS = ["State", "Alert", "Labels", "Active since", "Value", "Blast radius"];
  const SOURCE_COLUMNS = ["Source", "Type", "Health", "Last success", "Polls", "Last error"];

  function emptyRow(text, columns) {
    const cell = element("td", "empty", text);
    cell.colSpan = columns;
    return row([cell]);
  }

  function blastRadius(radius) {
    const cell = element("td", "blast");
    const parts = [
      ["KPIs", radius.kpis], ["downstream", radius.downstream_kpis],
      ["key results", radius.key_results],
    ];
    for (const [label, names] of parts) {
      const line = element("div");
      line.append(element("span", "blast-label", label + ": "),
        document.createTextNode(names.length ? names.join(", ") : "none"));
      cell.append(line);
    }
    return cell;
  }

  function alertRows(alerts) {
    if (!alerts.length) {
      return [emptyRow("No alerts are firing or pending.", 6)];
    }
    return alerts.map((alert) => {
      const state = element("td");
      state.append(element("span", "badge badge-" + alert.state, alert.state));
      return row([
        state, alert.alert, formatLabels(alert.labels), formatDateTime(alert.active_at),
        formatNumber(alert.value), blastRadius(alert.blast_radius),
      ], ALERT_COLUMNS);
    });
  }

  function sourceRows(sources) {
    if (!sources.length) {
      return [emptyRow("No sources are configured.", 6)];
    }
    return sources.map((source) => {
      const health = element("td");
      health.append(element("span", "badge badge-" + (source.up ? "up" : "failing"),
        source.up ? "up" : "failing"));
      return row([
        source.name, source.type, health, formatDateTime(source.last_success),
        String(source.polls), source.last_error || "",
      ], SOURCE_COLUMNS);
    });
  }

  function drawCharts(krs) {
    const holders = document.querySelectorAll("#key-results .chart-holder");
    holders.forEach((holder, index) => {
      holder.replaceChildren(drawChart(krs[index], chartWidth(holder)));
    });
  }

  function render(data) {
    lastData = data;
    const cards = document.getElementById("key-results");
    const krs = data.key_results || [];
    cards.replaceChildren.apply(cards, krs.length
      ? krs.map(card)
      : [element("p", "empty", "No key result has been evaluated yet.")]);
    // Charts are drawn once the cards are in the document, so each chart
    // can take its card's width.
    drawCharts(krs);
    const alerts = document.getElementById("alerts");
    alerts.replaceChildren.apply(alerts, alertRows(data.alerts || []));
    const sources = document.getElementById("sources");
    sources.replaceChildren.apply(sources, sourceRows(data.sources || []));
    document.body.dataset.renderedAt = String(Date.now());
  }

  // Refresh -----------------------------------------------------------------

  async function fetchData(url) {
    const response = await fetch(url, { cache: "no-store", headers: { Accept: "application/json" } });
    if (!response.ok) {
      throw new Error(url + " returned HTTP " + response.status);
    }
    const body = await response.json();
    if (body.status !== "success") {
      throw new Error(url + " returned status " + body.status);
    }
    return body.data;
  }

  function setUpdated(text, stale) {
    const updated = document.getElementById("updated");
    updated.textContent = text;
    updated.classList.toggle("stale", stale);
  }

  async function refresh() {
    if (!document.hidden) {
      try {
        const [keyResults, alerts, sources] = await Promise.all([
          fetchData(ENDPOINTS.key_results),
          fetchData(ENDPOINTS.alerts),
          fetchData(ENDPOINTS.sources),
        ]);
        render({
          key_results: keyResults.key_results,
          alerts: alerts.alerts,
          sources: sources.sources,
        });
        setUpdated("Updated " + formatDateTime(Date.now() / 1000)
          + "; refreshes every " + refreshSeconds + " s.", false);
      } catch (error) {
        setUpdated("Refresh failed (" + error.message + "); retrying in "
          + refreshSeconds + " s.", true);
      }
    }
    window.setTimeout(refresh, refreshSeconds * 1000);
  }

  let resizeTimer = null;
  window.addEventListener("resize", () => {
    window.clearTimeout(resizeTimer);
    resizeTimer = window.setTimeout(() => {
      if (lastData) {
        drawCharts(lastData.key_results || []);
      }
    }, RESIZE_DELAY_MILLISECONDS);
  });

  const initial = JSON.parse(document.getElementById("initial-data").textContent);
  render(initial);
  setUpdated("Updated " + formatDateTime(initial.generated_at)
    + "; refreshes every " + refreshSeconds + " s.", false);
  window.setTimeout(refresh, refreshSeconds * 1000);
})();
