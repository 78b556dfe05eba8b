// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IConsortium} from "./interfaces/IConsortium.sol";
import {IConsentRegistry} from "./interfaces/IConsentRegistry.sol";
import {IErasureHook, IMemberRegistry} from "./interfaces/IMemberRegistry.sol";

/// @title ConsentRegistry
/// @notice Append-only consent history per (member, controller, purpose). The receipt (ISO/IEC TS
/// 27560 / DPV fields) is kept off-chain and only its hash is recorded, so nothing personal is on chain.
///
/// Who may record what:
/// - a member with a key gives (or withdraws) consent by its own EIP-712 signature, relayed by any
///   partner, towards any current partner (`recordSigned`);
/// - a member without a key has consent attested by its home partner only, towards that partner
///   (`record`, `recordBatch`); a partner may always record a withdrawal towards itself;
/// - a withdrawal needs a consent to withdraw; purposes are a declared list (`isPurpose`);
/// - erasing the member (MemberRegistry) withdraws every consent it has given.
/// A consent, attested or signed, stops counting when its controller leaves the consortium, and does
/// not come back when the controller is readmitted: a new tenure starts clean.
contract ConsentRegistry is IConsentRegistry, IErasureHook {
    // A `Record` as stored: its first slot has four bytes to spare, where the entry at index 0 keeps the
    // length of its history. A member's first consent then writes two new slots instead of three (no
    // array length of its own), and `isValid` of a one-record history reads one slot for both.
    struct Entry {
        Status status;
        Source source;
        uint64 timestamp;
        uint64 expiresAt;
        uint64 blockNumber;
        uint32 count; // index 0 only: how many records the history holds
        bytes32 receiptHash;
    }

    // one slot: the purpose by its place in the declared list (1-based), not its 32-byte id; the pair at
    // index 0 also keeps how many pairs there are, so a member's first pair is one new slot, not two
    struct Pair {
        address controller;
        uint8 purpose;
        uint32 count; // index 0 only
    }

    bytes32 private constant _CONSENT_TYPEHASH =
        keccak256(
            "Consent(bytes32 member,address controller,bytes32 purpose,uint8 status,bytes32 receiptHash,"
            "uint64 expiresAt,uint256 nonce,uint256 deadline)"
        );

    // The declared purposes (keccak256 of the name; DPV names in ledger/clients/consent.py).
    bytes32 public constant LOYALTY = keccak256("loyalty");
    bytes32 public constant PROFILING = keccak256("profiling");
    bytes32 public constant MARKETING = keccak256("marketing");
    bytes32 public constant ANALYTICS = keccak256("analytics");
    bytes32 public constant PERSONALISATION = keccak256("personalisation");
    bytes32 public constant RESEARCH = keccak256("research");

    IConsortium private immutable _consortium;
    IMemberRegistry private immutable _registry;
    // history per (member, controller, purpose), oldest first; its length in entry 0 (`Entry.count`)
    mapping(bytes32 key => mapping(uint256 index => Entry)) private _history;
    // every (controller, purpose) a member has a history with, so erasure can reach each one; the
    // number of them in pair 0 (`Pair.count`)
    mapping(bytes32 member => mapping(uint256 index => Pair)) private _pairs;

    constructor(address consortium_, address registry_) {
        _consortium = IConsortium(consortium_);
        _registry = IMemberRegistry(registry_);
    }

    modifier onlyPartner() {
        if (!_consortium.isPartner(msg.sender)) revert ConsentNotPartner(msg.sender);
        _;
    }

    /// @notice Attest a consent event of `member` towards the calling partner for `purpose`.
    /// Requirements:
    /// - the caller is a current partner; `member` is enrolled and not erased; `purpose` is declared;
    /// - `status` is 1 (given) or 2 (withdrawn); a given consent's `expiresAt` is 0 or in the future;
    /// - given: the member has no signer, the caller is its home partner, `receiptHash` is not zero;
    /// - withdrawn: the member's consent towards the caller for `purpose` is currently given.
    function record(
        bytes32 member,
        bytes32 purpose,
        uint8 status,
        bytes32 receiptHash,
        uint64 expiresAt
    ) external onlyPartner {
        _checkStatus(status, expiresAt);
        _checkPurpose(purpose);
        _attest(member, purpose, status, receiptHash, expiresAt);
    }

    /// @notice `record` for many members with one purpose and status (imports); all or nothing.
    /// Requirements:
    /// - as `record` for every item; `members` and `receiptHashes` have the same, non-zero length.
    function recordBatch(
        bytes32[] calldata members,
        bytes32 purpose,
        uint8 status,
        bytes32[] calldata receiptHashes,
        uint64 expiresAt
    ) external onlyPartner {
        if (members.length == 0) revert ConsentEmptyBatch();
        if (members.length != receiptHashes.length) revert ConsentLengthMismatch();
        _checkStatus(status, expiresAt);
        _checkPurpose(purpose);
        for (uint256 i = 0; i < members.length; ++i) {
            _attest(members[i], purpose, status, receiptHashes[i], expiresAt);
        }
    }

    /// @notice Record a consent event the member signed (EIP-712 `Consent`, domain of the
    /// MemberRegistry), relayed by the calling partner, towards `controller`.
    /// Requirements:
    /// - the caller and `controller` are current partners; `member` is active and has a signer;
    /// - `purpose` is declared; `status`, `expiresAt` as for `record`; a given consent has a receipt;
    /// - withdrawn: the consent is currently given;
    /// - the signature is the member's signer's, for its current nonce, before `deadline`.
    function recordSigned(
        bytes32 member,
        address controller,
        bytes32 purpose,
        uint8 status,
        bytes32 receiptHash,
        uint64 expiresAt,
        uint256 deadline,
        bytes calldata signature
    ) external onlyPartner {
        if (!_consortium.isPartner(controller)) revert ConsentNotPartner(controller);
        _checkStatus(status, expiresAt);
        _checkPurpose(purpose);
        _registry.requireActive(member);
        if (status == uint8(Status.Given) && receiptHash == bytes32(0)) revert ConsentEmptyReceipt();
        bytes32 key = _key(member, controller, purpose);
        if (status == uint8(Status.Withdrawn)) _requireGiven(key, member, controller, purpose);
        _registry.useAuthorization(
            member,
            _consentHash(member, controller, purpose, status, receiptHash, expiresAt, deadline),
            deadline,
            signature
        );
        _push(key, member, controller, purpose, Status(status), Source.Signed, receiptHash, expiresAt);
    }

    /// @notice Withdraw every consent `member` has given (called by the MemberRegistry on erasure).
    /// Requirements:
    /// - the caller is the MemberRegistry.
    function eraseMember(bytes32 member) external {
        if (msg.sender != address(_registry)) revert ConsentNotRegistry(msg.sender);
        mapping(uint256 => Pair) storage pairs = _pairs[member];
        uint256 count = pairs[0].count;
        for (uint256 i = 0; i < count; ++i) {
            Pair storage pair = pairs[i];
            bytes32 purpose = _purposeAt(pair.purpose);
            bytes32 key = _key(member, pair.controller, purpose);
            if (_latest(key).status == Status.Given) {
                _push(key, member, pair.controller, purpose, Status.Withdrawn, Source.Erasure, 0, 0);
            }
        }
    }

    /// @notice Whether consent is valid now.
    function isValid(bytes32 member, address controller, bytes32 purpose) external view returns (bool) {
        bytes32 key = _key(member, controller, purpose);
        if (_history[key][0].count == 0) return false;
        Entry storage latest = _latest(key);
        if (latest.status != Status.Given) return false;
        if (latest.expiresAt != 0 && block.timestamp >= latest.expiresAt) return false;
        return _attestationStands(latest, controller, uint64(block.number));
    }

    /// @notice Whether consent was (or will be, absent further records) valid at unix time `timestamp`:
    /// the latest record at or before `timestamp` is a given consent that had not expired by then (and,
    /// if attested, whose controller was still a partner then).
    function isValidAt(
        bytes32 member,
        address controller,
        bytes32 purpose,
        uint64 timestamp
    ) external view returns (bool) {
        mapping(uint256 => Entry) storage history = _history[_key(member, controller, purpose)];
        // Binary search for the first record after `timestamp`; records are appended in block order,
        // so timestamps never decrease along the history.
        uint256 low = 0;
        uint256 high = history[0].count;
        while (low < high) {
            uint256 mid = (low + high) / 2;
            if (history[mid].timestamp > timestamp) {
                high = mid;
            } else {
                low = mid + 1;
            }
        }
        if (low == 0) return false;
        Entry storage latest = history[low - 1];
        if (latest.status != Status.Given || (latest.expiresAt != 0 && timestamp >= latest.expiresAt)) return false;
        return _consortium.servedThroughTime(controller, latest.timestamp, timestamp);
    }

    /// @notice Whether consent was valid at the end of block `blockNumber`: the last record mined in or
    /// before that block (by record index, so of several records in one block the last counts) is a
    /// given consent, not expired by `blockTimestamp` (the EVM cannot read a past block's timestamp, so
    /// the caller passes that block's), and, if attested, its controller was still a partner then.
    function isValidAtBlock(
        bytes32 member,
        address controller,
        bytes32 purpose,
        uint64 blockNumber,
        uint64 blockTimestamp
    ) external view returns (bool) {
        mapping(uint256 => Entry) storage history = _history[_key(member, controller, purpose)];
        uint256 low = 0;
        uint256 high = history[0].count;
        while (low < high) {
            uint256 mid = (low + high) / 2;
            if (history[mid].blockNumber > blockNumber) {
                high = mid;
            } else {
                low = mid + 1;
            }
        }
        if (low == 0) return false;
        Entry storage latest = history[low - 1];
        if (latest.status != Status.Given || (latest.expiresAt != 0 && blockTimestamp >= latest.expiresAt)) {
            return false;
        }
        return _attestationStands(latest, controller, blockNumber);
    }

    /// @notice Whether `purpose` is one of the declared purposes.
    function isPurpose(bytes32 purpose) public pure returns (bool) {
        return _indexOf(purpose) != 0;
    }

    function historyLength(bytes32 member, address controller, bytes32 purpose) external view returns (uint256) {
        return _history[_key(member, controller, purpose)][0].count;
    }

    /// @notice The `index`-th record (oldest first).
    /// Requirements:
    /// - `index` is below `historyLength`.
    function recordAt(
        bytes32 member,
        address controller,
        bytes32 purpose,
        uint256 index
    ) external view returns (Record memory) {
        mapping(uint256 => Entry) storage history = _history[_key(member, controller, purpose)];
        if (index >= history[0].count) revert ConsentUnknownRecord(member, controller, purpose, index);
        Entry storage entry = history[index];
        return
            Record({
                status: entry.status,
                source: entry.source,
                timestamp: entry.timestamp,
                expiresAt: entry.expiresAt,
                blockNumber: entry.blockNumber,
                receiptHash: entry.receiptHash
            });
    }

    function consortium() external view returns (address) {
        return address(_consortium);
    }

    function registry() external view returns (address) {
        return address(_registry);
    }

    function _attest(bytes32 member, bytes32 purpose, uint8 status, bytes32 receiptHash, uint64 expiresAt) private {
        if (member == bytes32(0)) revert ConsentInvalidMember();
        (address home, address signer) = _registry.requireActive(member);
        bytes32 key = _key(member, msg.sender, purpose);
        if (status == uint8(Status.Given)) {
            if (signer != address(0)) revert ConsentSignatureRequired(member);
            if (home != msg.sender) revert ConsentNotHomePartner(member, home, msg.sender);
            if (receiptHash == bytes32(0)) revert ConsentEmptyReceipt();
        } else {
            _requireGiven(key, member, msg.sender, purpose);
        }
        _push(key, member, msg.sender, purpose, Status(status), Source.Attested, receiptHash, expiresAt);
    }

    /// @dev The EIP-712 struct hash of `Consent`, with the member's current nonce.
    function _consentHash(
        bytes32 member,
        address controller,
        bytes32 purpose,
        uint8 status,
        bytes32 receiptHash,
        uint64 expiresAt,
        uint256 deadline
    ) private view returns (bytes32) {
        uint256 nonce = _registry.nonceOf(member);
        // two encodings of static words, joined: the same bytes as one abi.encode, in fewer stack slots
        return
            keccak256(
                bytes.concat(
                    abi.encode(_CONSENT_TYPEHASH, member, controller, purpose),
                    abi.encode(status, receiptHash, expiresAt, nonce, deadline)
                )
            );
    }

    function _push(
        bytes32 key,
        bytes32 member,
        address controller,
        bytes32 purpose,
        Status status,
        Source source,
        bytes32 receiptHash,
        uint64 expiresAt
    ) private {
        mapping(uint256 => Entry) storage history = _history[key];
        uint32 count = history[0].count;
        if (count == 0) _addPair(member, controller, _indexOf(purpose));
        history[count] = Entry({
            status: status,
            source: source,
            timestamp: uint64(block.timestamp),
            expiresAt: expiresAt,
            blockNumber: uint64(block.number),
            count: count == 0 ? 1 : 0,
            receiptHash: receiptHash
        });
        if (count != 0) history[0].count = count + 1; // checked: a history never reaches 2**32 records
        emit ConsentRecorded(member, controller, purpose, uint8(status), receiptHash, expiresAt, source);
    }

    function _requireGiven(bytes32 key, bytes32 member, address controller, bytes32 purpose) private view {
        if (_history[key][0].count == 0 || _latest(key).status != Status.Given) {
            revert ConsentNotGiven(member, controller, purpose);
        }
    }

    /// @dev The latest entry of the history at `key`. Requires a non-empty history.
    function _latest(bytes32 key) private view returns (Entry storage) {
        mapping(uint256 => Entry) storage history = _history[key];
        return history[history[0].count - 1];
    }

    /// @dev Remember that `member` has a history towards `controller` for the purpose at `purpose`.
    function _addPair(bytes32 member, address controller, uint8 purpose) private {
        mapping(uint256 => Pair) storage pairs = _pairs[member];
        uint32 count = pairs[0].count;
        pairs[count] = Pair({controller: controller, purpose: purpose, count: count == 0 ? 1 : 0});
        if (count != 0) pairs[0].count = count + 1;
    }

    function _attestationStands(Entry storage latest, address controller, uint64 atBlock) private view returns (bool) {
        return _consortium.servedThrough(controller, latest.blockNumber, atBlock);
    }

    function _checkStatus(uint8 status, uint64 expiresAt) private view {
        if (status != uint8(Status.Given) && status != uint8(Status.Withdrawn)) revert ConsentInvalidStatus(status);
        if (status == uint8(Status.Given) && expiresAt != 0 && expiresAt <= block.timestamp) {
            revert ConsentExpiryInPast(expiresAt, uint64(block.timestamp));
        }
    }

    function _checkPurpose(bytes32 purpose) private pure {
        if (!isPurpose(purpose)) revert ConsentUnknownPurpose(purpose);
    }

    /// @dev The purpose's place in the declared list, from 1; 0 for an undeclared one.
    function _indexOf(bytes32 purpose) private pure returns (uint8) {
        if (purpose == LOYALTY) return 1;
        if (purpose == PROFILING) return 2;
        if (purpose == MARKETING) return 3;
        if (purpose == ANALYTICS) return 4;
        if (purpose == PERSONALISATION) return 5;
        if (purpose == RESEARCH) return 6;
        return 0;
    }

    function _purposeAt(uint8 index) private pure returns (bytes32) {
        bytes32[6] memory declared = [LOYALTY, PROFILING, MARKETING, ANALYTICS, PERSONALISATION, RESEARCH];
        return declared[index - 1];
    }

    function _key(bytes32 member, address controller, bytes32 purpose) private pure returns (bytes32) {
        return keccak256(abi.encode(member, controller, purpose));
    }
}
