import { defineConfig } from "vite";

// The page is embedded in the flownet binary (flownet-gateway/build.rs reads dist/), so
// file names carry no hash and dist/ is not emptied: its .gitkeep stays, and the
// gateway serves assets with revalidation instead.
export default defineConfig({
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: false,
    assetsDir: "assets",
    modulePreload: { polyfill: false },
    target: "es2022",
    // FCL, loaded only on Flow, is one 700 kB chunk; the page itself is about 30 kB.
    chunkSizeWarningLimit: 800,
    rolldownOptions: {
      output: {
        entryFileNames: "assets/app.js",
        chunkFileNames: "assets/[name].js",
        assetFileNames: "assets/[name][extname]",
      },
    },
  },
});
