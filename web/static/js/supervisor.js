// The supervisor's pages: the ratings chart (uPlot, vendored in web/static/vendor/uplot/)
// and the self-refresh the page promises ("data-refresh" seconds on the element that says
// how old the figures are). Without JavaScript the tables are all there; only the chart
// and the refresh are missing.
import uPlot from "/static/vendor/uplot/uplot.esm.js";

function ratingsChart() {
  const holder = document.getElementById("ratings-chart");
  const source = document.getElementById("ratings-chart-data");
  if (!holder || !source) return;
  const data = JSON.parse(source.textContent);
  if (!data.labels.length) return;
  const xs = data.labels.map((_, i) => i);
  const options = {
    title: "Оценки по дням",
    width: Math.min(760, holder.parentElement.clientWidth || 760),
    height: 260,
    scales: {x: {time: false}, y: {range: [0, 100]}},
    axes: [
      {label: "День", values: (u, ticks) => ticks.map((t) => data.labels[t] ?? "")},
      {label: "Доля оценок, %", values: (u, ticks) => ticks.map((t) => t + " %")},
    ],
    series: [
      {label: "День", value: (u, i) => (i == null ? "—" : data.labels[i] + " (оценок: " + data.rated[i] + ")")},
      {label: "Ответ получен", stroke: "#1d4f91", width: 2, points: {size: 7},
       value: (u, v) => (v == null ? "—" : v + " %")},
      {label: "Удовлетворён", stroke: "#17803d", width: 2, dash: [6, 4], points: {size: 7},
       value: (u, v) => (v == null ? "—" : v + " %")},
    ],
  };
  new uPlot(options, [xs, data.answered, data.satisfied], holder);
}

async function refreshEvery() {
  // The figures, their age and the tables anew from the server, in place: no reload, no
  // lost scroll position.
  const marker = document.querySelector("[data-refresh]");
  if (!marker) return;
  setInterval(async () => {
    const resp = await fetch(window.location.href, {headers: {"Accept": "text/html"}});
    if (!resp.ok) return;
    const page = new DOMParser().parseFromString(await resp.text(), "text/html");
    for (const id of ["figures-age", "operators-age", "kpis", "wallboard", "operators-day"]) {
      const fresh = page.getElementById(id);
      const old = document.getElementById(id);
      if (fresh && old) old.replaceWith(fresh);
    }
  }, Number(marker.dataset.refresh) * 1000);
}

ratingsChart();
refreshEvery();
