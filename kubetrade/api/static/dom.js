// What the dashboard's scripts share to build the page: elements whose text is set
// with textContent (never as HTML), and numbers formatted for reading.
"use strict";

(function () {
  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  // at most `digits` fraction digits; with `fixed`, exactly that many
  function num(v, digits = 2, fixed = false) {
    if (v === null || v === undefined || v === "") return "–";
    const n = Number(v);
    if (!Number.isFinite(n)) return String(v);
    const f = { minimumFractionDigits: fixed ? digits : 0, maximumFractionDigits: digits };
    return n.toLocaleString(undefined, f);
  }

  window.ktDom = { el, num };
})();
