// Officer console: sign a server-provided statement with the officer's Ed25519
// key, in this browser (WebCrypto). The key file is read here and never sent:
// only the signature and the key id leave the page.
"use strict";
(function () {
  function b64ToBytes(text) {
    const raw = atob(text);
    const out = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out;
  }
  function bytesToB64(bytes) {
    let raw = "";
    for (const b of new Uint8Array(bytes)) raw += String.fromCharCode(b);
    return btoa(raw);
  }
  function hex(bytes) {
    return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
  }
  function pemToDer(text) {
    const m = /-----BEGIN PRIVATE KEY-----([\s\S]*?)-----END PRIVATE KEY-----/.exec(text);
    if (!m) throw new Error("not a PKCS#8 PEM private key (BEGIN PRIVATE KEY)");
    return b64ToBytes(m[1].replace(/\s+/g, ""));
  }
  const ED25519 = { name: "Ed25519" };
  async function officerKey(file) {
    const der = pemToDer(await file.text());
    try {
      const key = await crypto.subtle.importKey("pkcs8", der, ED25519, false, ["sign"]);
      // The key id names the public key: read it from a throw-away JWK export.
      const jwk = await crypto.subtle.exportKey(
        "jwk", await crypto.subtle.importKey("pkcs8", der, ED25519, true, ["sign"]));
      const x = jwk.x.replace(/-/g, "+").replace(/_/g, "/");
      const pub = b64ToBytes(x + "===".slice(0, (4 - (x.length % 4)) % 4));
      const digest = await crypto.subtle.digest("SHA-256", pub);
      return { key: key, keyId: "ed25519:" + hex(digest).slice(0, 16) };
    } finally {
      der.fill(0);
    }
  }
  async function signAndSubmit(form, input, status) {
    if (!window.crypto || !crypto.subtle) {
      status.textContent = "WebCrypto is unavailable (the console needs https or localhost).";
      return;
    }
    if (!input.files || input.files.length !== 1) {
      status.textContent = "Choose your officer key file first.";
      return;
    }
    status.textContent = "Signing…";
    try {
      const officer = await officerKey(input.files[0]);
      const data = b64ToBytes(form.dataset.signingInput);
      const signature = await crypto.subtle.sign(ED25519, officer.key, data);
      form.elements.namedItem("signature").value = bytesToB64(signature);
      form.elements.namedItem("key_id").value = officer.keyId;
      input.value = "";
      form.submit();
    } catch (err) {
      status.textContent = "Could not sign: " + (err && err.message ? err.message : err);
    }
  }
  document.addEventListener("DOMContentLoaded", function () {
    const form = document.getElementById("sign-form");
    if (!form) return;
    const input = document.getElementById("key-file");
    const status = document.getElementById("sign-status");
    document.getElementById("sign-button").addEventListener("click", function () {
      signAndSubmit(form, input, status);
    });
  });
})();
