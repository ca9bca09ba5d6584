/* The confirm step, live: this page's hold of its time (expertbook/holds.py). The page
 * works without this file (the server placed the hold when it rendered the page, and it
 * lasts 5 minutes); this only improves it:
 * - binds the hold to the page's socket (`hold`), so that it ends 30 s after the page is
 *   gone even when the page could not say goodbye (a crash, a lost connection), and
 *   renews it while the page is open, shown or in a background tab (the server caps a
 *   hold's whole life: past it, a renewal answers 409 and the page stops renewing);
 * - shows how long the time is held ("We're holding this time for you: 4:59"), and says
 *   it once, a minute before the end, through the page's live region;
 * - ends the hold when the booker goes back or leaves (pagehide: a keepalive DELETE),
 *   but not when the form is sent (the booking ends it);
 * - holds the time through the holds API when the page opens without a hold (after a form
 *   error), and says so when someone else has it;
 * - once its hold has ended elsewhere (another tab of this browser held another time, or
 *   it expired), says so and does NOT hold the time again by itself: two tabs would take
 *   the hold from each other every few minutes, telling every open page each time.
 * Everything it needs comes from the data-* attributes of #confirm. */
(() => {
  "use strict";

  const root = document.getElementById("confirm");
  if (!root) return;
  const data = root.dataset;
  if (!data.start || data.own === "true") return;
  const status = root.querySelector('[data-role="hold-status"]');
  const form = root.querySelector("form");
  const toastRegion = document.querySelector(".toast-region");
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const eventTypeId = Number(data.eventTypeId);
  const start = Date.parse(data.start);
  const end = Date.parse(data.end);
  // Renew when less than this is left (a background tab's timers may run once a minute).
  const RENEW_BELOW_MS = 2 * 60000;
  const NO_LONGER_HELD = "This time is no longer held for you; book now if it is still free or go back.";
  const WARN_BELOW_MS = 60000;

  let hold = data.holdId
    ? { id: data.holdId, token: data.holdToken, expires: Date.parse(data.holdExpires) }
    : null;
  let sending = false; // the form is being sent: the booking ends the hold
  let leaving = false; // the booker went back or away: hold nothing more
  let warned = false;
  let busy = false; // a renew or place call in flight
  let lost = false; // our hold ended (or reached its longest life): hold nothing by ourselves
  let socket = null;

  function say(message) {
    if (!toastRegion) return;
    const node = document.createElement("div");
    node.className = "toast";
    node.textContent = message;
    toastRegion.append(node);
    setTimeout(() => node.remove(), 6000);
  }

  function headers(json = false) {
    const result = { Accept: "application/json" };
    if (json) result["Content-Type"] = "application/json";
    if (csrfMeta) result["X-CSRFToken"] = csrfMeta.content;
    if (hold && hold.token) result["X-Hold-Token"] = hold.token;
    return result;
  }

  const clock = (ms) => {
    const seconds = Math.max(0, Math.ceil(ms / 1000));
    return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
  };

  function draw() {
    if (!status) return;
    if (!hold) return;
    const left = hold.expires - Date.now();
    if (left > 0) {
      status.textContent = `We\u2019re holding this time for you: ${clock(left)}`;
      if (left < WARN_BELOW_MS && !warned) {
        warned = true;
        say("Your hold on this time ends in less than a minute.");
      }
    } else {
      status.textContent = "We are no longer holding this time for you. You can still book it if nobody else has.";
    }
  }

  /** Someone else holds the time: say so, and keep the form (their hold may end). */
  function heldElsewhere(retryAfter) {
    hold = null;
    const minutes = Math.max(1, Math.ceil(Number(retryAfter || 300) / 60));
    const text = `Someone else is booking this time right now. If they do not finish, it frees up within ${minutes} minute${minutes === 1 ? "" : "s"}.`;
    if (status) status.textContent = text;
    say(text);
  }

  /** Our hold is gone: say so once, and stop renewing or holding again. */
  function lose() {
    hold = null;
    if (lost) return;
    lost = true;
    data.lost = "true"; // tests and styles use it
    if (status) status.textContent = NO_LONGER_HELD;
    say(NO_LONGER_HELD);
  }

  /** Hold the time through the API (this browser session is the holder). */
  async function place() {
    if (busy || leaving || lost) return;
    busy = true;
    try {
      const response = await fetch(data.holdsUrl, {
        method: "POST", headers: headers(true), credentials: "same-origin",
        body: JSON.stringify({ start: data.start }),
      });
      const body = await response.json().catch(() => null);
      if (response.status === 201 && body) {
        hold = { id: body.hold_id, token: body.hold_token, expires: Date.parse(body.expires_at) };
        warned = false;
        bind();
      } else if (response.status === 409 && body && body.error && body.error.code === "slot_held") {
        heldElsewhere(body.error.retry_after);
      } else if (response.status === 409 && status) {
        status.textContent = "This time is no longer available. Please pick another.";
      }
    } catch (error) {
      // Offline: the server-side hold (if any) runs its course; try again on the next tick.
    } finally {
      busy = false;
      draw();
    }
  }

  /** Renew our hold, which also checks that it is still ours. A 404 (expired, or ended by
   * another tab of this browser) or a 409 (past a hold's longest life) loses it for good. */
  async function renew() {
    // Not once the form is sent: the booking ends the hold (a renewal racing it found the
    // hold gone: a 404 in the console of a booking that went through).
    if (busy || !hold || sending) return;
    busy = true;
    const current = hold;
    try {
      const response = await fetch(`${data.holdUrl}${current.id}/renew`, {
        method: "POST", headers: headers(), credentials: "same-origin",
      });
      if (response.ok) {
        const body = await response.json();
        current.expires = Date.parse(body.expires_at);
        warned = false;
      } else if ((response.status === 404 || response.status === 409) && hold === current) {
        lose();
      }
    } catch (error) {
      // Offline: try again on the next tick.
    } finally {
      busy = false;
    }
    draw();
  }

  function release() {
    if (sending) return;
    leaving = true;
    if (!hold) return;
    const id = hold.id;
    const init = { method: "DELETE", headers: headers(), credentials: "same-origin", keepalive: true };
    hold = null;
    fetch(`${data.holdUrl}${id}`, init).catch(() => {});
  }

  function bind() {
    if (socket && socket.connected && hold) socket.emit("hold", { hold_id: hold.id, hold_token: hold.token });
  }

  function tick() {
    if (!hold) {
      draw();
      return;
    }
    // Hidden too: a background tab's page is still open, and its booker coming back to it
    // expects the time still held.
    if (hold.expires - Date.now() < RENEW_BELOW_MS) renew();
    draw();
  }

  const overlaps = (payload) =>
    payload && payload.event_type_id === eventTypeId
    && Date.parse(payload.start) < end && start < Date.parse(payload.end);

  function connect() {
    if (typeof window.io !== "function") return;
    socket = window.io();
    // Every (re)connect binds the hold again (and renews it); the room tells this page when
    // another booker's hold of its time ends.
    socket.on("connect", () => {
      socket.emit("join", { event_type_id: eventTypeId });
      bind();
    });
    socket.on("held", (payload) => {
      if (!hold || !payload || payload.hold_id !== hold.id) return;
      hold.expires = Date.parse(payload.expires_at);
      data.bound = "true"; // the hold is bound to this socket (tests and styles use it)
      draw();
    });
    socket.on("disconnect", () => { data.bound = "false"; });
    // The hold could not be bound: past its longest life it is lost; otherwise (another tab
    // may have taken it over) check it.
    socket.on("error", (payload) => {
      if (!payload || !hold || sending) return;
      if (payload.code === "hold_expired") lose();
      else if (payload.code === "unknown_hold") renew();
    });
    socket.on("slot_released", (payload) => {
      if (!overlaps(payload) || leaving) return;
      // A hold of this time ended: maybe ours (another tab of this browser held another
      // time): check it, never hold again by ourselves.
      if (hold) {
        renew();
        return;
      }
      if (lost) return;
      // Someone else's hold ended: the page without a form shows it again (its GET holds
      // the time for this booker); the page with one holds the time now.
      if (data.heldElsewhere === "true") window.location.reload();
      else place();
    });
    socket.on("slot_taken", (payload) => {
      if (!overlaps(payload) || sending) return;
      hold = null;
      if (status) status.textContent = "Sorry, this time was just booked by someone else. Please pick another.";
    });
  }

  if (form) form.addEventListener("submit", () => { sending = true; });
  for (const link of document.querySelectorAll('a[data-role="back"]')) {
    link.addEventListener("click", release);
  }
  window.addEventListener("pagehide", release);
  // Back to this page from the browser's cache: its hold was released on the way out.
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) {
      sending = false;
      leaving = false;
      lost = false; // the booker came back to the page: hold the time afresh
      data.lost = "false";
      place();
    }
  });
  document.addEventListener("visibilitychange", tick);
  setInterval(tick, 1000);
  if (!hold && data.heldElsewhere !== "true") place();
  draw();
  connect();
})();
