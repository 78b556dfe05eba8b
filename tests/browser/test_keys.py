"""The key in the browser: a keystore made by `ledgercrm customer key new` opens in the page with its
passphrase, and what the page signs is what eth-account signs with the same key, byte for byte; the
key itself never leaves the page."""

from __future__ import annotations

import json

from eth_account import Account
from eth_account.messages import encode_defunct
from playwright.sync_api import Page

from api.principal import Principal
from api.usecases.customer_keys import open_customer_key
from api.usecases.signing import consent_typed_data
from tests.browser.conftest import PASSPHRASE, Live, Watch, World

SIGN = """async ([keystore, passphrase, message, typedData]) => {
  const keys = await import("/static/js/keys.js");
  const address = await keys.openKeystore(keystore, passphrase);
  return [address, await keys.signMessage(message), await keys.signTypedData(typedData)];
}"""


def _typed_data(world: World) -> dict[str, object]:
    """What the API's typed-data endpoints return (api.usecases.signing): here alice's withdrawal of
    her profiling consent to acme, in the JSON form eth_signTypedData_v4 and full_message take."""
    alice = world.members["alice"]
    typed, _receipt = consent_typed_data(
        world.crm, Principal.of_customer(alice), alice, "acme", "profiling", withdraw=True
    )
    return typed


def test_keystore_opens_and_signs_as_eth_account_does(
    page: Page, live: Live, world: World, watch: Watch
) -> None:
    keystore = world.keys["alice"].read_text()
    account = open_customer_key(world.keys["alice"], PASSPHRASE)
    typed = _typed_data(world)
    message = "127.0.0.1 wants you to sign in with your Ethereum account:\n" + account.address
    page.goto(live.url + "/")
    address, signed_message, signed_typed = page.evaluate(SIGN, [keystore, PASSPHRASE, message, typed])
    assert address == account.address
    assert (
        signed_message
        == "0x" + Account.sign_message(encode_defunct(text=message), account.key).signature.hex()
    )
    expected = Account.sign_typed_data(account.key, full_message=json.loads(json.dumps(typed)))
    assert signed_typed == "0x" + expected.signature.hex()
    secret = account.key.hex().removeprefix("0x")
    assert all(secret not in url + body for _, url, body in watch.requests)


def _light_keystore() -> str:
    """A keystore with a cheap scrypt, for the tests that are not about `customer key new`'s file (its
    full-strength scrypt takes seconds in the browser)."""
    return json.dumps(Account.encrypt(Account.create().key, PASSPHRASE, iterations=1024))


def test_a_wrong_passphrase_is_one_line_in_words(page: Page, live: Live) -> None:
    page.goto(live.url + "/")
    refused = page.evaluate(
        """async ([keystore]) => {
          const keys = await import("/static/js/keys.js");
          try { await keys.openKeystore(keystore, "not the passphrase"); return null; }
          catch (error) { return [error.message, keys.heldAddress()]; }
        }""",
        [_light_keystore()],
    )
    assert refused == [
        "This key file cannot be opened: the passphrase is wrong, or the file is not a key file.",
        None,
    ]


def test_typed_data_whose_primary_type_is_not_the_types_is_refused(
    page: Page, live: Live, world: World
) -> None:
    typed = _typed_data(world) | {"primaryType": "Redeem"}
    page.goto(live.url + "/")
    refused = page.evaluate(
        """async ([keystore, passphrase, typedData]) => {
          const keys = await import("/static/js/keys.js");
          await keys.openKeystore(keystore, passphrase);
          try { await keys.signTypedData(typedData); return null; } catch (error) { return error.message; }
        }""",
        [_light_keystore(), PASSPHRASE, typed],
    )
    assert refused == "The server asked for a signature of Redeem, which these types do not describe."
