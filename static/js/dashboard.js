/* Dashboard enhancements. Every page works without this file: links stay selectable,
   the availability editor has a spare empty row per day, and forms post normally.
   - [data-copy="<input id>"]: copies that input's value (a "Copy link" button)
   - [data-slug-source] / [data-slug-target]: suggests a slug from the title while the slug
     is empty or still the suggestion; [data-slug-preview] shows the resulting link
   - [data-intervals="<prefix>"] lists of .interval-row: Add/Remove buttons, renumbered labels
   - [data-day-off-toggle="<prefix>"]: a checkbox that disables that list's time inputs
   - [data-questions]: the booking questions editor. Without script it shows a fixed set of
     rows, numbered positions and a "More questions" disclosure; with it, one empty row at a
     time ("Add a question"), Move up/down buttons instead of the position numbers, and the
     choices box only for a Choice answer
   - form[data-confirm]: asks before submitting (e.g. Delete) */
(function () {
  "use strict";

  function toast(message) {
    var region = document.querySelector(".toast-region");
    if (!region) return;
    var item = document.createElement("div");
    item.className = "toast";
    item.textContent = message;
    region.appendChild(item);
    setTimeout(function () {
      item.classList.add("leaving");
      setTimeout(function () { item.remove(); }, 400);
    }, 2500);
  }

  /* ---------- Copy link ---------- */
  function copyText(input) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(input.value);
    }
    // Plain-http self-hosting has no Clipboard API: fall back to selecting and copying.
    input.focus();
    input.select();
    var copied = false;
    try { copied = document.execCommand("copy"); } catch (error) { copied = false; }
    return copied ? Promise.resolve() : Promise.reject(new Error("copy failed"));
  }

  document.querySelectorAll("[data-copy]").forEach(function (button) {
    var input = document.getElementById(button.dataset.copy);
    if (!input) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      copyText(input).then(function () {
        var label = button.textContent;
        button.textContent = "Copied!";
        toast("Copied to the clipboard");
        setTimeout(function () { button.textContent = label; }, 2000);
      }, function () {
        input.focus();
        input.select();
        toast("Press Ctrl+C (or ⌘C) to copy the selected link");
      });
    });
  });

  document.querySelectorAll("[data-select-on-focus]").forEach(function (input) {
    input.addEventListener("focus", function () { input.select(); });
  });

  /* ---------- Slug suggestion ---------- */
  function slugify(text) {
    return text
      .normalize("NFKD")
      .replace(/[\u0300-\u036f]/g, "")
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-+|-+$/g, "")
      .slice(0, 64)
      .replace(/-+$/, "");
  }

  var title = document.querySelector("[data-slug-source]");
  var slug = document.querySelector("[data-slug-target]");
  var preview = document.querySelector("[data-slug-preview]");
  if (title && slug) {
    // Follow the title only while the slug is empty or still our own suggestion.
    var suggested = slug.value === "" ? "" : null;
    var showPreview = function () {
      if (preview) preview.textContent = slug.value.trim().toLowerCase() || "your-slug";
    };
    title.addEventListener("input", function () {
      if (suggested === null || slug.value !== suggested) return;
      suggested = slugify(title.value);
      slug.value = suggested;
      showPreview();
    });
    slug.addEventListener("input", function () {
      suggested = slug.value === "" ? "" : null;
      showPreview();
    });
  }

  /* ---------- Interval rows ---------- */
  function rowsOf(list) { return list.querySelectorAll(".interval-row"); }

  function renumber(list) {
    var label = list.dataset.label;
    rowsOf(list).forEach(function (row, index) {
      var number = index + 1;
      var inputs = row.querySelectorAll("input[type=time]");
      inputs[0].setAttribute("aria-label", label + " start " + number);
      inputs[1].setAttribute("aria-label", label + " end " + number);
      var hidden = row.querySelector("[data-remove-interval] .sr-only");
      if (hidden) hidden.textContent = "Remove " + label + " interval " + number;
    });
    var note = document.querySelector('[data-day-off-note="' + list.dataset.intervals + '"]');
    if (note) note.hidden = rowsOf(list).length > 0;
  }

  function newRow(list) {
    var prefix = list.dataset.intervals;
    var row = document.createElement("li");
    row.className = "interval-row";
    var start = document.createElement("input");
    start.type = "time";
    start.name = prefix + "-start";
    var dash = document.createElement("span");
    dash.setAttribute("aria-hidden", "true");
    dash.textContent = "–";
    var end = document.createElement("input");
    end.type = "time";
    end.name = prefix + "-end";
    var remove = document.createElement("button");
    remove.type = "button";
    remove.className = "btn-secondary btn-small remove-interval";
    remove.title = "Remove";
    remove.setAttribute("data-remove-interval", "");
    var cross = document.createElement("span");
    cross.setAttribute("aria-hidden", "true");
    cross.textContent = "✕";
    var hidden = document.createElement("span");
    hidden.className = "sr-only";
    remove.append(cross, hidden);
    row.append(start, " ", dash, " ", end, " ", remove);
    return row;
  }

  document.querySelectorAll("[data-intervals]").forEach(function (list) {
    var prefix = list.dataset.intervals;
    var addButton = document.querySelector('[data-add-interval="' + prefix + '"]');
    var keepOne = list.hasAttribute("data-keep-one");

    // With buttons to add rows, the spare empty row is clutter, unless it is the only one.
    list.querySelectorAll("[data-spare]").forEach(function (row) {
      if (!keepOne || rowsOf(list).length > 1) row.remove();
    });
    list.querySelectorAll("[data-remove-interval]").forEach(function (b) { b.hidden = false; });
    renumber(list);

    if (addButton) {
      addButton.hidden = false;
      addButton.addEventListener("click", function () {
        var row = newRow(list);
        list.appendChild(row);
        renumber(list);
        row.querySelector("input").focus();
      });
    }
    list.addEventListener("click", function (event) {
      var remove = event.target.closest("[data-remove-interval]");
      if (!remove) return;
      var row = remove.closest(".interval-row");
      if (keepOne && rowsOf(list).length === 1) {
        row.querySelectorAll("input").forEach(function (input) { input.value = ""; });
        row.querySelector("input").focus();
        return;
      }
      row.remove();
      renumber(list);
      if (addButton) addButton.focus();
    });
  });

  /* ---------- Day off checkbox ---------- */
  document.querySelectorAll("[data-day-off-toggle]").forEach(function (box) {
    var list = document.querySelector('[data-intervals="' + box.dataset.dayOffToggle + '"]');
    var addButton = document.querySelector('[data-add-interval="' + box.dataset.dayOffToggle + '"]');
    if (!list) return;
    var sync = function () {
      list.querySelectorAll("input, button").forEach(function (el) { el.disabled = box.checked; });
      if (addButton) addButton.disabled = box.checked;
    };
    box.addEventListener("change", sync);
    sync();
  });

  /* ---------- Booking questions ---------- */
  function questionsEditor(editor) {
    var addButton = editor.querySelector("[data-add-question]");
    var more = editor.querySelector("[data-more-questions]");
    // One list of rows, in order: the disclosure's rows join the others, hidden while empty.
    if (more) {
      more.querySelectorAll("[data-question-row]").forEach(function (row) {
        row.hidden = true;
        editor.insertBefore(row, more);
      });
      more.remove();
    }
    var rows = function () { return Array.prototype.slice.call(editor.querySelectorAll("[data-question-row]")); };
    var shown = function () { return rows().filter(function (row) { return !row.hidden; }); };

    function renumber() {
      var visible = shown();
      rows().forEach(function (row, index) {
        var position = row.querySelector("[data-question-position]");
        if (position) position.value = String(index + 1);
        var number = visible.indexOf(row) + 1;
        row.querySelector("[data-question-number]").textContent = String(number || index + 1);
        row.querySelectorAll("[data-move]").forEach(function (button) {
          var up = button.dataset.move === "up";
          button.querySelector(".sr-only").textContent = " question " + number;
          button.disabled = up ? number <= 1 : number >= visible.length;
        });
      });
      if (addButton) addButton.hidden = rows().every(function (row) { return !row.hidden; });
    }

    function syncChoices(row) {
      var kind = row.querySelector("[data-question-kind]");
      var choices = row.querySelector("[data-question-choices]");
      if (kind && choices) choices.hidden = kind.value !== "choice";
    }

    function moveButton(direction) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "btn-secondary btn-small";
      button.dataset.move = direction;
      var text = document.createElement("span");
      text.textContent = direction === "up" ? "Move up" : "Move down";
      var hidden = document.createElement("span");
      hidden.className = "sr-only";
      button.append(text, hidden);
      return button;
    }

    rows().forEach(function (row) {
      // The buttons set the order: the position numbers are for the page without script.
      var position = row.querySelector("[data-question-position]");
      if (position) position.closest(".field").hidden = true;
      var moves = document.createElement("div");
      moves.className = "question-moves";
      moves.append(moveButton("up"), moveButton("down"));
      row.appendChild(moves);
      var kind = row.querySelector("[data-question-kind]");
      if (kind) kind.addEventListener("change", function () { syncChoices(row); });
      syncChoices(row);
    });
    renumber();

    editor.addEventListener("click", function (event) {
      var button = event.target.closest("[data-move]");
      if (!button) return;
      var row = button.closest("[data-question-row]");
      var visible = shown();
      var index = visible.indexOf(row);
      var up = button.dataset.move === "up";
      var other = visible[up ? index - 1 : index + 1];
      if (!other) return;
      if (up) editor.insertBefore(row, other);
      else editor.insertBefore(other, row);
      renumber();
      var label = row.querySelector("input[type=text]");
      toast("“" + (label && label.value ? label.value : "Question") + "” is now question " + (visible.indexOf(other) + 1));
      // Keep focus on the pressed button, or on its twin when it just became disabled.
      (button.disabled ? row.querySelector('[data-move="' + (up ? "down" : "up") + '"]') : button).focus();
    });

    if (addButton) {
      addButton.addEventListener("click", function () {
        var next = rows().find(function (row) { return row.hidden; });
        if (!next) return;
        next.hidden = false;
        // New rows go last among the questions shown.
        var visible = shown();
        var last = visible[visible.length - 1];
        if (last !== next) editor.insertBefore(next, last.nextSibling);
        renumber();
        next.querySelector("input[type=text]").focus();
      });
    }
  }

  document.querySelectorAll("[data-questions]").forEach(questionsEditor);

  /* ---------- Confirmations ---------- */
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
})();
