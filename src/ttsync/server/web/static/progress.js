// Live progress of a running workflow: follow /api/workflows/ID/events (server-sent events, same session
// cookie) and update the state and each task's state, attempts and counts; reload when it ends so the page
// shows the final timeline and, for a failure, the resolution. Without JavaScript the page has a Refresh link.
(function () {
  "use strict";
  var section = document.getElementById("workflow");
  if (!section || section.dataset.live !== "yes" || !window.EventSource) { return; }
  var source = new EventSource("/api/workflows/" + section.dataset.id + "/events");
  function badge(state) {
    var span = document.createElement("span");
    span.className = "state state-" + state;
    span.textContent = state.replace(/_/g, " ");
    return span;
  }
  source.addEventListener("workflow", function (message) {
    var workflow = JSON.parse(message.data);
    var state = document.getElementById("wf-state");
    state.replaceChildren(badge(workflow.state));
    (workflow.tasks || []).forEach(function (task) {
      var row = section.querySelector('tr[data-task="' + task.name + '"]');
      if (!row) { window.location.reload(); return; }
      row.querySelector(".t-state").replaceChildren(badge(task.state));
      row.querySelector(".t-attempts").textContent = String(task.attempts);
      var counts = row.querySelector(".t-counts");
      counts.replaceChildren();
      Object.keys(task.counts || {}).forEach(function (key) {
        if (typeof task.counts[key] !== "number") { return; }
        var span = document.createElement("span");
        span.className = "count";
        span.textContent = key.replace(/_/g, " ") + " " + task.counts[key];
        counts.append(span, " ");
      });
    });
  });
  source.addEventListener("end", function () {
    source.close();
    window.location.reload();
  });
  source.onerror = function () { source.close(); setTimeout(function () { window.location.reload(); }, 2000); };
})();
