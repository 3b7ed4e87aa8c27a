// Registers the page's service worker (sw.js, beside the page), which lets the page open with
// no network. A service worker exists only in a secure context (https, or 127.0.0.1/localhost).
if ("serviceWorker" in navigator) {
  addEventListener("load", () => {
    navigator.serviceWorker.register("./sw.js").catch((error) => {
      console.warn("This page cannot open offline: " + error.message);
    });
  });
}
