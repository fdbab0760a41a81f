/* api.js - the dashboard's REST client, token and event streams (window.kiln.api).
 *
 * call() sends the bearer token kept in sessionStorage ("kiln_token"; the
 * tab forgets it when closed). A 401 asks for a token once, in a form on the
 * page, and retries; a 403 is shown plainly with the server's message.
 * stream() reads Server-Sent Events with fetch (EventSource cannot send the
 * token) and reconnects after a drop with Last-Event-ID, so nothing is lost
 * or shown twice. The browser's one thread; no other module state.
 */
"use strict";
window.kiln = window.kiln || {};

(function (kiln) {
  const {h} = kiln.dom;
  const KEY = "kiln_token";
  let asking = null; /* the pending token question, shared by concurrent 401s */

  function token() { return sessionStorage.getItem(KEY) || ""; }

  function headers(extra) {
    const hd = Object.assign({}, extra || {});
    const t = token();
    if (t) hd["Authorization"] = "Bearer " + t;
    return hd;
  }

  /* Shows the token form; resolves true once a token was entered. */
  function askToken(message) {
    if (asking) return asking;
    asking = new Promise(resolve => {
      const input = h("input", {type: "password", autocomplete: "off", required: true,
                                id: "token-input", spellcheck: "false"});
      const form = h("form.token-form", {"aria-labelledby": "token-title"},
        h("h2", {id: "token-title", text: "Access token"}),
        h("p", {text: message || "This kiln server needs an access token (read scope to watch; submit to submit and cancel)."}),
        h("label", {for: "token-input", text: "Token"}), input,
        h("div.actions", {}, h("button", {type: "submit", text: "Use token"})));
      const overlay = h("div.overlay", {role: "dialog", "aria-modal": "true"}, form);
      form.addEventListener("submit", ev => {
        ev.preventDefault();
        const v = input.value.trim();
        if (!v) return;
        sessionStorage.setItem(KEY, v);
        overlay.remove();
        asking = null;
        resolve(true);
      });
      document.body.appendChild(overlay);
      input.focus();
    });
    return asking;
  }

  function banner(text) {
    const b = document.getElementById("banner");
    if (!b) return;
    b.textContent = text || "";
    b.hidden = !text;
  }

  /* One request. Returns {status, ok, body} (body: parsed JSON or null);
   * never throws for HTTP errors, only for a network failure. */
  async function call(method, path, body, extraHeaders) {
    const opts = {method, headers: headers(extraHeaders)};
    if (body !== undefined) {
      opts.body = typeof body === "string" ? body : JSON.stringify(body);
      opts.headers["Content-Type"] = "application/json";
    }
    let r = await fetch(path, opts);
    if (r.status === 401) {
      const e = await r.json().catch(() => null);
      await askToken(token() ? "The token was refused: " + errorText(e) : null);
      opts.headers = Object.assign(opts.headers, headers());
      r = await fetch(path, opts);
    }
    const text = await r.text();
    let parsed = null;
    try { parsed = text ? JSON.parse(text) : null; } catch (_) { parsed = null; }
    if (r.status === 403) banner("Not allowed: " + errorText(parsed));
    return {status: r.status, ok: r.ok, body: parsed};
  }

  function errorText(body) {
    const e = body && body.error;
    return e ? (e.message || e.code) : "no details";
  }

  /* GET that throws an Error with the server's message on failure. */
  async function get(path) {
    const r = await call("GET", path);
    if (!r.ok) throw new Error("GET " + path + ": HTTP " + r.status + ": " + errorText(r.body));
    return r.body;
  }

  /* Follows an event stream. onEvent(type, data, id) for each event;
   * onEnd() after an `end` event (the stream is then closed). Reconnects
   * after a drop (2 s later) from the last id. Returns {close()}. */
  function stream(path, {lastId, onEvent, onEnd, onState}) {
    let closed = false, ctrl = null, last = lastId || "";
    (async () => {
      while (!closed) {
        ctrl = new AbortController();
        try {
          const hd = headers(last ? {"Last-Event-ID": last} : {});
          const r = await fetch(path, {headers: hd, signal: ctrl.signal});
          if (r.status === 401) { await askToken(); continue; }
          if (!r.ok || !r.body) throw new Error("HTTP " + r.status);
          if (onState) onState("live");
          const rd = r.body.getReader(), dec = new TextDecoder();
          let buf = "", ended = false;
          for (;;) {
            const {value, done} = await rd.read();
            if (done) break;
            buf += dec.decode(value, {stream: true});
            let i;
            while ((i = buf.indexOf("\n\n")) >= 0) {
              const block = buf.slice(0, i);
              buf = buf.slice(i + 2);
              let id = null, type = "message", data = "";
              for (const line of block.split("\n")) {
                if (line.startsWith(":")) continue;
                const c = line.indexOf(":");
                const k = c < 0 ? line : line.slice(0, c);
                const v = c < 0 ? "" : line.slice(c + 1).replace(/^ /, "");
                if (k === "id") id = v;
                else if (k === "event") type = v;
                else if (k === "data") data += (data ? "\n" : "") + v;
              }
              if (!data) continue;
              if (id !== null) last = id;
              let obj = null;
              try { obj = JSON.parse(data); } catch (_) { continue; }
              if (type === "end") { ended = true; break; }
              onEvent(type, obj, id);
            }
            if (ended) break;
          }
          if (ended) { closed = true; if (onEnd) onEnd(); return; }
        } catch (e) {
          if (closed) return;
        }
        if (onState) onState("reconnecting");
        await new Promise(res => setTimeout(res, 2000));
      }
    })();
    return {close() { closed = true; if (ctrl) ctrl.abort(); }};
  }

  kiln.api = {call, get, stream, banner, errorText, token};
})(window.kiln);
