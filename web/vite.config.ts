// Builds the dashboard pages into the Python package, where the API serves them (safecity.web.api).
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root: here,
  base: '/',
  publicDir: false,
  build: {
    outDir: resolve(here, '../src/safecity/web/static'),
    emptyOutDir: true,
    assetsDir: 'assets',
    target: 'es2022',
    chunkSizeWarningLimit: 1500,
    rollupOptions: {
      input: {
        index: resolve(here, 'index.html'),
        tablet: resolve(here, 'tablet.html'),
      },
      // MapLibre and pmtiles in a chunk of their own: a change to the pages does not re-download 1 MB
      output: { manualChunks: (id) => (id.includes('node_modules') ? 'vendor' : undefined) },
    },
  },
  // `npm run dev` against a platform on :8080 (make run)
  server: { proxy: { '/api': { target: 'http://127.0.0.1:8080', ws: true } } },
});
