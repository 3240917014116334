/**
 * DOM building without markup strings: the page's Content-Security-Policy requires
 * Trusted Types and allows none, so innerHTML and friends would throw. Everything is
 * made with createElement and textContent, which never parse text as markup.
 */
const SVG_NS = "http://www.w3.org/2000/svg";

function put(el, attrs) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else if (name === "className") {
      el.setAttribute("class", value);
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** h("p", {className: "x"}, "text", h("b", {}, "bold")) */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  put(el, attrs);
  append(el, children);
  return el;
}

/** The same for SVG elements (charts, QR codes). */
export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  put(el, attrs);
  append(el, children);
  return el;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

/** Say `message` to screen readers (and show it briefly): the page's polite live region. */
export function announce(message, kind = "info") {
  const region = document.getElementById("toasts");
  if (!region) return;
  const toast = h("p", { className: `toast toast-${kind}` }, message);
  region.append(toast);
  setTimeout(() => toast.remove(), 6000);
}
