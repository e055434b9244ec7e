// The playground page: renders the emulated workspace (/api/state) on every change the
// server announces (/api/events), and acts as the chosen person through the API.
// Everything shown is escaped: message and alert text is hostile input.
"use strict";

const S = { state: null, channel: "C0ALERTS", thread: null, user: "U0ALICE", samples: [], buttons: [], modal: null };
const $ = (id) => document.getElementById(id);

function esc(s) {
  return String(s == null ? "" : s).replace(/[&<>"']/g, (c) =>
    ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
// Slack escapes & < > in message text; undo that before escaping for HTML.
function unslack(s) {
  return s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
}
function userName(id) {
  const u = S.state && S.state.users.find((x) => x.id === id);
  return u ? (u.is_bot ? u.real_name : u.name) : id;
}
function channelName(id) {
  const c = S.state && S.state.channels.find((x) => x.id === id);
  return c ? c.name : id;
}
function safeUrl(u) {
  return /^(https?:|mailto:)/i.test(u) ? u : null;
}

// The emoji Sentinel and people use most; others stay `:name:` as typed.
const EMOJI = {
  white_check_mark: "✅", heavy_check_mark: "✔️", x: "❌", warning: "⚠️", fire: "🔥", eyes: "👀",
  rotating_light: "🚨", hourglass: "⏳", hourglass_flowing_sand: "⏳", tada: "🎉", "+1": "👍",
  thumbsup: "👍", "-1": "👎", mag: "🔍", books: "📚", book: "📖", question: "❓", bulb: "💡",
  red_circle: "🔴", large_green_circle: "🟢", lock: "🔒", stop_sign: "🛑", robot_face: "🤖",
};
function emoji(name) { return EMOJI[name] || ":" + name + ":"; }

// Bold, italic, strike, quotes and emoji codes in an already escaped run of text.
function emphasis(h) {
  return h
    .replace(/:([a-z0-9_+-]+):/g, (m, n) => (EMOJI[n] ? EMOJI[n] : m))
    .replace(/(^|[\s(>~_])\*([^*\n]+)\*(?=$|[\s).,!?:;<~_])/g, "$1<b>$2</b>")
    .replace(/(^|[\s(>*~])_([^_\n]+)_(?=$|[\s).,!?:;<*~])/g, "$1<i>$2</i>")
    .replace(/(^|[\s(>*_])~([^~\n]+)~(?=$|[\s).,!?:;<*_])/g, "$1<s>$2</s>")
    .replace(/(^|\n)&gt; ?([^\n]*)/g, "$1<blockquote>$2</blockquote>");
}

// A `<...>` token: a link, a user, channel or group mention, or a special mention.
function token(t) {
  const bar = t.indexOf("|");
  const target = bar >= 0 ? t.slice(0, bar) : t;
  const label = bar >= 0 ? unslack(t.slice(bar + 1)) : null;
  if (target.startsWith("@")) return '<span class="mention">@' + esc(label || userName(target.slice(1))) + "</span>";
  if (target.startsWith("#")) return '<span class="mention">#' + esc(label || channelName(target.slice(1))) + "</span>";
  if (target.startsWith("!subteam^")) return '<span class="mention">' + esc(label || "@group") + "</span>";
  if (target.startsWith("!date^")) return esc(label || "");
  if (target.startsWith("!")) return '<span class="mention">@' + esc(label || target.slice(1)) + "</span>";
  const url = safeUrl(unslack(target));
  const text = esc(label || unslack(target));
  return url ? '<a href="' + esc(url) + '" target="_blank" rel="noopener noreferrer">' + text + "</a>" : text;
}

// Slack mrkdwn to HTML: code blocks, inline code, links and mentions, emphasis.
function mrkdwn(text) {
  const re = /```([\s\S]*?)```|`([^`\n]+)`|<([^<>\n]+)>/g;
  let out = "";
  let last = 0;
  let m;
  while ((m = re.exec(text)) !== null) {
    out += emphasis(esc(unslack(text.slice(last, m.index))));
    if (m[1] !== undefined) out += '<pre class="code">' + esc(unslack(m[1].replace(/^\n/, ""))) + "</pre>";
    else if (m[2] !== undefined) out += "<code>" + esc(unslack(m[2])) + "</code>";
    else out += token(m[3]);
    last = re.lastIndex;
  }
  return out + emphasis(esc(unslack(text.slice(last))));
}
function textObj(t) {
  if (!t) return "";
  return t.type === "mrkdwn" ? mrkdwn(t.text || "") : esc(t.text || "");
}

// A button: its style, and its confirm dialog kept aside (never in an attribute as HTML).
function button(el, msg, clickable) {
  const style = el.style === "primary" || el.style === "danger" ? el.style : "";
  if (el.url && safeUrl(el.url)) {
    return '<a class="bk-link" href="' + esc(el.url) + '" target="_blank" rel="noopener noreferrer">' + esc(el.text && el.text.text) + "</a>";
  }
  if (!clickable) return '<button type="button" class="' + style + '" disabled>' + esc(el.text && el.text.text) + "</button>";
  S.buttons.push({ channel: msg.channel, ts: msg.ts, action_id: el.action_id, confirm: el.confirm || null });
  return '<button type="button" class="bk-btn ' + style + '" data-b="' + (S.buttons.length - 1) + '">' + esc(el.text && el.text.text) + "</button>";
}

function element(el, msg, clickable) {
  if (el.type === "button") return button(el, msg, clickable);
  if (el.type === "image") return '<span class="bk-unsupported">[image: ' + esc(el.alt_text) + "]</span>";
  if (el.type === "mrkdwn" || el.type === "plain_text") return "<span>" + textObj(el) + "</span>";
  return '<span class="bk-unsupported">[' + esc(el.type) + "]</span>";
}

function richText(b) {
  const inner = (els) => (els || []).map((e) => {
    if (e.type === "text") {
      let h = esc(e.text);
      const st = e.style || {};
      if (st.code) h = "<code>" + h + "</code>";
      if (st.bold) h = "<b>" + h + "</b>";
      if (st.italic) h = "<i>" + h + "</i>";
      return h;
    }
    if (e.type === "link") return token(e.url + (e.text ? "|" + e.text : ""));
    if (e.type === "user") return token("@" + e.user_id);
    if (e.type === "channel") return token("#" + e.channel_id);
    if (e.type === "emoji") return esc(emoji(e.name));
    if (e.type === "rich_text_section") return inner(e.elements);
    if (e.type === "rich_text_preformatted") return '<pre class="code">' + inner(e.elements) + "</pre>";
    if (e.type === "rich_text_quote") return "<blockquote>" + inner(e.elements) + "</blockquote>";
    if (e.type === "rich_text_list") return (e.elements || []).map((i) => "• " + inner(i.elements)).join("\n");
    return "";
  }).join("");
  return '<div class="bk-section">' + inner(b.elements) + "</div>";
}

// An input block of a modal: its label, the field (keyed by block and action id, so the
// submission carries Slack's state.values), a hint, and the error the app answered.
function inputBlock(b) {
  const el = b.element || {};
  const err = S.modal && S.modal.errors && S.modal.errors[b.block_id];
  let h = '<label class="bk-input"><span class="bk-label">' + esc(b.label && b.label.text) +
    (b.optional ? ' <span class="muted">(optional)</span>' : "") + "</span>";
  if (el.type === "plain_text_input") {
    const attrs = ' data-block="' + esc(b.block_id) + '" data-action="' + esc(el.action_id) + '"' +
      (b.optional ? "" : ' data-required="1"') +
      (el.max_length ? ' maxlength="' + esc(Number(el.max_length)) + '"' : "") +
      (el.placeholder ? ' placeholder="' + esc(el.placeholder.text) + '"' : "");
    h += el.multiline
      ? '<textarea rows="4"' + attrs + ">" + esc(el.initial_value) + "</textarea>"
      : '<input type="text"' + attrs + ' value="' + esc(el.initial_value) + '">';
  } else {
    h += '<span class="bk-unsupported">[' + esc(el.type) + "]</span>";
  }
  if (b.hint) h += '<span class="bk-hint">' + esc(b.hint.text) + "</span>";
  h += '<span class="error" data-error-for="' + esc(b.block_id) + '">' + esc(err || "") + "</span>";
  return h + "</label>";
}

function blocks(list, msg, clickable) {
  return list.map((b) => {
    switch (b.type) {
      case "input": return inputBlock(b);
      case "header": return '<div class="bk-header">' + esc(b.text && b.text.text) + "</div>";
      case "divider": return '<hr class="bk-divider">';
      case "section": {
        let h = '<div class="bk-section"><div class="bk-text">' + textObj(b.text);
        if (b.fields) h += '<div class="bk-fields">' + b.fields.map((f) => "<div>" + textObj(f) + "</div>").join("") + "</div>";
        h += "</div>";
        if (b.accessory) h += "<div>" + element(b.accessory, msg, clickable) + "</div>";
        return h + "</div>";
      }
      case "context": return '<div class="bk-context">' + (b.elements || []).map((e) => element(e, msg, clickable)).join("") + "</div>";
      case "actions": return '<div class="bk-actions">' + (b.elements || []).map((e) => element(e, msg, clickable)).join("") + "</div>";
      case "rich_text": return richText(b);
      case "image": return '<div class="bk-unsupported">[image: ' + esc(b.alt_text) + "]</div>";
      default: return '<div class="bk-unsupported">[unsupported block: ' + esc(b.type) + "]</div>";
    }
  }).join("");
}

function when(ts) {
  const d = new Date(parseFloat(ts) * 1000);
  return isNaN(d) ? "" : d.toLocaleTimeString();
}

function messageHtml(m, opts) {
  const who = m.user ? userName(m.user) : m.bot_id === "B0SENTINEL" ? "Sentinel" : (m.username || m.bot_id || "app");
  const isApp = !m.user || (S.state.users.find((u) => u.id === m.user) || {}).is_bot;
  let h = '<div class="msg" data-ts="' + esc(m.ts) + '"><div><span class="who">' + esc(who) +
    (isApp ? '<span class="app-tag">APP</span>' : "") + '</span><span class="when">' + esc(when(m.ts)) + "</span></div>";
  h += m.blocks && m.blocks.length ? blocks(m.blocks, m, true) : '<div class="body">' + mrkdwn(m.text || "") + "</div>";
  if (m.edited) h += '<span class="edited">(edited)</span>';
  if (m.reactions && m.reactions.length) {
    h += '<div class="reactions">' + m.reactions.map((r) =>
      '<span class="reaction" title="' + esc(r.users.map(userName).join(", ")) + '">' + esc(emoji(r.name)) + " " + r.users.length + "</span>").join("") + "</div>";
  }
  if (opts.replies) h += '<button type="button" class="replies" data-thread="' + esc(m.ts) + '">' + opts.replies + (opts.replies === 1 ? " reply" : " replies") + "</button>";
  return h + "</div>";
}

function ephemeralHtml(e) {
  let h = '<div class="msg ephemeral" data-ts="' + esc(e.ts) + '"><div><span class="who">Sentinel<span class="app-tag">APP</span></span>' +
    '<span class="when">' + esc(when(e.ts)) + '</span> <span class="only-you">Only visible to you</span></div>';
  h += e.blocks && e.blocks.length ? blocks(e.blocks, e, true) : '<div class="body">' + mrkdwn(e.text || "") + "</div>";
  return h + "</div>";
}

// Messages and the chosen person's ephemerals, in time order (ts strings compare in order:
// same digits before and after the dot).
function timeline(msgs, ephs, html) {
  const items = msgs.map((m) => ({ ts: m.ts, html: () => html(m) }))
    .concat(ephs.map((e) => ({ ts: e.ts, html: () => ephemeralHtml(e) })));
  items.sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0));
  return items.map((i) => i.html()).join("");
}

// What an empty channel says: where to start.
function emptyHint() {
  const start = S.channel === "C0ALERTS"
    ? "<p>No incidents yet. Pick a sample under <b>Alerts in</b> and press <b>Fire</b> " +
      "(or build one with the form): Sentinel opens an incident thread here, answers with " +
      "the runbook's sections and a diagnosis, and proposes actions.</p>"
    : "";
  return '<div class="empty">' + start +
    "<p>Ask in any channel: <code>@sentinel why is checkout crash looping?</code>, or run " +
    "<code>/sentinel help</code>. Switch person under <b>Acting as</b>: Alice and Bob may " +
    "approve actions, Mallory may not.</p></div>";
}

function render() {
  const st = S.state;
  if (!st) return;
  S.buttons = [];
  $("channels").innerHTML = st.channels.map((c) =>
    '<li data-ch="' + esc(c.id) + '" class="' + (c.id === S.channel ? "active" : "") + '"># ' + esc(c.name) +
    (c.member ? "" : ' <span class="muted">(bot not in)</span>') + "</li>").join("");
  $("channel-name").textContent = "#" + channelName(S.channel);
  $("bot-status").textContent = st.connections > 0 ? "Sentinel connected over Socket Mode" : "Sentinel not connected";
  const inCh = st.messages.filter((m) => m.channel === S.channel);
  const roots = inCh.filter((m) => !m.thread_ts || m.thread_ts === m.ts);
  const replies = (ts) => inCh.filter((m) => m.thread_ts === ts && m.ts !== ts);
  const mine = st.ephemerals.filter((e) => e.channel === S.channel && e.user === S.user);
  const box = $("messages");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  box.innerHTML = timeline(roots, mine.filter((e) => !e.thread_ts),
    (m) => messageHtml(m, { replies: replies(m.ts).length })) || emptyHint();
  if (atBottom) box.scrollTop = box.scrollHeight;
  const pane = $("thread");
  if (S.thread) {
    const parent = inCh.find((m) => m.ts === S.thread);
    pane.classList.toggle("hidden", !parent);
    if (parent) {
      const tb = $("thread-messages");
      const tBottom = tb.scrollHeight - tb.scrollTop - tb.clientHeight < 40;
      tb.innerHTML = messageHtml(parent, {}) + '<hr class="bk-divider">' +
        timeline(replies(S.thread), mine.filter((e) => e.thread_ts === S.thread), (m) => messageHtml(m, {}));
      if (tBottom) tb.scrollTop = tb.scrollHeight;
    }
  } else {
    pane.classList.add("hidden");
  }
  renderModal();
}

// The newest modal open for the chosen person, as Slack shows it over everything. Drawn
// again only when the app changed it, so what is being typed stays.
function renderModal() {
  const v = S.state.views.filter((x) => x.user === S.user).pop();
  const box = $("modal");
  if (!v) { box.classList.add("hidden"); S.modal = null; return; }
  const key = v.id + "@" + v.revision;
  if (S.modal && S.modal.key === key) return;
  const typed = S.modal && S.modal.id === v.id ? modalValues() : null;
  S.modal = { id: v.id, key, errors: v.errors || {} };
  const view = v.view || {};
  $("modal-title").textContent = (view.title && view.title.text) || "";
  $("modal-blocks").innerHTML = blocks(view.blocks || [], null, false);
  if (typed) {
    $("modal-blocks").querySelectorAll("[data-block]").forEach((i) => {
      const t = typed[i.dataset.block];
      if (t && t[i.dataset.action] !== undefined) i.value = t[i.dataset.action];
    });
  }
  $("modal-submit").textContent = (view.submit && view.submit.text) || "Submit";
  $("modal-submit").classList.toggle("hidden", !view.submit);
  $("modal-submit").disabled = false;
  $("modal-close").textContent = (view.close && view.close.text) || "Cancel";
  showError("modal-error", null);
  const first = !box.classList.contains("hidden") ? null : $("modal-blocks").querySelector("[data-block]");
  box.classList.remove("hidden");
  if (first) first.focus();
}

// What the modal's inputs hold, as Slack's state.values: {block_id: {action_id: text}}.
function modalValues() {
  // No prototype: a block or action id such as `__proto__` is only a key.
  const values = Object.create(null);
  $("modal-blocks").querySelectorAll("[data-block]").forEach((i) => {
    (values[i.dataset.block] = values[i.dataset.block] || Object.create(null))[i.dataset.action] = i.value;
  });
  return values;
}

// Slack's client refuses an empty required input before anything is sent.
async function submitModal() {
  if (!S.modal) return;
  let missing = false;
  $("modal-blocks").querySelectorAll("[data-required]").forEach((i) => {
    const e = $("modal-blocks").querySelector('[data-error-for="' + CSS.escape(i.dataset.block) + '"]');
    const empty = !i.value.trim();
    if (e) e.textContent = empty ? "Please fill out this field." : "";
    missing = missing || empty;
  });
  if (missing) return;
  $("modal-submit").disabled = true;
  try {
    await api("/api/view/submit", { user: S.user, view_id: S.modal.id, values: modalValues() });
  } catch (e) {
    $("modal-submit").disabled = false;
    showError("modal-error", e);
  }
}

async function closeModal() {
  if (!S.modal) return;
  try { await api("/api/view/close", { user: S.user, view_id: S.modal.id }); } catch (e) { showError("modal-error", e); }
}

function renderUsers() {
  const people = S.state.users.filter((u) => !u.is_bot);
  $("user").innerHTML = people.map((u) =>
    '<option value="' + esc(u.id) + '"' + (u.id === S.user ? " selected" : "") + ">" + esc(u.real_name) + "</option>").join("");
  const me = people.find((u) => u.id === S.user);
  $("role").textContent = me && me.role ? me.role : "";
}

async function api(path, body) {
  const r = await fetch(path, body === undefined ? {} : {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
  });
  const j = await r.json().catch(() => ({ error: "HTTP " + r.status }));
  if (!r.ok) throw new Error(j.error || "HTTP " + r.status);
  return j;
}

let fetching = false, again = false;
async function refresh() {
  if (fetching) { again = true; return; }
  fetching = true;
  try {
    const first = !S.state;
    S.state = await api("/api/state");
    if (first) renderUsers();
    render();
    await refreshPanel();
  } catch (e) {
    // The banner says so; the event stream reconnects.
  } finally {
    fetching = false;
    if (again) { again = false; refresh(); }
  }
}

async function refreshPanel() {
  const p = await api("/api/panel");
  $("incidents").innerHTML = p.incidents.length ? p.incidents.map((i) =>
    "<li>#" + esc(i.id) + ' <span class="state ' + esc(i.status) + '">' + esc(i.status) + "</span> <b>" + esc(i.alertname) + "</b> " +
    esc(i.severity) + (i.diagnosed ? " · diagnosed" : "") +
    (i.root_ts ? ' <button type="button" class="replies" data-ch="C0ALERTS" data-thread="' + esc(i.root_ts) + '">thread</button>' : "") +
    (i.summary ? "<br>" + esc(i.summary) : "") + "</li>").join("") : "<li>none yet: fire an alert</li>";
  $("actions").innerHTML = p.actions.length ? p.actions.map((a) =>
    "<li>#" + esc(a.id) + ' <span class="state ' + esc(a.state) + '">' + esc(a.state) + "</span> " + esc(a.title) +
    " (" + esc(a.risk) + " risk" + (a.incident_id ? ", incident #" + esc(a.incident_id) : "") + ")" +
    (a.decided_by ? " by " + esc(userName(a.decided_by)) : "") + (a.exit_code !== null && a.exit_code !== undefined ? " · exit " + esc(a.exit_code) : "") + "</li>").join("") : "<li>none proposed</li>";
  $("audit").innerHTML = p.audit.length ? p.audit.slice().reverse().map((e) =>
    "<li>" + esc(e.seq) + ". <b>" + esc(e.kind) + "</b> " + esc(e.action || "") + " " + esc(e.outcome || "") +
    " by " + esc(e.actor_name || e.actor_id) + ' <span class="when">' + esc(e.at) + "</span></li>").join("") : "<li>empty</li>";
  const ok = p.verify && p.verify.ok;
  const v = $("verify");
  v.textContent = ok ? "verified ✓" : "BROKEN";
  v.className = "badge " + (ok ? "ok" : "broken");
  v.title = p.verify_summary || "";
}

function showError(id, e) { $(id).textContent = e ? String(e.message || e) : ""; }

async function send(textarea, errId, thread) {
  const text = $(textarea).value;
  if (!text.trim()) return;
  try {
    if (text.trim().startsWith("/")) {
      await api("/api/command", { user: S.user, channel: S.channel, text });
    } else {
      await api("/api/say", { user: S.user, channel: S.channel, text, thread_ts: thread || null });
    }
    $(textarea).value = "";
    showError(errId, null);
  } catch (e) { showError(errId, e); }
}

function confirmDialog(c) {
  return new Promise((resolve) => {
    $("dialog-title").textContent = (c.title && c.title.text) || "Are you sure?";
    $("dialog-text").innerHTML = textObj(c.text);
    $("dialog-confirm").textContent = (c.confirm && c.confirm.text) || "Confirm";
    $("dialog-confirm").className = c.style === "danger" ? "danger" : "primary";
    $("dialog-deny").textContent = (c.deny && c.deny.text) || "Cancel";
    $("dialog").classList.remove("hidden");
    const done = (v) => { $("dialog").classList.add("hidden"); $("dialog-confirm").onclick = null; $("dialog-deny").onclick = null; resolve(v); };
    $("dialog-confirm").onclick = () => done(true);
    $("dialog-deny").onclick = () => done(false);
  });
}

async function clickButton(b) {
  if (b.confirm && !(await confirmDialog(b.confirm))) return;
  try {
    await api("/api/click", { user: S.user, channel: b.channel, ts: b.ts, action_id: b.action_id });
  } catch (e) { showError("composer-error", e); }
}

function showResults(r) {
  $("alert-result").innerHTML = r.results.map((x) =>
    '<div class="' + (x.status < 300 ? "ok" : "fail") + '">' + esc(x.hook) + " → " + esc(x.status) + " " + esc(x.body) + "</div>").join("");
}
async function postAlert(body) {
  $("alert-result").textContent = "sending…";
  try { showResults(await api("/api/alerts", body)); } catch (e) {
    $("alert-result").innerHTML = '<div class="fail">' + esc(e.message) + "</div>";
  }
}

function resolveJson() {
  let v;
  try { v = JSON.parse($("alert-json").value); } catch (e) {
    $("alert-result").innerHTML = '<div class="fail">the editor does not hold valid JSON: ' + esc(e.message) + "</div>";
    return;
  }
  const now = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  v.status = "resolved";
  (v.alerts || []).forEach((a) => { a.status = "resolved"; a.endsAt = now; });
  $("alert-json").value = JSON.stringify(v, null, 2);
  postAlert({ kind: "raw", hook: $("hook").value, body: $("alert-json").value });
}

function loadSample(i) {
  const s = S.samples[i];
  if (!s) return;
  let body = s.body;
  try { body = JSON.stringify(JSON.parse(s.body), null, 2); } catch (e) { /* shown as is */ }
  $("alert-json").value = body;
  $("hook").value = s.hook;
}

function connect() {
  const es = new EventSource("/api/events");
  es.addEventListener("change", () => { $("banner").classList.add("hidden"); refresh(); });
  es.onopen = () => { $("banner").classList.add("hidden"); refresh(); };
  es.onerror = () => {
    $("banner").classList.remove("hidden");
    // The browser retries by itself unless it gave up (an HTTP error): then so do we, later.
    if (es.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
  };
}

document.addEventListener("DOMContentLoaded", async () => {
  $("user").onchange = (e) => { S.user = e.target.value; renderUsers(); render(); };
  $("channels").onclick = (e) => {
    const li = e.target.closest("li[data-ch]");
    if (li) { S.channel = li.dataset.ch; S.thread = null; render(); }
  };
  document.body.addEventListener("click", (e) => {
    const b = e.target.closest("button[data-b]");
    if (b) { clickButton(S.buttons[Number(b.dataset.b)]); return; }
    const t = e.target.closest("button[data-thread]");
    if (t) {
      if (t.dataset.ch) S.channel = t.dataset.ch;
      S.thread = t.dataset.thread;
      render();
    }
  });
  $("thread-close").onclick = () => { S.thread = null; render(); };
  $("modal-form").onsubmit = (e) => { e.preventDefault(); submitModal(); };
  $("modal-close").onclick = closeModal;
  $("mention").onclick = () => { $("composer-text").value = "@sentinel " + $("composer-text").value; $("composer-text").focus(); };
  $("composer").onsubmit = (e) => { e.preventDefault(); send("composer-text", "composer-error", null); };
  $("thread-composer").onsubmit = (e) => { e.preventDefault(); send("thread-text", "thread-error", S.thread); };
  for (const [ta, form] of [["composer-text", "composer"], ["thread-text", "thread-composer"]]) {
    $(ta).addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $(form).requestSubmit(); }
    });
  }
  $("fire").onclick = () => postAlert({ kind: "raw", hook: $("hook").value, body: $("alert-json").value });
  $("resolve").onclick = resolveJson;
  $("storm").onclick = () => postAlert({ kind: "storm", count: Number($("storm-count").value) });
  $("alert-form").onsubmit = (e) => {
    e.preventDefault();
    const f = e.target;
    postAlert({
      kind: "form", alertname: f.alertname.value, severity: f.severity.value, labels: f.labels.value,
      summary: f.summary.value, resolved: f.resolved.checked,
    });
  };
  $("sample").onchange = (e) => loadSample(Number(e.target.value));
  try {
    S.samples = await api("/api/samples");
    $("sample").innerHTML = S.samples.map((s, i) => '<option value="' + i + '">' + esc(s.name) + "</option>").join("");
    loadSample(0);
  } catch (e) { /* the banner shows the server is away */ }
  refresh();
  connect();
  setInterval(() => { if (!document.hidden && S.state) refreshPanel().catch(() => {}); }, 3000);
});
