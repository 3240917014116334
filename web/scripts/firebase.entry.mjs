// The part of the Firebase JS SDK (npm `firebase`, modular build) that the dashboard's
// cloud mode uses, bundled by `make web-vendor` into vendor/firebase/firebase.js with
// esbuild (tree-shaken, minified, licences kept): Auth for signInWithCustomToken, and
// Firestore listeners. tests/unit/test_dashboard_static.py rebuilds it and compares bytes.
export { initializeApp } from "firebase/app";
export {
  browserSessionPersistence,
  connectAuthEmulator,
  initializeAuth,
  signInWithCustomToken,
  signOut,
} from "firebase/auth";
export {
  collection,
  connectFirestoreEmulator,
  getFirestore,
  onSnapshot,
  orderBy,
  query,
  where,
} from "firebase/firestore";
