// The pages' behaviour: signing in (the key opened here, a signature sent), signing out, and the
// customer's signed writes. Pages that only show work without this script.
import {
  createKey,
  encryptHeld,
  forget,
  heldAddress,
  openKeystore,
  signMessage,
  signTypedData,
} from "./keys.js";

// The CSRF token the API sets as a cookie scripts may read, sent back with every cookie-signed write.
function csrf() {
  const found = document.cookie.split("; ").find((c) => c.startsWith("lcrm_csrf="));
  return found ? decodeURIComponent(found.slice("lcrm_csrf=".length)) : "";
}

// A JSON request to the API; a refusal becomes an Error carrying the problem's detail, in words.
export async function api(method, url, body) {
  const headers = { Accept: "application/json, application/problem+json", "X-CSRF-Token": csrf() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new Error("The server cannot be reached. Check your connection and try again.");
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(data.detail || data.title || `The server refused this (status ${response.status}).`);
  }
  return data;
}

export function showProblem(message) {
  const summary = document.querySelector("[data-error-summary]");
  if (!summary) return;
  summary.querySelector("[data-error-text]").textContent = message;
  summary.hidden = false;
  summary.focus();
}

function clearProblem() {
  const summary = document.querySelector("[data-error-summary]");
  if (summary) summary.hidden = true;
}

async function readKeyFile(form) {
  const file = form.querySelector("input[type=file]").files[0];
  const passphrase = form.querySelector("input[type=password]").value;
  if (!file) throw new Error("Choose your key file.");
  if (!passphrase) throw new Error("Enter the passphrase of your key file.");
  const progress = form.querySelector("[data-progress]");
  const text = await file.text();
  const address = await openKeystore(text, passphrase, (fraction) => {
    if (progress) progress.textContent = `Opening your key file: ${Math.round(fraction * 100)}%`;
  });
  if (progress) progress.textContent = "Key file opened.";
  return address;
}

// A session for the key this page holds: the server's challenge, signed here (EIP-4361).
async function signInWithHeldKey() {
  const { message } = await api("POST", "/v1/auth/challenge", { address: heldAddress() });
  const signature = await signMessage(message);
  return api("POST", "/v1/auth/session", { message, signature });
}

async function signIn(form) {
  const kind = form.dataset.signIn;
  if (kind === "partner") {
    const key = form.querySelector("input[type=password]").value.trim();
    if (!key) throw new Error("Enter your API key.");
    return api("POST", "/v1/auth/partner-session", { api_key: key });
  }
  await readKeyFile(form);
  const session = await signInWithHeldKey();
  if (session.role !== kind) {
    throw new Error(`This key signs in as a ${session.role}, not as a ${kind}.`);
  }
  return session;
}

// Goes to `url` without leaving this page, so the key opened here stays in memory for the signatures
// that follow (a real navigation would forget it): the new page's header and main replace these.
async function softNavigate(url) {
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
  const next = new DOMParser().parseFromString(await response.text(), "text/html");
  document.title = next.title;
  document.querySelector("header").replaceWith(document.adoptNode(next.querySelector("header")));
  document.querySelector("main").replaceWith(document.adoptNode(next.querySelector("main")));
  window.history.pushState({ soft: true }, "", url);
  if (window.htmx) window.htmx.process(document.body);
  document.querySelector("main").focus({ preventScroll: true });
  window.scrollTo(0, 0);
}

window.addEventListener("popstate", () => window.location.reload());

// htmx's writes carry the session's CSRF token, as every cookie-signed write must.
document.addEventListener("htmx:configRequest", (event) => {
  event.detail.headers["X-CSRF-Token"] = csrf();
});

// A refusal htmx does not swap in (not a 422 with its own form) still reaches the person, in words.
document.addEventListener("htmx:responseError", (event) => {
  showProblem(`The server refused this (status ${event.detail.xhr.status}). Sign in again if this persists.`);
});
document.addEventListener("htmx:sendError", () => {
  showProblem("The server cannot be reached. Check your connection and try again.");
});

document.addEventListener("submit", async (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.dataset.signIn) return;
  event.preventDefault();
  clearProblem();
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    await signIn(form);
    if (heldAddress()) {
      await softNavigate(form.dataset.home);
    } else {
      window.location.assign(form.dataset.home);
    }
  } catch (error) {
    showProblem(error.message);
  } finally {
    button.disabled = false;
  }
});

document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-sign-out]");
  if (!button) return;
  forget();
  try {
    await api("POST", "/v1/auth/logout");
  } catch (error) {
    showProblem(error.message);
    return;
  }
  window.location.assign("/");
});

// A customer's write: the typed data the API prepares, signed here with the customer's key (opened in
// this page first if it is not held), and sent back. Resolves with the API's answer.
export async function signedWrite(typedDataUrl, postUrl, unlockForm) {
  if (!heldAddress()) {
    if (!unlockForm) throw new Error("Open your key file first: every change is signed with your own key.");
    if (unlockForm.hidden) {
      unlockForm.hidden = false;
      unlockForm.querySelector("input[type=file]").focus();
      throw new Error("Your key is needed to sign: open your key file below, then make your choice again.");
    }
    await readKeyFile(unlockForm);
  }
  const typedData = await api("GET", typedDataUrl);
  const signature = await signTypedData(typedData);
  return api("POST", postUrl, { typed_data: typedData, signature });
}

// Consent toggles: a checkbox changes state only once the API answers that the chain has the signed
// event; until then it shows what the chain says.
document.addEventListener("change", async (event) => {
  const box = event.target;
  if (!(box instanceof HTMLInputElement) || !box.dataset.consentToggle) return;
  const wanted = box.checked;
  box.checked = !wanted;
  box.disabled = true;
  clearProblem();
  const status = wanted ? "given" : "withdrawn";
  const query = new URLSearchParams({ partner: box.dataset.partner, purpose: box.dataset.purpose, status });
  try {
    await signedWrite(`/v1/me/consents/typed-data?${query}`, "/v1/me/consents", document.querySelector("[data-unlock]"));
    box.checked = wanted;
    const state = document.getElementById(`${box.id}-state`);
    if (state) state.textContent = wanted ? "Given just now" : "Withdrawn just now";
  } catch (error) {
    showProblem(error.message);
  } finally {
    box.disabled = false;
  }
});

// A home move: signed with her key like every other change; the page names the new home once the API
// answers that the chain moved it.
document.addEventListener("submit", async (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || form.dataset.moveHome === undefined) return;
  event.preventDefault();
  clearProblem();
  const to = form.querySelector("#move-to").value;
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const query = new URLSearchParams({ to });
    // the page's one key form: the consents' if the page has them, else this form's own
    await signedWrite(`/v1/me/home/typed-data?${query}`, "/v1/me/home", document.querySelector("[data-unlock]"));
    const shown = document.querySelector("[data-home]");
    const option = [...form.querySelector("#move-to").options].find((o) => o.value === to);
    option.textContent = shown.textContent;  // the old home is now one she may move back to
    option.value = shown.textContent;
    shown.textContent = to;
  } catch (error) {
    showProblem(error.message);
  } finally {
    button.disabled = false;
  }
});

// A verification run is a job of the API's: started, followed (its progress in the status line), and
// its findings shown in place. Without this script the form runs one and shows the page with them.
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

document.addEventListener("submit", async (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || form.dataset.verifyJob === undefined) return;
  event.preventDefault();
  clearProblem();
  const status = form.querySelector("[data-job-status]");
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    // the auditor's run by default; a partner's form names its own route and findings page
    const started = await api("POST", form.dataset.verifyJob || "/v1/audit/verifications");
    let job = { status: "queued", progress: 0, message: "" };
    while (job.status === "queued" || job.status === "running") {
      status.textContent = `Verifying: ${Math.round(job.progress * 100)}%${job.message ? `, ${job.message}` : ""}`;
      await sleep(300);
      job = await api("GET", started.location || `/v1/jobs/${encodeURIComponent(started.job)}`);
    }
    const findings = form.dataset.findings || "/audit/verification/jobs/";
    const response = await fetch(`${findings}${encodeURIComponent(job.id)}`, {
      credentials: "same-origin",
      headers: { Accept: "text/html" },
    });
    const next = new DOMParser().parseFromString(await response.text(), "text/html");
    document.getElementById("findings").replaceChildren(...next.body.childNodes);
    status.textContent = job.status === "succeeded" ? "Verification finished." : "Verification failed.";
  } catch (error) {
    status.textContent = "";
    showProblem(error.message);
  } finally {
    button.disabled = false;
  }
});

// Erasure: only after the person ticked that it cannot be undone; signed with her key like every
// other change. Her sessions end with it, so the page goes to one that shows nothing.
document.addEventListener("submit", async (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || form.dataset.erase === undefined) return;
  event.preventDefault();
  clearProblem();
  if (!form.querySelector("#erase-understood").checked) {
    showProblem("Tick that you understand this cannot be undone, or go back to your privacy centre.");
    return;
  }
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    await signedWrite("/v1/me/erasure/typed-data", "/v1/me/erasure", form.querySelector("[data-unlock]"));
    forget();
    window.location.assign("/me/erased");
  } catch (error) {
    showProblem(error.message);
  } finally {
    button.disabled = false;
  }
});

// An invitation: a new key made in this page, saved by the customer as a keystore file, then bound to
// her member id with the code (her signature of the binding, relayed by her home partner), and she is
// signed in with it. The code comes in the link's fragment, which no browser sends to a server.
const inviteForm = document.querySelector("[data-invite]");
if (inviteForm) {
  const code = decodeURIComponent(window.location.hash.slice(1));
  if (code) {
    inviteForm.querySelector("#invite-code").value = code;
    window.history.replaceState(null, "", window.location.pathname); // not kept in the address bar
  }
}

document.addEventListener("submit", async (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || form.dataset.invite === undefined) return;
  event.preventDefault();
  clearProblem();
  const code = form.querySelector("#invite-code").value.trim();
  const passphrase = form.querySelector("#new-passphrase").value;
  if (!code) return showProblem("Enter the invitation code from your link.");
  if (passphrase.length < 8) return showProblem("Choose a passphrase of at least 8 characters.");
  if (passphrase !== form.querySelector("#new-passphrase-again").value) {
    return showProblem("The two passphrases differ: type the same one twice.");
  }
  const button = form.querySelector("button[type=submit]");
  const progress = form.querySelector("[data-progress]");
  button.disabled = true;
  try {
    const address = createKey();
    const keystore = await encryptHeld(passphrase, (fraction) => {
      progress.textContent = `Locking your key file: ${Math.round(fraction * 100)}%`;
    });
    progress.textContent = "Your key is made.";
    const save = document.querySelector("[data-invite-save]");
    save.querySelector("[data-invite-address]").textContent = address;
    const link = save.querySelector("[data-invite-download]");
    link.href = URL.createObjectURL(new Blob([keystore], { type: "application/json" }));
    link.download = `ledgercrm-key-${address.slice(2, 10).toLowerCase()}.json`;
    save.dataset.code = code;
    form.hidden = true;
    save.hidden = false;
    link.focus();
  } catch (error) {
    forget();
    showProblem(error.message);
    button.disabled = false;
  }
});

document.addEventListener("click", async (event) => {
  if (event.target.closest("[data-invite-download]")) {
    const save = document.querySelector("[data-invite-save]");
    save.querySelector("[data-invite-bind]").disabled = false;
    save.querySelector("[data-invite-bind-hint]").textContent = "Saved? Then bind your key.";
    return;
  }
  const button = event.target.closest("[data-invite-bind]");
  if (!button) return;
  clearProblem();
  button.disabled = true;
  const code = document.querySelector("[data-invite-save]").dataset.code;
  try {
    const { typed_data: typedData } = await api("POST", "/v1/invitations/binding/typed-data", {
      code,
      signer: heldAddress(),
    });
    const signature = await signTypedData(typedData);
    await api("POST", "/v1/invitations/binding", { code, typed_data: typedData, signature });
    await signInWithHeldKey();
    await softNavigate("/me");
  } catch (error) {
    showProblem(error.message);
    button.disabled = false;
  }
});
