// Real-time island: refreshes `[data-live]` values (active users, open documents) every few
// seconds from the console's JSON endpoint, which reads the same /v1 dashboard a client would.
(() => {
  const root = document.querySelector("[data-live-src]");
  if (!root) return;
  const src = root.getAttribute("data-live-src");
  const every = Number(root.getAttribute("data-live-every") || "5000");
  // On an embed session's page, say so: the server serves a fetch the first-party session otherwise.
  const headers = { accept: "application/json" };
  if (document.querySelector('meta[name="console-session"][content="embed"]')) headers["x-console-session"] = "embed";
  const tick = async () => {
    try {
      const res = await fetch(src, { headers, credentials: "same-origin" });
      if (res.ok) {
        const data = await res.json();
        for (const el of root.querySelectorAll("[data-live]")) {
          const v = data[el.getAttribute("data-live")];
          if (v !== undefined) el.textContent = String(v);
        }
        root.setAttribute("data-refreshed", String(Date.now()));
      }
    } finally {
      setTimeout(tick, every);
    }
  };
  setTimeout(tick, every);
})();
