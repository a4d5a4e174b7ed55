// runtracker dashboard: small enhancements; every page works without this file.
// - Refresh the page's content every 60 s without losing the scroll position, the open <details>, or a filter
//   being edited (no refresh while a field of the page is focused or changed); every few seconds instead while
//   the page marks itself `data-fast-refresh` (the overview while a pipeline runs), so a run's end shows soon.
//   The server answers such a refresh from its cache while nothing changed (Dashboard.unchanged).
// - A spinning favicon while a run is running.
// - A confirmation before the Start button.
// - The browser's time zone in a cookie, so that pages show times in it (unless the user set a zone of their own).
(function () {
  "use strict";

  function confirmations(root) {
    root.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
      });
    });
  }

  var spinner = null;
  function favicon(running) {
    var link = document.getElementById("favicon");
    if (!link) { return; }
    link.setAttribute("data-running", String(running));
    if (running > 0 && spinner === null) {
      var canvas = document.createElement("canvas");
      canvas.width = canvas.height = 32;
      var ctx = canvas.getContext("2d");
      var angle = 0;
      spinner = window.setInterval(function () {
        ctx.clearRect(0, 0, 32, 32);
        ctx.lineWidth = 4;
        ctx.strokeStyle = "#cfd8dc";
        ctx.beginPath(); ctx.arc(16, 16, 13, 0, 2 * Math.PI); ctx.stroke();
        ctx.strokeStyle = "#1565c0";
        ctx.beginPath(); ctx.arc(16, 16, 13, angle, angle + Math.PI / 2); ctx.stroke();
        angle += Math.PI / 8;
        link.href = canvas.toDataURL("image/png");
      }, 125);
    } else if (running === 0 && spinner !== null) {
      window.clearInterval(spinner);
      spinner = null;
      link.href = "/static/favicon.svg";
    }
  }

  // The option a drop-down showed when the page loaded: the last one marked `selected`, else the first one —
  // which is then selected without being `defaultSelected`, so comparing the two flags option by option took
  // every filter left at "all" for an edit, and the error browser never refreshed.
  function initialIndex(select) {
    var index = select.size > 1 ? -1 : 0;
    for (var j = 0; j < select.options.length; j++) {
      if (select.options[j].defaultSelected) { index = j; }
    }
    return index;
  }

  function editing(content) {
    var active = document.activeElement;
    if (active && content.contains(active) && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName)) { return true; }
    var fields = content.querySelectorAll("input, select, textarea");
    for (var i = 0; i < fields.length; i++) {
      var f = fields[i];
      if (f.type === "hidden") { continue; }
      if (f.tagName === "SELECT" && f.multiple) {
        for (var j = 0; j < f.options.length; j++) {
          if (f.options[j].selected !== f.options[j].defaultSelected) { return true; }
        }
      } else if (f.tagName === "SELECT") {
        if (f.selectedIndex !== initialIndex(f)) { return true; }
      } else if (f.value !== f.defaultValue) { return true; }
    }
    return false;
  }

  function refresh() {
    var content = document.getElementById("content");
    if (!content || document.hidden || editing(content)) { return null; }
    return fetch(window.location.href, { credentials: "same-origin", headers: { "X-Requested-With": "refresh" } })
      .then(function (response) {
        if (response.redirected || !response.ok) { return null; }
        return response.text();
      })
      .then(function (html) {
        if (html === null || editing(content)) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html");
        var next = fresh.getElementById("content");
        if (!next) { return; }
        var open = Array.prototype.map.call(content.querySelectorAll("details[open][id]"), function (d) { return d.id; });
        var x = window.scrollX, y = window.scrollY;
        var flash = next.querySelector("#flash");
        if (flash) { flash.remove(); }
        content.replaceChildren.apply(content, Array.prototype.slice.call(next.childNodes));
        open.forEach(function (id) { var d = document.getElementById(id); if (d) { d.open = true; } });
        window.scrollTo(x, y);
        confirmations(content);
        var icon = fresh.getElementById("favicon");
        var count = fresh.getElementById("running-count");
        var here = document.getElementById("running-count");
        if (count && here) { here.textContent = count.textContent; here.setAttribute("data-running", count.getAttribute("data-running")); }
        if (icon) { favicon(parseInt(icon.getAttribute("data-running") || "0", 10)); }
        document.body.setAttribute("data-refreshed", String(Date.now()));
      })
      .catch(function () { /* the next refresh tries again */ });
  }

  // The next refresh: in `seconds`, or sooner while the page asks for it (`data-fast-refresh`); the delay is
  // judged again after each refresh, so it returns to `seconds` once nothing runs.
  function later(seconds) {
    var fast = document.querySelector("#content [data-fast-refresh]");
    var quick = fast ? parseInt(fast.getAttribute("data-fast-refresh") || "0", 10) : 0;
    var delay = quick > 0 && quick < seconds ? quick : seconds;
    window.setTimeout(function () {
      var pending = refresh();
      var next = function () { later(seconds); };
      if (pending) { pending.then(next, next); } else { next(); }
    }, delay * 1000);
  }

  // The browser's zone (Intl) goes into a cookie the server reads for the next page; a page got by GET in
  // another zone is loaded once more. No loop: the reload happens only when the cookie was just changed and
  // reads back as set (cookies refused: no reload), and the next page finds it already equal.
  var ZONE_COOKIE = "runtracker_tz";
  function cookie(name) {
    var found = null;
    document.cookie.split(";").forEach(function (part) {
      var pair = part.trim().split("=");
      if (pair[0] === name) { found = pair.slice(1).join("="); }
    });
    return found;
  }
  function browserZone() {
    var zone = "";
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { return; }
    if (!/^[A-Za-z][A-Za-z0-9_+\-]*(\/[A-Za-z0-9_+\-]+)*$/.test(zone) || zone.length > 64) { return; }
    if (cookie(ZONE_COOKIE) === zone) { return; }
    document.cookie = ZONE_COOKIE + "=" + zone + "; path=/; max-age=31536000; SameSite=Lax" +
      (window.location.protocol === "https:" ? "; Secure" : "");
    var body = document.body;
    if (cookie(ZONE_COOKIE) === zone && body.hasAttribute("data-timezone-ask") &&
        body.getAttribute("data-timezone") !== zone) {
      window.location.reload();
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    browserZone();
    confirmations(document);
    var link = document.getElementById("favicon");
    if (link) { favicon(parseInt(link.getAttribute("data-running") || "0", 10)); }
    var seconds = parseInt(document.body.getAttribute("data-refresh") || "0", 10);
    if (seconds > 0) { later(seconds); }
  });
})();
