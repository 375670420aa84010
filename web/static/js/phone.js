// The phone in the workspace (issue 29; docs/webrtc.md): JsSIP registers the operator's own
// extension with Asterisk over SIP-over-WebSocket. The SIP password comes from
// /panel/phone/credentials for this session and lives in memory only. One tab per operator
// holds the phone (Web Locks); the others say so and take over when it closes.
import JsSIP from "../vendor/jssip/jssip.min.js";

const root = document.getElementById("phone");
const $ = (id) => document.getElementById(id);
const extension = root ? root.dataset.extension : "";
const AUTO_KEY = `hotline.phone.autoAnswer.${extension}`;
// Asterisk's featuremap (config/asterisk/features.conf): every transfer passes the gate.
const ATTENDED_CODE = "*2";
const ANNOUNCE_MS = 1500;  // Asterisk's «наберите номер» prompt, before the number
const DTMF = {transportType: "RFC2833", duration: 120, interToneGap: 80};

const MICROPHONE = {
  NotAllowedError: "Браузер не дал доступ к микрофону. Разрешите микрофон для этого сайта " +
    "(значок слева от адреса) и обновите страницу.",
  SecurityError: "Браузер не дал доступ к микрофону. Разрешите микрофон для этого сайта " +
    "(значок слева от адреса) и обновите страницу.",
  NotFoundError: "Микрофон не найден: подключите гарнитуру и обновите страницу.",
  OverconstrainedError: "Микрофон не найден: подключите гарнитуру и обновите страницу.",
  NotReadableError: "Микрофон занят другой программой или неисправен: закройте её " +
    "или переподключите гарнитуру и обновите страницу.",
  AbortError: "Микрофон занят другой программой или неисправен: закройте её " +
    "или переподключите гарнитуру и обновите страницу.",
};
const ENDED = {
  Busy: "Звонок отклонён.", Canceled: "Вызов снят до ответа.",
  "No Answer": "Звонок не принят.", Unavailable: "Звонок не принят.",
  "Connection Error": "Разговор прерван: нет связи с телефонной станцией.",
  "User Denied Media Access": MICROPHONE.NotAllowedError,
  "Incompatible SDP": "Звонок не состоялся: браузер и станция не договорились о звуке. " +
    "Сообщите администратору.",
  "WebRTC Error": "Звонок не состоялся: ошибка звука в браузере. Обновите страницу.",
};
const FAILED = "Звонок не состоялся: ошибка соединения. Если повторится — сообщите администратору.";

let ua = null;
let session = null;
let timer = null;
let ringing = null;
let autoAnswer = null;

function say(text) { $("phone-state").textContent = text; }

function showAlert(text) {
  const box = $("phone-alert");
  box.textContent = text || "";
  box.hidden = !text;
}

function enable(ids, on) {
  for (const id of ids) $(id).disabled = !on;
}

function setInCall(on) {
  enable(["phone-hold", "phone-mute"], on);
  for (const b of root.querySelectorAll("#phone-keypad button, #phone-transfer button")) {
    b.disabled = !on;
  }
}

// --- ringing: a short generated tone and a browser notification ---------------------------

// Browsers let a page sound only after a click in it: the operator's first click (Готов,
// a tab) unlocks the ringing for the rest of the page's life.
let sound = null;
function audio() {
  sound = sound || new AudioContext();
  sound.resume().catch(() => {});
  return sound;
}
document.addEventListener("pointerdown", audio, {once: true});

function startRinging(caller) {
  root.dataset.ringing = "";
  const context = audio();
  const beep = () => {
    for (const at of [0, 0.5]) {
      const tone = context.createOscillator();
      const gain = context.createGain();
      tone.frequency.value = 425;
      gain.gain.value = 0.15;
      tone.connect(gain).connect(context.destination);
      tone.start(context.currentTime + at);
      tone.stop(context.currentTime + at + 0.35);
    }
  };
  beep();
  const every = setInterval(beep, 2500);
  let note = null;
  if ("Notification" in window && Notification.permission === "granted") {
    note = new Notification("Входящий звонок", {body: caller, tag: "hotline-call"});
    note.onclick = () => window.focus();
  }
  ringing = () => { clearInterval(every); if (note) note.close(); };
}

function stopRinging() {
  delete root.dataset.ringing;
  if (ringing) ringing();
  ringing = null;
}

// --- the call timer --------------------------------------------------------------------------

function startTimer() {
  const shown = $("phone-timer");
  const since = Date.now();
  const tick = () => {
    const s = Math.floor((Date.now() - since) / 1000);
    shown.textContent = `${String(Math.floor(s / 60)).padStart(2, "0")}:` +
      String(s % 60).padStart(2, "0");
  };
  tick();
  // The console's own call timer (the workspace's top bar) shows the same call.
  shown.hidden = Boolean(document.getElementById("call-timer"));
  timer = setInterval(tick, 1000);
}

function stopTimer() {
  clearInterval(timer);
  timer = null;
}

// --- one call ------------------------------------------------------------------------------

function callerOf(incoming) {
  const who = incoming.remote_identity;
  return who.display_name && who.display_name !== who.uri.user
    ? `${who.display_name} (${who.uri.user})` : (who.uri.user || "номер скрыт");
}

function finish(text) {
  stopRinging();
  stopTimer();
  clearTimeout(autoAnswer);
  session = null;
  enable(["phone-answer", "phone-hangup"], false);
  setInCall(false);
  untoggle("phone-hold");
  untoggle("phone-mute");
  say(text);
}

function onIncoming(incoming) {
  if (session) {   // one call at a time: the queue offers the next one later
    incoming.terminate({status_code: 486, reason_phrase: "Busy Here"});
    return;
  }
  session = incoming;
  const caller = callerOf(incoming);
  say(`Входящий звонок: ${caller}`);
  showAlert("");
  enable(["phone-answer", "phone-hangup"], true);
  startRinging(caller);
  const seconds = Number(localStorage.getItem(AUTO_KEY) || 0);
  if (seconds > 0) autoAnswer = setTimeout(answer, seconds * 1000);
  incoming.on("peerconnection", (e) => {
    e.peerconnection.addEventListener("track", (t) => { $("phone-audio").srcObject = t.streams[0]; });
  });
  incoming.on("accepted", () => {
    stopRinging();
    enable(["phone-answer"], false);
    setInCall(true);
    startTimer();
    say(`Разговор: ${caller}`);
  });
  incoming.on("ended", () => finish("Разговор завершён."));
  incoming.on("failed", (e) => finish(ENDED[e.cause] || FAILED));
  incoming.on("hold", () => say(`Удержание: ${caller}`));
  incoming.on("unhold", () => say(`Разговор: ${caller}`));
}

function answer() {
  clearTimeout(autoAnswer);
  if (!session || session.isEstablished()) return;
  session.answer({mediaConstraints: {audio: true, video: false},
                  pcConfig: {iceServers: []}});
}

// The button says what pressing it does: its label swaps with data-other.
function toggle(id, on, off) {
  const button = $(id);
  const pressed = button.getAttribute("aria-pressed") !== "true";
  (pressed ? on : off)();
  button.setAttribute("aria-pressed", String(pressed));
  [button.textContent, button.dataset.other] = [button.dataset.other, button.textContent];
}

function untoggle(id) {
  const button = $(id);
  if (button.getAttribute("aria-pressed") === "true") {
    button.setAttribute("aria-pressed", "false");
    [button.textContent, button.dataset.other] = [button.dataset.other, button.textContent];
  }
}

async function transfer(kind, target) {
  const out = $("phone-transfer-result");
  if (!/^[0-9]{2,6}$/.test(target)) {
    out.textContent = "Номер коллеги — от 2 до 6 цифр.";
    return;
  }
  if (kind === "attended") {
    // The phone's own attended transfer: Asterisk sends the consultation through the gate.
    session.sendDTMF(ATTENDED_CODE, DTMF);
    setTimeout(() => session && session.sendDTMF(target, DTMF), ANNOUNCE_MS);
    out.textContent = "Консультация: когда коллега ответит, нажмите «Завершить», чтобы " +
      "передать звонок; *1 на клавиатуре — вернуться к гражданину.";
    return;
  }
  const body = new URLSearchParams({extension: target, note: ""});
  try {
    const [, reply] = await panelJson("/panel/workspace/transfer", {
      method: "POST", body, headers: {"X-CSRF-Token": root.dataset.csrf}});
    out.textContent = reply.error || reply.ok;
  } catch (err) {
    out.textContent = err.message;
  }
}

function wireControls() {
  $("phone-answer").addEventListener("click", answer);
  $("phone-hangup").addEventListener("click", () => session && session.terminate());
  $("phone-hold").addEventListener("click", () => toggle("phone-hold",
    () => session.hold(), () => session.unhold()));
  $("phone-mute").addEventListener("click", () => toggle("phone-mute",
    () => session.mute({audio: true}), () => session.unmute({audio: true})));
  for (const key of root.querySelectorAll("#phone-keypad button")) {
    key.addEventListener("click", () => session && session.sendDTMF(key.dataset.key, DTMF));
  }
  $("phone-transfer").addEventListener("submit", (ev) => {
    ev.preventDefault();
    transfer(ev.submitter ? ev.submitter.value : "blind", $("phone-transfer-to").value.trim());
  });
  const auto = $("phone-auto");
  auto.value = localStorage.getItem(AUTO_KEY) || "0";
  auto.addEventListener("change", () => localStorage.setItem(AUTO_KEY, auto.value));
  const notify = $("phone-notify");
  notify.hidden = !("Notification" in window) || Notification.permission !== "default";
  notify.addEventListener("click", async () => {
    await Notification.requestPermission();
    notify.hidden = Notification.permission !== "default";
  });
}

// --- registration ---------------------------------------------------------------------------

async function microphoneProblem() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return "Браузер не даёт странице микрофон: откройте панель по https (или на этом " +
      "компьютере по адресу 127.0.0.1).";
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({audio: true});
    for (const track of stream.getTracks()) track.stop();
    return "";
  } catch (err) {
    return MICROPHONE[err.name] || "Микрофон недоступен: проверьте гарнитуру и обновите страницу.";
  }
}

async function panelJson(url, options) {
  let reply;
  try {
    reply = await fetch(url, options);
    return [reply.ok, await reply.json()];
  } catch {
    // A network failure, or an expired session's login page instead of JSON.
    throw new Error(reply ? "Сеанс истёк: обновите страницу и войдите снова."
      : "Панель недоступна: проверьте сеть и обновите страницу.");
  }
}

async function credentials() {
  const [ok, body] = await panelJson("/panel/phone/credentials", {cache: "no-store"});
  if (!ok) throw new Error(body.error || "Телефон в браузере недоступен.");
  if (!body.available) throw new Error(body.reason);
  return body;
}

function register(own) {
  ua = new JsSIP.UA({
    sockets: [new JsSIP.WebSocketInterface(own.ws_url)],
    uri: own.uri, authorization_user: own.extension, password: own.password,
    display_name: own.display_name, register_expires: own.register_expires,
    session_timers: false, user_agent: "hotline-panel",
    connection_recovery_min_interval: 1, connection_recovery_max_interval: 10,
  });
  ua.on("registered", () => {
    showAlert("");
    if (!session) say(`Телефон готов: номер ${own.extension}.`);
  });
  ua.on("unregistered", () => { if (!session) say("Телефон не зарегистрирован."); });
  ua.on("registrationFailed", (e) => showAlert(e.cause === JsSIP.C.causes.AUTHENTICATION_ERROR
    ? "Станция не приняла пароль телефона: обновите страницу; если не поможет — " +
      "обратитесь к администратору."
    : "Телефон не зарегистрирован: станция не ответила, повторим автоматически."));
  ua.on("disconnected", () => showAlert(session
    ? "Связь с телефонной станцией потеряна. Разговор может продолжаться; переподключаемся…"
    : "Нет связи с телефонной станцией: переподключаемся…"));
  ua.on("connected", () => showAlert(""));
  ua.on("newRTCSession", (e) => { if (e.originator === "remote") onIncoming(e.session); });
  ua.start();
}

async function run() {
  let own;
  try {
    own = await credentials();
  } catch (err) {
    say("Телефон в браузере выключен.");
    showAlert(err.message);
    return;
  }
  const problem = await microphoneProblem();
  if (problem) {
    say("Телефон не включён: нет микрофона.");
    showAlert(problem);
    return;
  }
  say("Телефон регистрируется…");
  register(own);
  window.addEventListener("pagehide", () => ua && ua.stop());
  // Leaving the page ends the call it holds: the browser asks first.
  window.addEventListener("beforeunload", (ev) => { if (session) ev.preventDefault(); });
}

async function start() {
  if (!root) return;
  wireControls();
  if (!extension) {
    say("У вас нет номера телефона: звонки в браузере недоступны.");
    return;
  }
  if (!navigator.locks) {
    await run();
    return;
  }
  const name = `hotline-phone-${extension}`;
  // Held for the tab's lifetime: the other tabs wait for it, saying so meanwhile.
  await navigator.locks.request(name, {ifAvailable: true}, async (lock) => {
    if (lock) {
      await run();
      return new Promise(() => {});
    }
    say("Телефон работает в другой вкладке этого браузера: звонки принимает она.");
    navigator.locks.request(name, async () => { await run(); return new Promise(() => {}); });
    return null;
  });
}

start();
