// The stats page: its charts (Chart.js, served from vendor/) and the live "humans prompting now" count over
// /ws/stats/ (stats/consumers.py), reconnecting with a growing pause when the socket drops.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("stats-data").textContent);
  const ink = "#2f5fd0", ok = "#1f7a45";
  const short = (iso) => iso.slice(5);  // "2026-03-07" -> "03-07": fits a phone's width

  function chart(id, type, labels, datasets) {
    const canvas = document.getElementById(id);
    if (!canvas || !window.Chart) return;
    new window.Chart(canvas, {
      type: type,
      data: {labels: labels.map(short), datasets: datasets},
      options: {
        responsive: true, maintainAspectRatio: false, animation: false,
        scales: {y: {beginAtZero: true, ticks: {precision: 0}}, x: {ticks: {maxRotation: 0, autoSkip: true}}},
        plugins: {legend: {display: datasets.length > 1}},
      },
    });
  }

  chart("sessions-chart", "bar", data.days, [{label: "sessions", data: data.sessions_per_day, backgroundColor: ink}]);
  chart("pulls-daily-chart", "line", data.days, [
    {label: "opened", data: data.opened_per_day, borderColor: ink, backgroundColor: ink, tension: 0.2},
    {label: "merged", data: data.merged_per_day, borderColor: ok, backgroundColor: ok, tension: 0.2},
  ]);
  chart("pulls-weekly-chart", "bar", data.weeks, [
    {label: "opened", data: data.opened_per_week, backgroundColor: ink},
    {label: "merged", data: data.merged_per_week, backgroundColor: ok},
  ]);

  const select = document.getElementById("stats-repo");
  if (select) select.addEventListener("change", () => select.form.submit());

  const live = document.getElementById("prompting-now");
  let pause = 1000;
  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const repo = live.dataset.repo ? "?repo=" + encodeURIComponent(live.dataset.repo) : "";
    const socket = new WebSocket(scheme + "//" + location.host + "/ws/stats/" + repo);
    socket.onopen = () => { pause = 1000; live.classList.remove("stale"); };
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "prompting_now") live.textContent = String(message.count);
    };
    socket.onclose = (event) => {
      live.classList.add("stale");
      if (event.code === 4403) return;  // signed out, or the repo is not theirs any more: no point trying again
      setTimeout(connect, pause);
      pause = Math.min(pause * 2, 30000);
    };
  }
  connect();
})();
