// The console's only script of its own: jobs live over server-sent events.
// Each unfinished job row (data-events-url) gets one EventSource; what it hears is kept
// here by job id, so the rows htmx re-renders every few seconds show it again. Text goes
// in with textContent only: nothing a job says is ever parsed as HTML.
(function () {
  "use strict";
  const streams = new Map(); // job id -> {lines, state, source}

  function render(row, info) {
    const events = row.querySelector(".events");
    if (events) events.textContent = info.lines.slice(-20).join("\n");
    if (info.state) {
      const state = row.querySelector(".state");
      if (state) state.textContent = info.state;
      row.dataset.state = info.state;
    }
  }

  function update(id) {
    const info = streams.get(id);
    document.querySelectorAll("tr[data-job-id]").forEach(function (row) {
      if (row.dataset.jobId === id) render(row, info);
    });
  }

  function follow(row) {
    const id = row.dataset.jobId;
    let info = streams.get(id);
    if (!info) {
      info = { lines: [], state: null, source: null, errors: 0 };
      streams.set(id, info);
      if (row.dataset.eventsUrl) {
        const source = new EventSource(row.dataset.eventsUrl);
        info.source = source;
        source.addEventListener("status", function (e) {
          info.state = JSON.parse(e.data).state;
          update(id);
        });
        source.addEventListener("progress", function (e) {
          info.lines.push(JSON.parse(e.data).message);
          update(id);
        });
        source.addEventListener("result", function (e) {
          const job = JSON.parse(e.data);
          info.state = job.state;
          info.lines.push("finished: " + job.state);
          source.close();
          update(id);
        });
        source.addEventListener("error", function () {
          // The browser retries a dropped stream by itself; a session that ended does not come back.
          info.errors += 1;
          if (info.errors > 3) source.close();
        });
      }
    }
    render(row, info);
  }

  function bind() {
    document.querySelectorAll("tr[data-job-id]").forEach(follow);
  }

  document.addEventListener("DOMContentLoaded", bind);
  document.addEventListener("htmx:afterSettle", bind);
})();
