// Router One console: copy buttons, confirmations, Activity charts (uPlot), the streaming playground.
// Everything else works without JavaScript.
(function () {
  "use strict";

  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest("[data-copy]");
    if (!btn) return;
    var field = document.querySelector(btn.getAttribute("data-copy"));
    if (!field) return;
    field.select();
    var done = function () { btn.textContent = "Copied"; setTimeout(function () { btn.textContent = "Copy"; }, 2000); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(done, function () { document.execCommand("copy"); done(); });
    } else {
      document.execCommand("copy");
      done();
    }
  });

  document.addEventListener("submit", function (ev) {
    var msg = ev.target.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) ev.preventDefault();
  });

  function charts() {
    var dataEl = document.getElementById("chart-data");
    if (!dataEl || !window.uPlot) return;
    var data = JSON.parse(dataEl.textContent);
    document.querySelectorAll("figure.chart").forEach(function (fig) {
      var plot = fig.querySelector(".plot");
      var series = fig.getAttribute("data-series");
      var width = Math.max(240, plot.clientWidth || fig.clientWidth - 32);
      plot.innerHTML = "";
      var money = series === "cost_usd";
      new window.uPlot({
        width: width, height: 180,
        series: [{}, { label: fig.getAttribute("data-label"), stroke: "#2457d6", fill: "rgba(36,87,214,0.12)", width: 2,
                       value: function (u, v) { return v == null ? "—" : (money ? "$" + v.toFixed(6) : v.toLocaleString()); } }],
        axes: [{}, { size: money ? 78 : 60, values: function (u, vals) { return vals.map(function (v) { return money ? "$" + v : v.toLocaleString(); }); } }],
        scales: { x: { time: true } },
        legend: { show: true }
      }, [data.times, data[series]], plot);
    });
  }

  function playground() {
    var form = document.getElementById("playground");
    if (!form || !window.fetch || !window.TextDecoder) return;
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var out = document.getElementById("answer"), text = document.getElementById("answer-text");
      var set = function (id, v) { document.getElementById(id).textContent = v; };
      out.hidden = false;
      text.textContent = "Waiting for the first token…";
      ["answer-model", "answer-reason", "answer-cost", "answer-latency"].forEach(function (id) { set(id, ""); });
      var button = form.querySelector("button[type=submit]");
      button.disabled = true;
      var started = performance.now(), first = null, answer = "";
      fetch(form.action + "/stream", { method: "POST", body: new FormData(form), credentials: "same-origin",
                                       headers: { "x-csrf-token": form.elements.csrf.value } })
        .then(function (resp) {
          set("answer-model", resp.headers.get("x-routerone-model") || "");
          var why = resp.headers.get("x-routerone-reason") || "", fb = resp.headers.get("x-routerone-fallbacks");
          set("answer-reason", why + (fb ? " (tried first: " + fb + ")" : ""));
          if (!resp.ok) {
            return resp.json().then(function (b) { throw new Error((b.error && b.error.message) || ("HTTP " + resp.status)); },
                                    function () { throw new Error("HTTP " + resp.status); });
          }
          var reader = resp.body.getReader(), dec = new TextDecoder(), buf = "";
          function pump() {
            return reader.read().then(function (r) {
              if (r.done) return;
              buf += dec.decode(r.value, { stream: true });
              var parts = buf.split("\n\n");
              buf = parts.pop();
              parts.forEach(function (evt) {
                evt.split("\n").forEach(function (line) {
                  if (line.indexOf("data: ") !== 0) return;
                  var payload = line.slice(6);
                  if (payload === "[DONE]") return;
                  var chunk; try { chunk = JSON.parse(payload); } catch (e) { return; }
                  if (chunk.error) { throw new Error(chunk.error.message || "stream error"); }
                  if (chunk.model) set("answer-model", chunk.model);
                  (chunk.choices || []).forEach(function (c) {
                    if (c.delta && c.delta.content) {
                      if (first === null) first = performance.now() - started;
                      answer += c.delta.content;
                      text.textContent = answer;
                    }
                  });
                  if (chunk.usage && chunk.usage.cost != null) set("answer-cost", "$" + Number(chunk.usage.cost).toFixed(6));
                });
              });
              return pump();
            });
          }
          return pump();
        })
        .then(function () {
          var total = performance.now() - started;
          set("answer-latency", Math.round(total) + " ms" + (first !== null ? " (first token " + Math.round(first) + " ms)" : ""));
          if (!answer) text.textContent = "(empty answer)";
        })
        .catch(function (err) { text.textContent = "Error: " + err.message; })
        .then(function () { button.disabled = false; });
    });
  }

  var resizeTimer = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(charts, 100);
  });

  function ready() { charts(); playground(); }
  // console.js and uPlot are both `defer` scripts: they have all run when DOMContentLoaded fires.
  if (document.readyState === "complete") {
    ready();
  } else {
    document.addEventListener("DOMContentLoaded", ready);
  }
})();
