// Shared by the WebRTC test pages (publish.html, view.html): the token, status line and log, the
// candidate rewrite for a relay (?via=host:port), and waiting for ICE gathering.
// The pages define `state` (their status record) before calling these.
"use strict";

// The page's bearer token, from the fragment (#token=…, never sent to any server, so never in
// access logs) or, for older links, the query (?token=…). Either way it is then removed from
// the address bar and this history entry, so it is neither bookmarked nor left in history.
function takeToken() {
  const query = new URLSearchParams(location.search);
  const fragment = new URLSearchParams(location.hash.slice(1));
  const token = fragment.get("token") || query.get("token");
  if (query.has("token") || fragment.has("token")) {
    query.delete("token");
    fragment.delete("token");
    const q = query.toString(), f = fragment.toString();
    history.replaceState(null, "", location.pathname + (q ? "?" + q : "") + (f ? "#" + f : ""));
  }
  return token;
}

function setStatus(text) {
  state.status = text;
  document.getElementById("status").textContent = text;
}

function log(line) {
  document.getElementById("log").textContent += new Date().toISOString().slice(11, 23) + " " + line + "\n";
}

// Points every UDP candidate at the relay and removes TCP candidates.
function rewriteCandidates(sdp, hostPort) {
  const i = hostPort.lastIndexOf(":");
  const [ip, port] = [hostPort.slice(0, i), hostPort.slice(i + 1)];
  return sdp.split("\r\n").filter(l => !(l.startsWith("a=candidate:") && / tcp /i.test(l)))
    .map(l => {
      if (!l.startsWith("a=candidate:")) return l;
      const f = l.split(" ");
      f[4] = ip; f[5] = port;
      return f.join(" ");
    }).join("\r\n");
}

function waitGathering(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise(resolve => {
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
    setTimeout(resolve, 5000); // loopback gathering takes milliseconds; never hang
  });
}
