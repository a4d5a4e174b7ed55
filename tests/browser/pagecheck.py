"""Measurements on a rendered page in Chromium, for the phone and accessibility tests (test_phone_and_contrast.py).

- `overflow(page)`: whether the page is wider than the window (document.documentElement.scrollWidth against the
  width the page has to lay out in), and which elements stick out.
- `contrast(page)`: every visible piece of text — text nodes, form fields, ::before/::after content, SVG text —
  measured against its effective background: the first opaque background up the tree, with the translucent
  ones in between blended over it, as WCAG 2 relative luminance; 4.5:1 needed, 3:1 for large text (at least
  24 px, or bold and at least 18.66 px). Disabled controls are exempt (WCAG 1.4.3).
- `label_mismatches(page)`: table cells whose data-label (the column name shown beside the value when tables are
  stacked on a phone) is not their column's heading.

The measuring is JavaScript run in the page, so it sees what Chromium computed: custom properties resolved,
media queries (prefers-color-scheme, the phone's width) applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import Page

NORMAL_TEXT = 4.5
LARGE_TEXT = 3.0

_COLOURS_JS = r"""
const parse = (c) => {
  if (!c || c === "transparent") return [0, 0, 0, 0];
  let m = c.match(/^rgba?\(([^)]*)\)$/);
  if (m) {
    const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(parseFloat);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  }
  m = c.match(/^color\(srgb ([^)]*)\)$/);
  if (m) {
    const p = m[1].split(/[\s\/]+/).filter(Boolean).map(parseFloat);
    return [p[0] * 255, p[1] * 255, p[2] * 255, p.length > 3 ? p[3] : 1];
  }
  return null;  // a colour space this does not convert: reported, not guessed
};
const over = (top, below) => {  // `top` (with alpha) blended over the opaque `below`
  const a = top[3];
  return [0, 1, 2].map((i) => top[i] * a + below[i] * (1 - a)).concat([1]);
};
const luminance = (c) => {
  const lin = c.slice(0, 3).map((v) => {
    v /= 255;
    return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
  });
  return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2];
};
const ratio = (a, b) => {
  const la = luminance(a), lb = luminance(b);
  return (Math.max(la, lb) + 0.05) / (Math.min(la, lb) + 0.05);
};
// The background an element's text is drawn on: backgrounds up the tree until an opaque one (white if none),
// the translucent ones blended over it in order.
const background = (el) => {
  const layers = [];
  for (let n = el; n && n.nodeType === 1; n = n.parentElement) {
    const bg = parse(getComputedStyle(n).backgroundColor);
    if (bg === null) return null;
    if (bg[3] > 0) layers.push(bg);
    if (bg[3] >= 1) break;
  }
  let colour = [255, 255, 255, 1];
  if (layers.length && layers[layers.length - 1][3] >= 1) colour = layers.pop();
  while (layers.length) colour = over(layers.pop(), colour);
  return colour;
};
const opacity = (el) => {
  let o = 1;
  for (let n = el; n && n.nodeType === 1; n = n.parentElement) o *= parseFloat(getComputedStyle(n).opacity);
  return o;
};
const describe = (el) => {
  const parts = [];
  for (let n = el; n && n.nodeType === 1 && parts.length < 4; n = n.parentElement) {
    let s = n.tagName.toLowerCase();
    if (n.id) s += "#" + n.id;
    else if (n.classList.length) s += "." + Array.from(n.classList).join(".");
    parts.unshift(s);
  }
  return parts.join(" > ");
};
"""

_CONTRAST_JS = "() => {" + _COLOURS_JS + r"""
  const results = [];
  const measure = (el, style, text, what) => {
    const fgRaw = parse(el instanceof SVGElement ? style.fill : style.color);
    let bg = background(el);
    if (style !== getComputedStyle(el)) {  // a pseudo-element with a background of its own
      const own = parse(style.backgroundColor);
      if (own && bg && own[3] > 0) bg = over(own, bg);
    }
    const size = parseFloat(style.fontSize), weight = parseInt(style.fontWeight, 10) || 400;
    const large = size >= 24 || (weight >= 700 && size >= 18.66);
    const entry = { where: describe(el) + what, text: text.trim().replace(/\s+/g, " ").slice(0, 60),
                    size: size, weight: weight, large: large, fg: style.color, bg: null, ratio: null };
    if (fgRaw === null || bg === null) { results.push(entry); return; }
    const fg = over([fgRaw[0], fgRaw[1], fgRaw[2], fgRaw[3] * opacity(el)], bg);
    entry.fg = "rgb(" + fg.slice(0, 3).map(Math.round).join(", ") + ")";
    entry.bg = "rgb(" + bg.slice(0, 3).map(Math.round).join(", ") + ")";
    entry.ratio = Math.round(ratio(fg, bg) * 100) / 100;
    results.push(entry);
  };
  const shown = (el) => el.checkVisibility({ visibilityProperty: true }) && !el.closest(":disabled");
  const seen = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!el || seen.has(el) || !node.data.trim()) continue;
    if (el.closest("script, style, template, option, title, noscript, textarea")) continue;
    const range = document.createRange();
    range.selectNodeContents(node);
    if (!range.getClientRects().length || !shown(el)) continue;
    seen.add(el);
    measure(el, getComputedStyle(el), el instanceof SVGElement ? node.data : (el.innerText || node.data), "");
  }
  document.querySelectorAll("input:not([type=hidden]):not([type=checkbox]):not([type=radio]), select, textarea")
    .forEach((el) => {
      if (shown(el) && el.getClientRects().length) measure(el, getComputedStyle(el), el.value || el.type, "");
    });
  document.querySelectorAll("body *").forEach((el) => {
    for (const pseudo of ["::before", "::after"]) {
      const style = getComputedStyle(el, pseudo);
      const content = style.content;
      if (!content || content === "none" || content === "normal" || style.display === "none") continue;
      // Strings and attr() resolved; counters and images are not text this measures.
      let text = "";
      content.replace(/"((?:[^"\\]|\\.)*)"|attr\(\s*([^)\s]+)\s*\)/g, (m, str, attr) => {
        text += str !== undefined ? str : (el.getAttribute(attr) || "");
        return m;
      });
      if (!text || !text.trim() || !shown(el) || !el.getClientRects().length) continue;
      measure(el, style, text, pseudo);
    }
  });
  return results;
}"""

_OVERFLOW_JS = "() => {" + _COLOURS_JS + r"""
  const doc = document.documentElement;
  const limit = doc.clientWidth;
  const out = [];
  document.querySelectorAll("body *").forEach((el) => {
    const r = el.getBoundingClientRect();
    if (!r.width || r.right <= limit + 0.5) return;
    // Inside a box that scrolls or clips sideways, an element sticks out of that box, not of the page.
    for (let n = el.parentElement; n && n !== document.body; n = n.parentElement) {
      if (getComputedStyle(n).overflowX !== "visible") return;
    }
    out.push(describe(el) + " right edge " + Math.round(r.right) + " px: " + el.textContent.trim().slice(0, 50));
  });
  return { scrollWidth: doc.scrollWidth, clientWidth: limit, innerWidth: window.innerWidth,
           sticking_out: out.slice(-8) };
}"""

_LABELS_JS = r"""() => {
  const wrong = [];
  document.querySelectorAll("table").forEach((table) => {
    const heads = Array.from(table.querySelectorAll("thead th")).map((th) => th.textContent.trim());
    if (!heads.length) return;
    table.querySelectorAll("tbody tr").forEach((tr) => {
      const cells = Array.from(tr.children);
      if (cells.length !== heads.length) return;  // a "No runs." row spanning every column
      cells.forEach((td, i) => {
        if (td.getAttribute("data-label") !== heads[i]) {
          wrong.push((table.id || table.className) + " column " + (i + 1) + ": data-label " +
                     JSON.stringify(td.getAttribute("data-label")) + ", heading " + JSON.stringify(heads[i]));
        }
      });
    });
  });
  return Array.from(new Set(wrong));
}"""

_BODY_BACKGROUND_JS = "() => {" + _COLOURS_JS + r"""
  const bg = background(document.body);
  return { colour: getComputedStyle(document.body).backgroundColor, luminance: bg === null ? null : luminance(bg) };
}"""


@dataclass
class Text:
    """One piece of text as measured: where, what, its colours and their contrast ratio (None: not measurable)."""

    where: str
    text: str
    size: float
    weight: int
    large: bool
    fg: str
    bg: str | None
    ratio: float | None

    @property
    def needed(self) -> float:
        return LARGE_TEXT if self.large else NORMAL_TEXT

    @property
    def fails(self) -> bool:
        return self.ratio is None or self.ratio < self.needed

    def __str__(self) -> str:
        got = "not measurable" if self.ratio is None else f"{self.ratio:.2f}:1"
        return (f"{got} (needs {self.needed}:1) {self.fg} on {self.bg}, {self.size:g}px/{self.weight}"
                f" at {self.where}: {self.text!r}")


def contrast(page: Page) -> list[Text]:
    """Every visible text of the page, measured."""
    return [Text(**entry) for entry in page.evaluate(_CONTRAST_JS)]


def overflow(page: Page) -> dict[str, Any]:
    """{scrollWidth, clientWidth, innerWidth, sticking_out}: the page fits when scrollWidth <= clientWidth (the
    window's width less a vertical scroll bar's)."""
    result: dict[str, Any] = page.evaluate(_OVERFLOW_JS)
    return result


def label_mismatches(page: Page) -> list[str]:
    """Table cells whose data-label is not their column's heading."""
    result: list[str] = page.evaluate(_LABELS_JS)
    return result


def body_luminance(page: Page) -> float | None:
    """The relative luminance (0 black … 1 white) of the page's background."""
    value: float | None = page.evaluate(_BODY_BACKGROUND_JS)["luminance"]
    return value


_FOCUS_JS = "() => {" + _COLOURS_JS + r"""
  const el = document.activeElement;
  if (!el || el === document.body || el === document.documentElement) return { where: "body", problem: "" };
  const style = getComputedStyle(el);
  const width = parseFloat(style.outlineWidth) || 0;
  const result = { where: el.id ? el.tagName.toLowerCase() + "#" + el.id : describe(el),
                   outline: [style.outlineStyle, style.outlineWidth, style.outlineColor].join(" "),
                   around: null, ratio: null, problem: "" };
  if (style.outlineStyle === "none" || width < 2) { result.problem = "no outline of 2 px or more"; return result; }
  // What the ring is drawn on: the topmost other element just outside the element's box, left of it (right of
  // it when that is off-screen), else its parent.
  const r = el.getBoundingClientRect();
  const offset = (parseFloat(style.outlineOffset) || 0) + width / 2;
  const y = Math.min(Math.max(r.top + r.height / 2, 0), window.innerHeight - 1);
  let x = r.left - offset;
  if (x < 0) x = r.right + offset;
  let around = el.parentElement;
  for (const candidate of document.elementsFromPoint(x, y)) {
    if (candidate !== el && !el.contains(candidate)) { around = candidate; break; }
  }
  const ring = parse(style.outlineColor);
  const bg = background(around);
  if (ring === null || bg === null) { result.problem = "colours not measurable"; return result; }
  result.around = describe(around) + " " + "rgb(" + bg.slice(0, 3).map(Math.round).join(", ") + ")";
  result.ratio = Math.round(ratio(over(ring, bg), bg) * 100) / 100;
  if (result.ratio < 3) result.problem = "the ring is below 3:1 against what is around it";
  return result;
}"""


def focus_ring(page: Page) -> dict[str, Any]:
    """The focused element's outline: {where, outline, around, ratio, problem}; `problem` is empty when the ring
    is at least 2 px wide and 3:1 against what it is drawn on (WCAG 2.4.7, 1.4.11); `where` is "body" when
    nothing is focused."""
    result: dict[str, Any] = page.evaluate(_FOCUS_JS)
    return result


_MARKS_JS = "() => {" + _COLOURS_JS + r"""
  const out = [];
  document.querySelectorAll("svg .bar").forEach((mark) => {
    if (!mark.getClientRects().length) return;
    const fill = parse(getComputedStyle(mark).fill);
    const bg = background(mark.ownerSVGElement.parentElement);
    out.push({ where: describe(mark), fill: getComputedStyle(mark).fill,
               ratio: fill && bg ? Math.round(ratio(over(fill, bg), bg) * 100) / 100 : null });
  });
  return out;
}"""

GRAPHICS = 3.0


def chart_marks(page: Page) -> list[dict[str, Any]]:
    """Each drawn bar of the charts and sparklines (`svg .bar`): {where, fill, ratio} against the background the
    chart sits on; WCAG 1.4.11 asks 3:1 of the parts of a graphic needed to understand it."""
    result: list[dict[str, Any]] = page.evaluate(_MARKS_JS)
    return result
