// Building the page. Every text, above all an LLM's input and output, becomes a text node: no
// markup from data is ever parsed (no HTML sink is used anywhere in this UI; a unit test in
// src/api/ui.rs checks).

/** Creates an element: `el("a", {href: "#/x", class: "link", onclick: fn}, "text", child)`. */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else if (value === true) {
      node.setAttribute(name, "");
    } else {
      node.setAttribute(name, String(value));
    }
  }
  append(node, children);
  return node;
}

/** Appends children: nodes as they are, anything else as text. */
export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replaces the content of `node`. */
export function replace(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

/** The first `length` characters of a text on one line, or an em dash. */
export function excerpt(text, length = 120) {
  if (text === null || text === undefined || text === "") return "—";
  const line = String(text).replace(/\s+/g, " ").trim();
  return line.length > length ? line.slice(0, length - 1) + "…" : line;
}

export function formatDuration(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms === 0) return "0 ms";
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
}

export function formatCost(cost) {
  if (cost === null || cost === undefined) return "—";
  if (cost === 0) return "$0";
  return cost < 0.01 ? `$${cost.toPrecision(2)}` : `$${cost.toFixed(4)}`;
}

export function formatNumber(value) {
  if (value === null || value === undefined) return "—";
  return Number(value).toLocaleString("en-US");
}

export function formatTime(rfc3339) {
  if (!rfc3339) return "—";
  const date = new Date(rfc3339);
  return Number.isNaN(date.getTime()) ? rfc3339 : date.toLocaleString();
}

/** A status badge: ok, error or unset. */
export function statusBadge(status) {
  return el("span", { class: `badge status-${status}` }, status);
}

/** A message shown in place of content while loading or after a failure. */
export function notice(text, kind = "muted") {
  return el("p", { class: kind, role: kind === "error" ? "alert" : null }, text);
}

/** The word being typed: what ends at the caret and may be part of a path like `span.attributes["k`. */
function wordAtCaret(input) {
  const before = input.value.slice(0, input.selectionStart ?? input.value.length);
  return /[\w.[\]"\-\/:]*$/.exec(before)[0];
}

/**
 * A filter bar: the labelled input of a filter-language condition (SPEC §7), suggestions of what
 * the word being typed may become (`suggestions`: a promise of names), and the server's parse
 * error shown under the condition with a caret at its column. Lives inside the caller's form,
 * whose submit (Enter, Apply) runs it.
 */
export function filterBar({ value = "", placeholder = "", hint = "", suggestions = Promise.resolve([]) }) {
  const input = el("input", {
    id: "filter", name: "filter", type: "text", class: "filter-input", value, placeholder,
    spellcheck: "false", autocomplete: "off", "aria-describedby": "filter-hint filter-error",
  });
  const list = el("ul", { class: "suggestions", id: "filter-suggestions", "aria-label": "Suggestions", hidden: true });
  const error = el("div", { class: "filter-error", id: "filter-error", role: "alert" });
  const bar = el("div", { class: "field filter-bar" },
    el("label", { for: "filter" }, "Filter"), input, list,
    el("p", { class: "hint", id: "filter-hint" }, hint), error);
  let names = [];
  suggestions.then((loaded) => { names = loaded; }, () => {});

  const hide = () => {
    list.hidden = true;
    replace(list);
  };
  const choose = (name) => {
    const caret = input.selectionStart ?? input.value.length;
    const start = caret - wordAtCaret(input).length;
    input.value = input.value.slice(0, start) + name + input.value.slice(caret);
    hide();
    input.focus();
    input.setSelectionRange(start + name.length, start + name.length);
  };
  const suggest = () => {
    const word = wordAtCaret(input).toLowerCase();
    const matches = word === "" ? [] : names
      .filter((name) => name.toLowerCase().startsWith(word) && name.toLowerCase() !== word).slice(0, 8);
    if (matches.length === 0) return hide();
    replace(list, matches.map((name) => el("li", {}, el("button", {
      type: "button", class: "suggestion", onclick: () => choose(name),
      onkeydown: (event) => {
        const item = event.currentTarget.parentElement;
        const next = event.key === "ArrowDown" ? item.nextElementSibling
          : event.key === "ArrowUp" ? item.previousElementSibling : null;
        if (next) {
          event.preventDefault();
          next.firstChild.focus();
        } else if (event.key === "Escape" || event.key === "ArrowUp") {
          event.preventDefault();
          hide();
          input.focus();
        }
      },
    }, name))));
    list.hidden = false;
  };
  input.addEventListener("input", suggest);
  input.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown" && !list.hidden) {
      event.preventDefault();
      list.querySelector("button").focus();
    } else if (event.key === "Escape") {
      hide();
    } else if (event.key === "Enter") {
      hide();
    }
  });
  bar.addEventListener("focusout", (event) => {
    if (!bar.contains(event.relatedTarget)) hide();
  });

  return {
    element: bar,
    input,
    /** The condition as typed, trimmed. */
    value: () => input.value.trim(),
    /**
     * Shows the server's message about `condition`; when it names a column, a caret marks it
     * under the condition and, when `focus`, the input's caret goes there.
     */
    showError(message, condition, focus = false) {
      const column = Number((/column (\d+)/.exec(message) || [])[1]) || 0;
      input.setAttribute("aria-invalid", "true");
      // An auto-refresh meeting the same error again does not announce it again.
      if (error.dataset.shown !== `${condition}\n${message}`) {
        error.dataset.shown = `${condition}\n${message}`;
        replace(error, el("p", { class: "error" }, message),
          column > 0 ? el("pre", { class: "caret", "aria-hidden": "true" },
            `${condition}\n${" ".repeat(column - 1)}^`) : null);
      }
      if (focus && column > 0 && input.value.trim() === condition) {
        const at = input.value.indexOf(condition) + column - 1;
        input.focus();
        input.setSelectionRange(at, Math.min(at + 1, input.value.length));
      }
    },
    clearError() {
      input.removeAttribute("aria-invalid");
      delete error.dataset.shown;
      replace(error);
    },
  };
}

/** Whether a failed request was refused for its filter (a 400 naming the column). */
export function isFilterError(failure) {
  return failure.status === 400 && /column \d+/.test(failure.message);
}
