// A person's own Ethereum key, in this page only: opened from its keystore file with its passphrase,
// used to sign, and never sent anywhere or stored (not in localStorage, not in a cookie). The key
// lives in this module's memory for as long as the page does.
import { TypedDataEncoder, Wallet } from "../vendor/ethers.min.js";

let held = null;

// The key in keystore `text` (the JSON that `ledgercrm customer key new` writes), opened with
// `passphrase`; `progress(fraction)` follows scrypt's work. The key is held for the page's later
// signatures. A wrong passphrase or a file that is not a keystore is one error, in words.
export async function openKeystore(text, passphrase, progress) {
  let wallet;
  try {
    wallet = await Wallet.fromEncryptedJson(text, passphrase, progress);
  } catch {
    throw new Error("This key file cannot be opened: the passphrase is wrong, or the file is not a key file.");
  }
  held = wallet;
  return wallet.address;
}

// A new key, made here (an invitation): held for the page's signatures, like an opened one.
export function createKey() {
  held = new Wallet(Wallet.createRandom().privateKey); // the key alone: no mnemonic in its file
  return held.address;
}

// The held key as a keystore file's JSON (scrypt, AES-128-CTR: what `ledgercrm customer key new`
// writes), locked with `passphrase`; `progress(fraction)` follows scrypt's work.
export async function encryptHeld(passphrase, progress) {
  return key().encrypt(passphrase, progress);
}

// The address of the key the page holds, or null.
export function heldAddress() {
  return held ? held.address : null;
}

// Forget the key (signing out).
export function forget() {
  held = null;
}

function key() {
  if (!held) {
    throw new Error("Open your key file first: every change is signed with your own key.");
  }
  return held;
}

// An EIP-191 signature of `message` (the EIP-4361 sign-in text the server sent).
export async function signMessage(message) {
  return key().signMessage(message);
}

// An EIP-712 signature of `typedData` = {domain, types, primaryType, message}, in the JSON form
// eth_signTypedData_v4 takes (what the server's typed-data endpoints return). ethers derives the
// domain's type itself and infers the primary type, so the two must agree.
export async function signTypedData(typedData) {
  const { domain, types, primaryType, message } = typedData;
  const own = Object.fromEntries(Object.entries(types).filter(([name]) => name !== "EIP712Domain"));
  if (TypedDataEncoder.getPrimaryType(own) !== primaryType) {
    throw new Error(`The server asked for a signature of ${primaryType}, which these types do not describe.`);
  }
  return key().signTypedData(domain, own, message);
}
