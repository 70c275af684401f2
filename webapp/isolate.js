// Several onnxruntime-web threads need a cross-origin-isolated page: two response headers (COOP and COEP) that
// GitHub Pages and `python -m http.server` cannot send. isolation-sw.js, this site's service worker, adds them to
// the site's own files. A worker controls a page only from its next load, so the first visit registers it and
// reloads once. Where that is not possible (no service workers, or still not isolated) the page runs on one thread.
(() => {
  if (self.crossOriginIsolated || !("serviceWorker" in navigator) || !window.isSecureContext) return;
  if (sessionStorage.getItem("htc-isolation-reloaded")) return;   // reloaded once already: stay on one thread
  const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error("no active service worker")), 2000));
  window.htcReloading = Promise.race([navigator.serviceWorker.register("isolation-sw.js").then(() => navigator.serviceWorker.ready), timeout])
    .then(() => { sessionStorage.setItem("htc-isolation-reloaded", "1"); location.reload(); return true; })
    .catch(() => false);   // workers blocked (or too slow to start): one thread
})();
