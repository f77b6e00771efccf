import { defineConfig } from "vite";

// The API serves dist/ at "/" (same origin) under CSP default-src 'self':
// no inline scripts or styles, every asset bundled, relative asset URLs.
export default defineConfig({
  base: "./",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
  },
  server: {
    proxy: { "/api": "http://127.0.0.1:8000" },
  },
});
