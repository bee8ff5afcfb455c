// The live page: its connection status, from htmx's SSE extension events, and polling instead
// of the stream in a browser without EventSource (attributes set here: a trigger filter would
// need eval, which the Content-Security-Policy forbids).
(function () {
  function say(state, text) {
    var el = document.getElementById("live-connection");
    if (el) { el.dataset.state = state; el.textContent = text; }
  }
  document.body.addEventListener("htmx:sseOpen", function () { say("open", "Live: updates arrive every 5 seconds."); });
  document.body.addEventListener("htmx:sseError", function () { say("lost", "Connection lost: reconnecting…"); });
  document.body.addEventListener("htmx:sseClose", function () { say("closed", "Disconnected."); });
  var stream = document.getElementById("live-stream");
  if (stream && !window.EventSource && window.htmx) {
    stream.setAttribute("hx-get", stream.dataset.pollUrl);
    stream.setAttribute("hx-trigger", "every 5s");
    window.htmx.process(stream);
    say("polling", "Live: checking every 5 seconds.");
  }
})();
