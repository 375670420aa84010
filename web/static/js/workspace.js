// The operator's workspace (web/templates/workspace.html): the agent state and the call's
// clocks, the card popped while the phone rings, the card's panes, the knowledge base, and
// the keyboard shortcuts. The page works without this module: the state buttons are a
// plain form.
//
// Hook for the browser phone: Alt+A and Alt+H dispatch "seat:answer" and "seat:hangup" on
// document; the phone listens for them. The phone may dispatch "seat:phone" with
// {detail: {text}} to show its own status in the live line.

const seat = document.getElementById("seat");
const csrf = seat.dataset.csrf;
const card = document.getElementById("card");
const live = document.getElementById("live");
const stateLine = document.getElementById("agent-state");
const survey = document.getElementById("to-survey");
let shown = "";  // the query of the card on screen

function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const mm = String(Math.floor(s / 60) % 60).padStart(2, "0");
  const ss = String(s % 60).padStart(2, "0");
  return (s >= 3600 ? Math.floor(s / 3600) + ":" : "") + mm + ":" + ss;
}

function tick() {
  const now = Date.now();
  const since = stateLine.dataset.since;
  document.getElementById("state-clock").textContent =
    since ? clock((now - Date.parse(since)) / 1000) : "";
  const timer = document.getElementById("call-timer");
  timer.textContent = timer.dataset.since ? clock((now - Date.parse(timer.dataset.since)) / 1000) : "—";
  const left = document.getElementById("wrapup-left");
  if (left.dataset.until) {
    const rest = (Date.parse(left.dataset.until) - now) / 1000;
    left.textContent = rest > 0 ? "осталось " + clock(rest) : "";
  }
}

function say(text) { live.textContent = text; }

async function refreshDay() {
  // My day anew after every change of state: the talk time and the pauses stay current.
  const resp = await fetch("/panel/workspace");
  if (!resp.ok) return;
  const fresh = new DOMParser().parseFromString(await resp.text(), "text/html")
    .getElementById("my-day");
  const old = document.getElementById("my-day");
  if (fresh && old) old.replaceWith(fresh);
}

function setState(item) {
  stateLine.dataset.state = item.state;
  stateLine.dataset.since = item.since || new Date().toISOString();
  stateLine.className = "state state-" + item.state;
  document.getElementById("state-label").textContent = item.label;
  if (item.state !== "wrapup") {
    document.getElementById("wrapup").hidden = true;
    document.getElementById("wrapup-left").dataset.until = "";
  }
  tick();
}

async function post(url, data) {
  const resp = await fetch(url, {method: "POST", body: new URLSearchParams(data),
                                 headers: {"X-CSRF-Token": csrf}});
  return resp.json();
}

function show(out, answer) {
  out.textContent = answer.error || answer.ok;
  out.className = answer.error ? "error" : "ok";
}

async function showCall(call, ringing) {
  say((ringing ? "Звонит: " : "Разговор: ") + (call.caller_display || call.caller || "номер скрыт"));
  const timer = document.getElementById("call-timer");
  timer.dataset.since = ringing ? "" : (call.since || new Date().toISOString());
  survey.dataset.linkedid = call.linkedid || "";
  survey.hidden = ringing || !call.linkedid;
  const query = new URLSearchParams({linkedid: call.linkedid || "", caller: call.caller || "",
                                     queue: call.queue || ""}).toString();
  if (query === shown) return;   // the ring's card stays when the call is answered
  shown = query;
  const resp = await fetch("/panel/workspace/card?" + query);
  card.innerHTML = await resp.text();
  wireCard();
}

async function refresh(ids) {
  // After a booking, a cancellation or a callback: those parts of the card anew; the rest
  // (a journal entry being typed) stays as it is.
  const resp = await fetch("/panel/workspace/card?" + shown);
  if (!resp.ok) return;
  const page = new DOMParser().parseFromString(await resp.text(), "text/html");
  for (const id of ids) {
    const fresh = page.getElementById(id);
    const old = document.getElementById(id);
    if (fresh && old) old.replaceWith(fresh);
  }
  wireCancels();
}

function selectTab(tab) {
  for (const other of card.querySelectorAll("[role=tab]")) {
    const on = other === tab;
    other.setAttribute("aria-selected", on ? "true" : "false");
    document.getElementById(other.getAttribute("aria-controls")).hidden = !on;
  }
}

const FORMS = {journal: "/panel/workspace/journal", transfer: "/panel/workspace/transfer",
               callback: "/panel/workspace/callback", book: "/panel/workspace/book"};

function wireCard() {
  const tabs = card.querySelectorAll("[role=tab]");
  for (const tab of tabs) tab.addEventListener("click", () => selectTab(tab));
  if (tabs.length) selectTab(tabs[0]);
  for (const [id, url] of Object.entries(FORMS)) {
    const form = document.getElementById(id + "-form");
    if (!form) continue;
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const answer = await post(url, new FormData(form));
      show(document.getElementById(id + "-result"), answer);
      if (id === "transfer" && answer.used !== undefined) {
        document.getElementById("transfers-used").textContent = answer.used;
      }
      if (id === "book" && !answer.error) refresh(["card-bookings"]);
      if (id === "callback" && !answer.error) refresh(["card-callbacks"]);
    });
  }
  const slots = document.getElementById("load-slots");
  if (slots) slots.addEventListener("click", loadSlots);
  wireCancels();
}

async function loadSlots() {
  // The official and the dates picked narrow the list (R-P2); the officials come with the
  // first answer.
  const official = document.getElementById("book-official");
  const query = new URLSearchParams({official_id: official.value,
    date_from: document.getElementById("book-from").value,
    date_to: document.getElementById("book-to").value});
  const answer = await (await fetch("/panel/workspace/slots?" + query)).json();
  const select = document.getElementById("book-slots");
  if (answer.error) {
    select.replaceChildren(new Option(answer.error, ""));
    return;
  }
  if (official.options.length === 1) {
    official.append(...answer.officials.map((o) => new Option(o.label, o.id)));
  }
  select.replaceChildren(...answer.items.map((s) => new Option(s.label, s.id)));
  if (!answer.items.length) select.replaceChildren(new Option("нет свободного времени", ""));
}

function wireCancels() {
  for (const button of document.querySelectorAll(".cancel-booking:not([data-wired])")) {
    button.dataset.wired = "1";
    button.addEventListener("click", async () => {
      // A minister's time is not given up by a slip of the mouse (R-P4).
      if (!window.confirm("Отменить запись № " + button.dataset.booking + " на " +
                          button.dataset.when + "? Время сразу станет свободным.")) return;
      const answer = await post("/panel/workspace/cancel-booking",
                                {booking_id: button.dataset.booking});
      show(document.getElementById("cancel-booking-result"), answer);
      if (!answer.error) refresh(["card-bookings"]);
    });
  }
}

function toJournal(item) {
  // «в журнал»: the journal pane opens, the field is filled, lit and focused.
  const journalTab = document.getElementById("tab-journal");
  if (!journalTab) {
    say("Карточки звонка нет: статью можно добавить, когда звонок поступит.");
    return;
  }
  selectTab(journalTab);
  const pick = (selector) => document.querySelector("#journal-form " + selector);
  let field;
  if (item.agency) {   // referred to another body (R-H7)
    field = pick("select[name=agency_id]");
    field.value = item.id;
    pick("select[name=outcome]").value = "referred_to_agency";
  } else {
    field = pick("input[name=article_id]");
    field.value = item.id;
  }
  field.classList.remove("filled");
  void field.offsetWidth;   // restart the highlight
  field.classList.add("filled");
  field.focus();
  document.getElementById("journal-result").textContent =
    (item.agency ? "Ведомство" : "Статья") + " «" + item.title + "» добавлена в журнал.";
}

async function searchKb(ev) {
  ev.preventDefault();
  const q = new FormData(ev.target).get("q");
  const answer = await (await fetch("/panel/workspace/kb?q=" + encodeURIComponent(q))).json();
  document.getElementById("kb-results").replaceChildren(...answer.items.map((a) => {
    const li = document.createElement("li");
    const link = document.createElement("a");
    link.href = a.agency ? "/panel/kb/agencies#agency-" + a.id : "/panel/kb/articles/" + a.id;
    link.target = "_blank";
    link.textContent = (a.agency ? "Ведомство: " : "") + a.title;
    const use = document.createElement("button");
    use.type = "button";
    use.textContent = "в журнал";
    use.addEventListener("click", () => toJournal(a));
    const body = document.createElement("div");
    body.className = "muted";
    body.textContent = a.body;
    li.append(link, " ", use, body);
    return li;
  }));
}

function listen() {
  const events = new EventSource("/panel/live");
  const on = (name, fn) => events.addEventListener(name, (ev) => fn(JSON.parse(ev.data)));
  on("ringing", (call) => showCall(call, true));
  on("call", (call) => showCall(call, false));
  on("missed", () => say("Звонок ушёл к другому оператору или гражданин положил трубку."));
  on("ended", () => {
    say("Разговор завершён: заполните журнал.");
    document.getElementById("call-timer").dataset.since = "";
    survey.hidden = true;
  });
  on("wrapup", (item) => {
    document.getElementById("wrapup").hidden = false;
    document.getElementById("wrapup-left").dataset.until = item.until;
    say("Поствызывная обработка: новые звонки придут после сохранения журнала.");
  });
  on("ready", () => say("Вы снова принимаете звонки."));
  on("state", (item) => {
    setState(item);
    refreshDay();
  });
  on("transfer", (item) => {
    const out = document.getElementById("transfer-result");
    const text = item.outcome === "answered"
      ? "Коллега ответил: звонок передан."
      : "Коллега не ответил: гражданин возвращён в очередь, перевод не засчитан.";
    if (out) show(out, item.outcome === "answered" ? {ok: text} : {error: text});
    // The operator's own part has ended by now: the line keeps saying so, unless the
    // caller came back to the queue.
    if (item.outcome !== "answered") say(text);
  });
}

function shortcuts(ev) {
  if (!ev.altKey || ev.ctrlKey || ev.metaKey) return;
  const status = document.getElementById("status");
  const keys = {
    r: () => status.querySelector("button[value=ready]").click(),
    p: () => status.querySelector("button[value=pause]").click(),
    s: () => document.getElementById("journal-form")?.requestSubmit(),
    a: () => document.dispatchEvent(new CustomEvent("seat:answer")),
    h: () => document.dispatchEvent(new CustomEvent("seat:hangup")),
  };
  const action = keys[ev.key.toLowerCase()] || keys[ev.code.replace("Key", "").toLowerCase()];
  if (action) {
    ev.preventDefault();
    action();
  }
}

survey.addEventListener("click", async () => {
  const answer = await post("/panel/workspace/survey", {linkedid: survey.dataset.linkedid});
  say(answer.error || answer.ok);
  if (!answer.error) survey.hidden = true;
});
document.getElementById("kb-search").addEventListener("submit", searchKb);
document.addEventListener("keydown", shortcuts);
document.addEventListener("seat:phone", (ev) => say(ev.detail.text));
if (card.dataset.linkedid) {
  showCall({linkedid: card.dataset.linkedid, caller: card.dataset.caller,
            queue: card.dataset.queue, since: document.getElementById("call-timer").dataset.since},
           !document.getElementById("call-timer").dataset.since);
}
listen();
tick();
setInterval(tick, 1000);
