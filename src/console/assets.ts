// No imports: shared by the Worker (the console's pages) and Node's scripts/build-assets.ts.

/**
 * URL paths of the console's browser files, written into the Worker's static assets by
 * `scripts/build-assets.ts` (from `src/console/client/` and uPlot's package) and served from this
 * origin, so the console works offline and under a CSP that allows scripts and styles from files only.
 */
export const CONSOLE_ASSETS = {
  css: "/assets/console/console.css",
  login: "/assets/console/login.js",
  chart: "/assets/console/chart.js",
  live: "/assets/console/live.js",
  uplot: "/assets/vendor/uplot/uPlot.iife.min.js",
  uplotCss: "/assets/vendor/uplot/uPlot.min.css",
} as const;

/** Client files copied as they are: asset path → file name under `src/console/client/`. */
export const CONSOLE_CLIENT_FILES: Record<string, string> = {
  [CONSOLE_ASSETS.css]: "console.css",
  [CONSOLE_ASSETS.login]: "login.js",
  [CONSOLE_ASSETS.chart]: "chart.js",
  [CONSOLE_ASSETS.live]: "live.js",
};

/** Files copied from the `uplot` package: asset path → path inside the package. */
export const UPLOT_FILES: Record<string, string> = {
  [CONSOLE_ASSETS.uplot]: "dist/uPlot.iife.min.js",
  [CONSOLE_ASSETS.uplotCss]: "dist/uPlot.min.css",
};
