// The loader lives with the dashboard, which ships it (web/app/verifier.mjs); this package
// re-exports it for Node (node --test, tests/unit/test_wasm_js.py).
export * from "../../web/app/verifier.mjs";
