import { defineConfig } from "vite";

// Tauri loads ui/dist; `npm run dev` serves it on the port tauri.conf.json's devUrl names.
export default defineConfig({
  clearScreen: false,
  server: { port: 5173, strictPort: true },
  build: { target: "es2022", outDir: "dist", emptyOutDir: true, sourcemap: false },
});
