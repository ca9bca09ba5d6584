/* The booking page, live. The page works without this file; this only improves it:
 * - shows times in the browser's own zone when the URL does not name one (?tz=),
 * - moves between days, months and zones in place (JSON slots API + history.replaceState),
 * - keeps the slots current over Socket.IO: a time someone else books is disabled at once,
 *   and the month is re-read on every (re)join and after every slot_taken, slot_released
 *   and slots_changed;
 * - shows a time someone is booking right now (slot_held) as held, "Someone is booking
 *   this time", not bookable, and says so in the live region, on whichever day it lies; it
 *   stays held while its holder renews the hold (each renewal is announced again) and is
 *   offered again when the hold ends (slot_released); on every (re)join the server sends
 *   a slot_held for each hold still live, so holds placed while the socket was away show.
 * Everything it needs comes from the data-* attributes of #booking. */
(() => {
  "use strict";

  const root = document.getElementById("booking");
  if (!root) return;
  const data = root.dataset;
  const calendar = root.querySelector('[data-role="calendar"]');
  const slotsBox = root.querySelector('[data-role="slots"]');
  const dayTitle = root.querySelector('[data-role="day-title"]');
  const tzName = root.querySelector('[data-role="tz-name"]');
  const tzForm = root.querySelector("form.tz-select");
  const tzSelect = tzForm ? tzForm.querySelector("select") : null;
  const toastRegion = document.querySelector(".toast-region");
  // Shown instead of the calendar and the times while the event type takes no bookings.
  const closedNotice = root.querySelector('[data-role="closed"]');
  const offering = [calendar, slotsBox.closest("section")];
  const eventTypeId = Number(data.eventTypeId);
  const durationMs = Number(data.duration) * 60000;
  const horizon = Date.parse(data.horizon);
  const WEEKDAYS = [["Mon", "Monday"], ["Tue", "Tuesday"], ["Wed", "Wednesday"], ["Thu", "Thursday"],
    ["Fri", "Friday"], ["Sat", "Saturday"], ["Sun", "Sunday"]];
  const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");

  // What is drawn now, and what the newest request asked for (it may still be loading).
  let shown = { tz: data.tz, month: data.month, day: data.day || null, byDay: null };
  let wanted = { tz: shown.tz, month: shown.month, day: shown.day };
  let ticket = 0; // only the newest fetch may draw
  let tzInUrl = data.tzInUrl === "true"; // a chosen zone goes into the URL, a detected one not
  // The holds announced (slot_held) and not ended yet: "start/end" -> { start, end, until }
  // (ms). A hold ends with slot_released or slot_taken, or when a re-read offers a time it
  // covers again. `until` only forgets a hold whose end this page never heard of: a hold
  // lasts at most HOLD_TTL_MS after its last renewal, and every renewal is announced again.
  const HELD_NOTE = "Someone is booking this time";
  const HOLD_TTL_MS = 5 * 60000;
  const SWEEP_GRACE_MS = 60000; // an expired hold is swept, and announced, within this
  const holds = new Map();
  // Every start this page has seen offered. The slots API leaves held starts out, so a held
  // time of a day drawn later is found here (or is the hold's own start).
  const seen = new Set();

  // ---------------------------------------------------------------- dates and zones
  const pad = (n) => String(n).padStart(2, "0");
  const zulu = (ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
  const formatters = new Map();

  function zoneWorks(tz) {
    try {
      return Boolean(new Intl.DateTimeFormat("en-GB", { timeZone: tz }));
    } catch (error) {
      return false; // RangeError: a zone this browser does not know
    }
  }

  function localParts(ms, tz) {
    if (!formatters.has(tz)) {
      formatters.set(tz, new Intl.DateTimeFormat("en-GB", {
        timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", hourCycle: "h23",
      }));
    }
    const parts = {};
    for (const part of formatters.get(tz).formatToParts(ms)) parts[part.type] = part.value;
    return parts;
  }

  function localDay(ms, tz) {
    const p = localParts(ms, tz);
    return `${p.year}-${p.month}-${p.day}`;
  }

  // A clock time that happens twice (the hour the clocks go back) names its zone, as the
  // server's pages do: 01:30 EDT and 01:30 EST are two different slots.
  function localTime(ms, tz) {
    const p = localParts(ms, tz);
    const text = `${p.hour}:${p.minute}`;
    const twice = [-60, -30, 30, 60].some((minutes) => {
      const q = localParts(ms + minutes * 60000, tz);
      return q.day === p.day && `${q.hour}:${q.minute}` === text;
    });
    return twice ? `${text} ${zoneName(ms, tz)}` : text;
  }

  // One spelling of a zone everywhere, as the server's pages write it: "America/Los Angeles".
  const zoneLabel = (tz) => tz.replace(/_/g, " ");

  function zoneName(ms, tz) {
    const format = new Intl.DateTimeFormat("en-US", { timeZone: tz, timeZoneName: "short" });
    return format.formatToParts(ms).find((part) => part.type === "timeZoneName").value;
  }

  function shiftMonth(month, by) {
    const [y, m] = month.split("-").map(Number);
    const d = new Date(Date.UTC(y, m - 1 + by, 1));
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}`;
  }

  function daysIn(month) {
    const [y, m] = month.split("-").map(Number);
    return new Date(Date.UTC(y, m, 0)).getUTCDate();
  }

  function label(isoDay, options) {
    const [y, m, d] = isoDay.split("-").map(Number);
    return new Intl.DateTimeFormat("en-GB", { timeZone: "UTC", ...options })
      .format(Date.UTC(y, m - 1, d));
  }
  const dayLabel = (isoDay) => label(isoDay, { weekday: "long", day: "numeric", month: "long" });

  // ---------------------------------------------------------------- URLs and DOM
  function pageUrl(params, withTz = true) {
    const query = new URLSearchParams(params);
    if (withTz) query.set("tz", shown.tz);
    return `${data.pageUrl}?${query}`;
  }

  function el(tag, attrs = {}, text = null) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value !== null && value !== undefined) node.setAttribute(name, value);
    }
    if (text !== null) node.textContent = text;
    return node;
  }

  function navControl(which, month, enabled, text) {
    const name = which === "prev" ? "Previous month" : "Next month";
    if (!enabled) return el("span", { class: "cal-nav", "data-nav": which, "aria-disabled": "true", "aria-label": name }, text);
    return el("a", { class: "cal-nav", "data-nav": which, "data-month": month, href: pageUrl({ month }), "aria-label": name }, text);
  }

  function renderCalendar() {
    const today = localDay(Date.now(), shown.tz);
    const focused = calendar.contains(document.activeElement) ? document.activeElement : null;
    const header = el("div", { class: "calendar-header" });
    header.append(
      navControl("prev", shiftMonth(shown.month, -1), shown.month > today.slice(0, 7), "\u2039"),
      el("h2", { id: "calendar-title", "data-role": "month-title" }, label(`${shown.month}-01`, { month: "long", year: "numeric" })),
      navControl("next", shiftMonth(shown.month, 1), `${shiftMonth(shown.month, 1)}-01` <= localDay(horizon, shown.tz), "\u203a"),
    );
    // The same markup as _calendar.html: an ARIA grid of weeks, one cell a day.
    const grid = el("div", { class: "calendar-grid", role: "grid", "aria-labelledby": "calendar-title", "data-role": "grid" });
    const heads = el("div", { class: "cal-row", role: "row" });
    for (const [short, long] of WEEKDAYS) {
      const head = el("span", { class: "cal-dow", role: "columnheader" });
      head.append(el("span", { "aria-hidden": "true" }, short), el("span", { class: "sr-only" }, long));
      heads.append(head);
    }
    grid.append(heads);
    const [y, m] = shown.month.split("-").map(Number);
    const lead = (new Date(Date.UTC(y, m - 1, 1)).getUTCDay() + 6) % 7;
    const count = daysIn(shown.month);
    let row = null;
    const cell = (index, content = null) => {
      if (index % 7 === 0) grid.append((row = el("div", { class: "cal-row", role: "row" })));
      const node = el("span", { class: "cal-cell", role: "gridcell" });
      if (content) node.append(content);
      row.append(node);
    };
    for (let i = 0; i < lead; i++) cell(i);
    for (let d = 1; d <= count; d++) {
      const iso = `${shown.month}-${pad(d)}`;
      const open = iso >= today && shown.byDay.has(iso);
      const selected = iso === shown.day;
      const classes = ["cal-day", open ? "has-slots" : "disabled"];
      if (selected) classes.push("selected");
      if (iso === today) classes.push("today");
      const attrs = { class: classes.join(" "), "data-date": iso, "aria-current": iso === today ? "date" : null };
      if (open) {
        const text = `${dayLabel(iso)}, times available${selected ? ", selected" : ""}`;
        cell(lead + d - 1, el("a", { ...attrs, href: pageUrl({ date: iso }), "aria-label": text }, String(d)));
      } else {
        const day = el("span", { ...attrs, "aria-disabled": "true" }, String(d));
        day.append(el("span", { class: "sr-only" }, ` ${label(iso, { month: "long" })}, no times`));
        cell(lead + d - 1, day);
      }
    }
    for (let i = lead + count; i % 7; i++) cell(i);
    calendar.replaceChildren(header, grid);
    rove(focusDay());
    // Keep keyboard focus where it was (the same day or arrow) across the redraw.
    const again = focused && (focused.dataset.date
      ? calendar.querySelector(`.cal-day[data-date="${focused.dataset.date}"]`)
      : calendar.querySelector(`a[data-nav="${focused.dataset.nav}"]`));
    if (again) {
      if (again.dataset.date) rove(again.dataset.date);
      again.focus();
    }
  }

  // ---------------------------------------------------------------- keyboard grid
  // The WAI-ARIA date-picker grid: the month is one Tab stop (roving tabindex); arrows move
  // by a day or a week, Home/End to the week's ends, PageUp/PageDown by a month.
  const dayCells = () => [...calendar.querySelectorAll(".cal-day[data-date]")];

  /** The day that takes the Tab stop: the chosen one, else today, else the first open. */
  function focusDay() {
    const days = dayCells();
    const pick = days.find((d) => d.dataset.date === shown.day)
      || days.find((d) => d.classList.contains("today"))
      || days.find((d) => d.classList.contains("has-slots")) || days[0];
    return pick ? pick.dataset.date : null;
  }

  function rove(iso) {
    for (const day of dayCells()) day.tabIndex = day.dataset.date === iso ? 0 : -1;
  }

  function isoPlus(iso, days) {
    const [y, m, d] = iso.split("-").map(Number);
    return new Date(Date.UTC(y, m - 1, d + days)).toISOString().slice(0, 10);
  }

  function monthPlus(iso, months) {
    const month = shiftMonth(iso.slice(0, 7), months);
    return `${month}-${pad(Math.min(Number(iso.slice(8)), daysIn(month)))}`;
  }

  /** Move the focus to day `iso`, showing its month first when it lies in another. */
  async function focusDate(iso) {
    if (iso.slice(0, 7) !== shown.month) {
      const nav = calendar.querySelector(`a[data-nav="${iso.slice(0, 7) < shown.month ? "prev" : "next"}"]`);
      if (!nav) return; // before this month or beyond the horizon: stay
      if (!(await show({ month: iso.slice(0, 7), day: null }, { navigate: true }))) return;
    }
    const day = calendar.querySelector(`.cal-day[data-date="${iso}"]`);
    if (!day) return;
    rove(iso);
    day.focus();
  }

  calendar.addEventListener("keydown", (event) => {
    const day = event.target.closest(".cal-day[data-date]");
    if (!day || event.altKey || event.ctrlKey || event.metaKey) return;
    const iso = day.dataset.date;
    const weekday = (new Date(`${iso}T00:00:00Z`).getUTCDay() + 6) % 7;
    const moves = {
      ArrowLeft: () => isoPlus(iso, -1),
      ArrowRight: () => isoPlus(iso, 1),
      ArrowUp: () => isoPlus(iso, -7),
      ArrowDown: () => isoPlus(iso, 7),
      Home: () => isoPlus(iso, -weekday),
      End: () => isoPlus(iso, 6 - weekday),
      PageUp: () => monthPlus(iso, event.shiftKey ? -12 : -1),
      PageDown: () => monthPlus(iso, event.shiftKey ? 12 : 1),
    };
    if (moves[event.key]) {
      event.preventDefault();
      focusDate(moves[event.key]());
    } else if (event.key === " " && day.tagName === "A") {
      event.preventDefault(); // Space chooses the day, as Enter does
      day.click();
    }
  });

  /** A time someone is booking: shown, not bookable, its note read out with it. */
  function heldSlot(start) {
    const node = el("span", { class: "slot held", "data-start": zulu(start), "aria-disabled": "true" }, localTime(start, shown.tz));
    node.append(" ", el("span", { class: "slot-note" }, HELD_NOTE));
    return node;
  }

  /** Note (or renew) the hold of [start, end); false when it was noted already. */
  function noteHold(start, end) {
    const key = `${start}/${end}`;
    const known = holds.has(key);
    holds.set(key, { start, end, until: Date.now() + HOLD_TTL_MS + SWEEP_GRACE_MS });
    return !known;
  }

  /** The holds not ended (those past `until` are forgotten). */
  function liveHolds() {
    const now = Date.now();
    for (const [key, hold] of holds) if (hold.until <= now) holds.delete(key);
    return [...holds.values()];
  }

  const overlapsSlot = (hold, from) => hold.start < from + durationMs && from < hold.end;
  const isHeld = (start) => liveHolds().some((hold) => overlapsSlot(hold, start));

  /** The held starts (still to come) on local day `day`. */
  function heldOn(day) {
    const live = liveHolds();
    if (!day || !live.length) return [];
    const candidates = new Set(seen);
    // A hold of this page's length is (almost always) of this very event type: its start is
    // one of this page's starts even when this page never saw it offered.
    for (const hold of live) if (hold.end - hold.start === durationMs) candidates.add(hold.start);
    const now = Date.now();
    return [...candidates].filter((start) => start > now
      && live.some((hold) => overlapsSlot(hold, start)) && localDay(start, shown.tz) === day);
  }

  /** Forget the holds overlapping [start, end). */
  function unhold(start, end) {
    for (const [key, hold] of holds) if (hold.start < end && start < hold.end) holds.delete(key);
  }

  /** A fresh answer of the slots API: its starts are seen, and a hold covering any of them
   * has ended (the API leaves out every start a live hold covers) though this page missed it. */
  function reconcile(byDay) {
    for (const starts of byDay.values()) {
      for (const start of starts) {
        seen.add(start);
        for (const [key, hold] of holds) if (overlapsSlot(hold, start)) holds.delete(key);
      }
    }
  }

  function renderSlots() {
    const slots = (shown.day && shown.byDay.get(shown.day)) || [];
    dayTitle.textContent = shown.day ? dayLabel(shown.day) : "No day chosen";
    if (tzName) tzName.textContent = zoneLabel(shown.tz);
    if (!slots.length && !heldOn(shown.day).length) {
      const month = label(`${shown.month}-01`, { month: "long" });
      const text = shown.day ? "No free times on this day." : `No free times in ${month}.`;
      slotsBox.replaceChildren(el("p", { class: "empty" }, text));
      return;
    }
    const list = el("ul", { class: "slot-list", "aria-labelledby": "slots-title" });
    const offered = new Set(slots);
    const all = [...new Set([...slots, ...heldOn(shown.day)])].sort((a, b) => a - b);
    for (const start of all) {
      const item = el("li");
      if (offered.has(start) && !isHeld(start)) {
        const query = new URLSearchParams({ start: zulu(start), tz: shown.tz });
        item.append(el("a", { class: "slot", rel: "nofollow", "data-start": zulu(start), href: `${data.bookUrl}?${query}` }, localTime(start, shown.tz)));
      } else {
        item.append(heldSlot(start));
      }
      list.append(item);
    }
    slotsBox.replaceChildren(list);
  }

  function syncSelect() {
    if (!tzSelect || tzSelect.value === shown.tz) return;
    if (![...tzSelect.options].some((o) => o.value === shown.tz)) tzSelect.append(el("option", { value: shown.tz }, zoneLabel(shown.tz)));
    tzSelect.value = shown.tz;
  }

  /** After the viewer's own navigation: a reload or a shared copy opens the same view. */
  function syncUrl() {
    syncSelect();
    const params = shown.day ? { date: shown.day } : { month: shown.month };
    history.replaceState(history.state, "", pageUrl(params, tzInUrl));
  }

  // ---------------------------------------------------------------- loading
  /** The month's slot starts (ms) grouped by local day, and the zone under today's name
   * (the API says Asia/Kolkata when asked for Asia/Calcutta); { closed: true } when the
   * event type takes no bookings now (404: switched off or archived); null when the API
   * fails. */
  async function fetchMonth(tz, month) {
    const query = new URLSearchParams({ from: `${month}-01`, to: `${month}-${pad(daysIn(month))}`, tz });
    try {
      const response = await fetch(`${data.slotsUrl}?${query}`, { headers: { Accept: "application/json" } });
      if (response.status === 404) return { closed: true };
      if (!response.ok) return null;
      const body = await response.json();
      if (typeof body.timezone === "string" && zoneWorks(body.timezone)) tz = body.timezone;
      const byDay = new Map();
      for (const slot of body.slots || []) {
        const start = Date.parse(slot.start);
        if (Number.isNaN(start)) continue;
        const day = localDay(start, tz);
        if (!byDay.has(day)) byDay.set(day, []);
        byDay.get(day).push(start);
      }
      return { byDay, tz };
    } catch (error) {
      return null;
    }
  }

  /** Show `changes` (tz, month, day) with fresh slots; false when the API failed. */
  async function show(changes = {}, { navigate = false } = {}) {
    const target = { ...wanted, ...changes };
    wanted = target;
    const mine = ++ticket;
    const answer = await fetchMonth(target.tz, target.month);
    if (mine !== ticket) return true; // a newer request draws instead
    if (!answer || answer.closed) {
      wanted = { tz: shown.tz, month: shown.month, day: shown.day };
      if (answer) setClosed(true);
      return false;
    }
    setClosed(false);
    const { byDay } = answer;
    let day = target.day;
    if (!day || !day.startsWith(target.month)) day = [...byDay.keys()].sort()[0] || null;
    reconcile(byDay);
    shown = { tz: answer.tz, month: target.month, day, byDay };
    wanted = { tz: shown.tz, month: shown.month, day: shown.day };
    renderCalendar();
    renderSlots();
    if (navigate) syncUrl();
    return true;
  }

  /** Swap the calendar and the times for the "not taking bookings" notice, or back; the
   * change is said in the live region too. */
  function setClosed(closed) {
    if (!closedNotice || closedNotice.hidden === !closed) return;
    closedNotice.hidden = !closed;
    for (const section of offering) section.hidden = closed;
    if (closed) toast(closedNotice.querySelector("h2").textContent.trim());
  }

  // ---------------------------------------------------------------- user actions
  const plainClick = (event) =>
    event.button === 0 && !event.metaKey && !event.ctrlKey && !event.shiftKey && !event.altKey;

  calendar.addEventListener("click", async (event) => {
    const link = event.target.closest("a.cal-day[data-date], a.cal-nav[data-month]");
    if (!link || !plainClick(event)) return;
    event.preventDefault();
    if (link.dataset.date && shown.byDay) {
      shown.day = wanted.day = link.dataset.date;
      renderCalendar();
      renderSlots();
      syncUrl();
      toTimes(event.detail === 0); // detail 0: Enter or Space, not a pointer
      return;
    }
    const changes = link.dataset.date ? { day: link.dataset.date } : { month: link.dataset.month, day: null };
    if (!(await show(changes, { navigate: true }))) window.location.assign(link.href);
  });

  /** After a day is chosen: bring its times into view (on a phone they start below the
   * fold) and, from the keyboard, move the focus to the first time. */
  function toTimes(fromKeyboard) {
    const first = slotsBox.querySelector(".slot:not(.taken):not(.held)");
    const box = dayTitle.getBoundingClientRect();
    if (box.top < 0 || box.bottom > window.innerHeight) {
      dayTitle.scrollIntoView({ behavior: reducedMotion.matches ? "auto" : "smooth", block: "start" });
    }
    if (fromKeyboard && first) first.focus({ preventScroll: true });
  }

  slotsBox.addEventListener("click", (event) => {
    if (event.target.closest('.slot[aria-disabled="true"], .slot.taken, .slot.held')) event.preventDefault();
  });

  async function chooseZone(event) {
    event.preventDefault();
    if (!tzSelect.value || tzSelect.value === wanted.tz) return;
    tzInUrl = true;
    if (!(await show({ tz: tzSelect.value }, { navigate: true }))) tzForm.submit();
  }
  if (tzForm && tzSelect) {
    tzForm.addEventListener("submit", chooseZone);
    tzSelect.addEventListener("change", chooseZone);
    // Choosing a zone shows its times at once: the button is for pages without script.
    const tzSubmit = tzForm.querySelector('[data-role="tz-submit"]');
    if (tzSubmit) tzSubmit.hidden = true;
  }

  // ---------------------------------------------------------------- real time
  function toast(message) {
    if (!toastRegion) return;
    const node = el("div", { class: "toast" }, message);
    toastRegion.append(node);
    setTimeout(() => {
      node.classList.add("leaving");
      node.addEventListener("animationend", () => node.remove(), { once: true });
      setTimeout(() => node.remove(), 1000); // in case no animation runs
    }, 4000);
  }

  /** "10:00 is no longer available", "10:00 and 10:30 are ...": what changed on THIS page
   * (another event type's booking takes other times here than its own start). */
  function goneMessage(labels) {
    const list = labels.length > 1 ? `${labels.slice(0, -1).join(", ")} and ${labels.at(-1)}` : labels[0];
    return `${list} ${labels.length > 1 ? "are" : "is"} no longer available`;
  }

  /** The labels of the times offered on the shown day, by start. */
  function offeredNow() {
    const offered = new Map();
    for (const slot of slotsBox.querySelectorAll(".slot[data-start]:not(.taken):not(.held)")) {
      offered.set(slot.dataset.start, slot.textContent.trim());
    }
    return offered;
  }

  /** Re-read the slots; say which of the times offered `before` went away meanwhile. */
  async function reread(before = offeredNow()) {
    const ok = await show();
    if (!ok) return ok;
    const after = offeredNow();
    const gone = [...before].filter(([start]) => !after.has(start)).map(([, text]) => text);
    if (gone.length) toast(goneMessage(gone));
    return ok;
  }

  /** Disable at once every offered slot overlapping [start, end); [start, label] of each. */
  function markTaken(start, end) {
    const hit = [];
    // A held time that gets booked is gone too (its "someone is booking" note goes with it).
    for (const slot of slotsBox.querySelectorAll(".slot[data-start]:not(.taken)")) {
      const from = Date.parse(slot.dataset.start);
      if (!(from < end && start < from + durationMs)) continue;
      if (slot.tagName === "BUTTON") slot.disabled = true;
      else slot.setAttribute("aria-disabled", "true");
      const note = slot.querySelector(".slot-note");
      if (note) note.remove();
      slot.classList.remove("held");
      slot.classList.add("taken");
      slot.tabIndex = -1;
      hit.push([slot.dataset.start, slot.textContent.trim()]);
      slot.setAttribute("aria-label", `${slot.textContent.trim()}, no longer available`);
    }
    return hit;
  }

  /** Show every offered slot drawn now that overlaps [start, end) held; their labels.
   * (The hold is noted whatever day is drawn: another day shows it held when drawn.) */
  function markHeld(start, end) {
    const hit = [];
    for (const slot of slotsBox.querySelectorAll(".slot[data-start]:not(.taken):not(.held)")) {
      const from = Date.parse(slot.dataset.start);
      if (!(from < end && start < from + durationMs)) continue;
      hit.push(slot.textContent.trim());
      slot.replaceWith(heldSlot(from));
    }
    return hit;
  }

  const forUs = (payload) => payload && payload.event_type_id === eventTypeId;

  // A join the server could not answer (its database away) is tried again after pauses
  // growing from the first to the longest. While joined, the page joins again now and then:
  // `joined` names the expert's schedule version, and a version other than the one last
  // read means an event was lost on the way (Redis away), so the page re-reads.
  const JOIN_RETRY_FIRST_MS = 1000;
  const JOIN_RETRY_LONGEST_MS = 30000;
  const REJOIN_MS = Number(data.rejoinSeconds || 60) * 1000;

  function connect() {
    if (typeof window.io !== "function") return;
    const socket = window.io();
    let version = null; // the schedule version of the slots shown, once read after a join
    let rejoining = false; // the next `joined` answers a check, not a (re)connect
    let retryMs = JOIN_RETRY_FIRST_MS;
    let retryTimer = null;
    const join = (check = false) => {
      clearTimeout(retryTimer);
      retryTimer = null;
      rejoining = check;
      socket.emit("join", { event_type_id: eventTypeId });
    };
    // Every (re)connect joins again; the server's `joined` then triggers a re-read, so a
    // booking committed while we were away (or before the first join) is not missed.
    socket.on("connect", () => join());
    // data-live="true" says the page is subscribed and up to date (tests and styles use it).
    socket.on("joined", (payload) => {
      if (!forUs(payload)) return;
      retryMs = JOIN_RETRY_FIRST_MS;
      const check = rejoining;
      rejoining = false;
      if (check && payload.version === version) return;
      version = payload.version;
      show().then((ok) => {
        if (!ok) version = null; // not read after all: the next check re-reads
        data.live = "true";
      });
    });
    socket.on("error", (payload) => {
      const code = payload && payload.code;
      if (code !== "unavailable" && code !== "internal_error") return;
      const pause = retryMs * (0.8 + Math.random() * 0.4); // spread the crowd out
      retryMs = Math.min(retryMs * 2, JOIN_RETRY_LONGEST_MS);
      clearTimeout(retryTimer);
      retryTimer = setTimeout(() => socket.connected && join(rejoining), pause);
    });
    socket.on("disconnect", () => {
      clearTimeout(retryTimer);
      data.live = "false";
    });
    const check = () => {
      if (socket.connected && data.live === "true" && !retryTimer && !document.hidden) join(true);
    };
    setInterval(check, REJOIN_MS);
    document.addEventListener("visibilitychange", check);
    socket.on("slot_taken", (payload) => {
      if (!forUs(payload)) return;
      unhold(Date.parse(payload.start), Date.parse(payload.end));
      const before = offeredNow();
      const taken = markTaken(Date.parse(payload.start), Date.parse(payload.end));
      if (taken.length) toast(goneMessage(taken.map(([, text]) => text)));
      // Buffers may take neighbouring times too: those are named after the re-read.
      for (const [start] of taken) before.delete(start);
      reread(before);
    });
    socket.on("slot_held", (payload) => {
      if (!forUs(payload)) return;
      const start = Date.parse(payload.start);
      const end = Date.parse(payload.end);
      if (Number.isNaN(start) || Number.isNaN(end)) return;
      // A renewal of a hold already shown: it stays held, nothing else changed.
      if (!noteHold(start, end)) return;
      const before = offeredNow();
      const labels = markHeld(start, end);
      if (labels.length) toast(`${labels.join(", ")}: ${HELD_NOTE.toLowerCase()}`);
      for (const [from] of before) if (isHeld(Date.parse(from))) before.delete(from);
      // Buffers may keep neighbouring times from being offered too: those go after a re-read.
      reread(before);
    });
    socket.on("slot_released", (payload) => {
      if (!forUs(payload)) return;
      unhold(Date.parse(payload.start), Date.parse(payload.end));
      show();
    });
    // Something else changed what this page offers (a calendar sync, say): re-read.
    socket.on("slots_changed", (payload) => forUs(payload) && reread());
  }

  // ---------------------------------------------------------------- start
  // The times the server drew: offered ones are seen, held ones kept held until their
  // hold ends.
  for (const slot of slotsBox.querySelectorAll(".slot[data-start]")) {
    const start = Date.parse(slot.dataset.start);
    seen.add(start);
    if (slot.classList.contains("held")) noteHold(start, start + durationMs);
  }
  rove(focusDay());
  if (!zoneWorks(shown.tz)) return; // this browser cannot draw that zone: keep the plain page
  const browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone || null;
  if (!tzInUrl && browserZone && browserZone !== shown.tz && zoneWorks(browserZone)) {
    show({ tz: browserZone }).then((ok) => ok && syncSelect());
  }
  connect();
})();
