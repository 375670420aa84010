// The live wallboard (web/templates/wallboard.html): the board comes over Server-Sent Events
// from /panel/wallboard/live at every change; the clocks tick here. Supervisors get the
// listen / whisper / barge buttons (POST /panel/wallboard/spy), which ring their own phone.

const root = document.getElementById("wallboard");
const csrf = root.dataset.csrf;
const canSpy = root.dataset.canSpy === "1" && !document.body.classList.contains("tv");
const status = document.getElementById("board-status");
const MODES = [["listen", "Слушать"], ["whisper", "Подсказать"], ["barge", "Вмешаться"]];
let offset = Number(root.dataset.now) * 1000 - Date.now();   // the server's clock, ms
let connected = null;

function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const mm = String(Math.floor(s / 60) % 60).padStart(2, "0");
  const ss = String(s % 60).padStart(2, "0");
  return (s >= 3600 ? Math.floor(s / 3600) + ":" : "") + mm + ":" + ss;
}

function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function since(td, value) {
  td.classList.add("clock");
  td.dataset.since = value === null || value === undefined ? "" : String(value);
}

function percent(value) {
  return value === null || value === undefined ? "—" : Math.round(value * 100) + " %";
}

function renderQueues(queues) {
  const body = document.getElementById("board-queues");
  body.replaceChildren();
  for (const q of queues) {
    const row = body.insertRow();
    row.dataset.queue = q.queue;
    cell(row, q.title);
    cell(row, String(q.waiting), "num waiting");
    since(cell(row, "—", "num"), q.longest_since);
    cell(row, percent(q.service_level), "num");
    cell(row, String(q.abandoned ?? 0), "num");
  }
}

function spyButtons(td, operator) {
  td.className = "spy";
  for (const [mode, label] of MODES) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = label;
    button.addEventListener("click", () => spy(operator, mode));
    td.append(button);
  }
}

function renderOperators(operators) {
  const body = document.getElementById("board-operators");
  body.replaceChildren();
  if (!operators.length) {
    cell(body.insertRow(), "Никто из операторов не в очередях.").colSpan = 3;
  }
  for (const o of operators) {
    const row = body.insertRow();
    row.className = "state-" + o.state;
    row.dataset.extension = o.extension;
    cell(row, o.name);
    cell(row, o.label);
    since(cell(row, "", "num"), o.since);
    if (canSpy) {
      const td = cell(row, "");
      if (o.spy) spyButtons(td, o.extension);
    }
  }
}

function render(board) {
  offset = board.now * 1000 - Date.now();
  renderQueues(board.queues);
  renderOperators(board.operators);
  document.getElementById("board-ivr").textContent = String(board.ivr);
  if (board.connected !== connected) {   // a listening message stays until it changes
    connected = board.connected;
    say(connected ? "" : "Нет связи с Asterisk: табло не обновляется.", !connected);
  }
  tick();
}

function tick() {
  const now = (Date.now() + offset) / 1000;
  for (const td of root.querySelectorAll("td.clock")) {
    td.textContent = td.dataset.since ? clock(now - Number(td.dataset.since)) : "—";
  }
  document.getElementById("board-clock").textContent =
    new Date(now * 1000).toLocaleTimeString("ru-RU");
}

function say(text, error) {
  status.textContent = text;
  status.classList.toggle("error", Boolean(error));
}

async function spy(operator, mode) {
  const body = new URLSearchParams({operator, mode});
  const response = await fetch("/panel/wallboard/spy", {
    method: "POST", body, headers: {"X-CSRF-Token": csrf}});
  const answer = await response.json().catch(() => ({}));
  say(response.ok ? answer.message : (answer.error || "Не получилось."), !response.ok);
}

const events = new EventSource("/panel/wallboard/live");
events.addEventListener("board", (event) => render(JSON.parse(event.data)));
events.addEventListener("error", () => {
  say("Связь с сервером прервалась: переподключение…", true);
});
setInterval(tick, 1000);
tick();
