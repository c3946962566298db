"""TurnSigner: the signatures of one loop turn, made back to back."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from netcalc.auth.keys import SigningKey
from netcalc.auth.signatures import TurnSigner
from netcalc.db import utcnow


@dataclass(frozen=True)
class RecordingKey(SigningKey):
    """An ES256 key that notes each input it signs, and refuses b"refused"."""

    log: list[str] = field(default_factory=list)

    def sign(self, signing_input: bytes) -> bytes:
        self.log.append(f"signed {signing_input.decode()}")
        if signing_input == b"refused":
            raise ValueError("this input is refused")
        return super().sign(signing_input)


@pytest.fixture
def key() -> RecordingKey:
    return RecordingKey(
        kid="k",
        alg="ES256",
        private_key=ec.generate_private_key(ec.SECP256R1()),
        public_jwk={},
        created_at=utcnow(),
        retired_at=None,
        published_until=None,
    )


def verifies(key: SigningKey, signing_input: bytes, signature: bytes) -> bool:
    verifier = ECAlgorithm(ECAlgorithm.SHA256)
    return bool(verifier.verify(signing_input, key.public_key, signature))


async def ask(signer: TurnSigner, key: RecordingKey, name: str) -> bytes:
    key.log.append(f"asked {name}")
    return await signer.sign(key, name.encode())


def test_signatures_asked_in_one_turn_are_made_together(key: RecordingKey) -> None:
    """Requests that ask in one turn are all signed after the last has asked,
    each with a signature of its own input; a later request gets a new turn."""
    signer = TurnSigner()

    async def requests() -> tuple[list[bytes], bytes]:
        together = await asyncio.gather(*(ask(signer, key, n) for n in "abc"))
        return together, await ask(signer, key, "d")

    together, later = asyncio.run(requests())

    assert key.log == [
        *("asked a", "asked b", "asked c"),
        *("signed a", "signed b", "signed c"),
        *("asked d", "signed d"),
    ]
    for name, signature in zip("abc", together, strict=True):
        assert verifies(key, name.encode(), signature)
    assert verifies(key, b"d", later)


def test_a_failed_signature_fails_only_its_own_request(key: RecordingKey) -> None:
    """The request whose signing raised gets the error; the others are signed."""
    signer = TurnSigner()

    async def requests() -> list[bytes | BaseException]:
        names = ("a", "refused", "b")
        return await asyncio.gather(
            *(ask(signer, key, n) for n in names), return_exceptions=True
        )

    first, refused, last = asyncio.run(requests())

    assert isinstance(refused, ValueError)
    assert isinstance(first, bytes) and verifies(key, b"a", first)
    assert isinstance(last, bytes) and verifies(key, b"b", last)


def test_a_request_cancelled_while_waiting_is_not_signed(key: RecordingKey) -> None:
    """A request cancelled before its turn ends costs no signature."""
    signer = TurnSigner()

    async def requests() -> bytes:
        gone = asyncio.create_task(ask(signer, key, "gone"))
        kept = asyncio.create_task(ask(signer, key, "kept"))
        await asyncio.sleep(0)
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        return await kept

    kept = asyncio.run(requests())

    assert key.log == ["asked gone", "asked kept", "signed kept"]
    assert verifies(key, b"kept", kept)


def test_one_signer_serves_each_new_event_loop(key: RecordingKey) -> None:
    """An app served on one loop, then another, as tests do, still signs."""
    signer = TurnSigner()

    for name in ("first", "second"):
        signature = asyncio.run(ask(signer, key, name))
        assert verifies(key, name.encode(), signature)


def test_a_turn_left_on_a_closed_loop_does_not_hold_up_the_next(
    key: RecordingKey,
) -> None:
    """A loop that ended before its turn was signed, as a test client's loop
    may, leaves the signer signing on the next loop."""
    signer = TurnSigner()
    ended = asyncio.new_event_loop()

    def ask_and_go() -> None:
        asking = ask(signer, key, "left")
        asking.send(None)
        asking.close()

    # The loop stops before the callback that would sign the turn runs.
    ended.call_soon(ask_and_go)
    ended.call_soon(ended.stop)
    ended.run_forever()
    ended.close()

    async def ask_on_the_next_loop() -> bytes:
        return await asyncio.wait_for(ask(signer, key, "next"), timeout=10)

    signature = asyncio.run(ask_on_the_next_loop())

    assert key.log == ["asked left", "asked next", "signed next"]
    assert verifies(key, b"next", signature)
