// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IConsortium} from "./interfaces/IConsortium.sol";
import {IConsentRegistry} from "./interfaces/IConsentRegistry.sol";

/// @title ConsentRegistry
/// @notice Append-only consent history. The calling partner is the controller; the receipt (ISO/IEC TS
/// 27560 / DPV fields) is kept off-chain and only its hash is recorded, so nothing personal is on chain.
/// Any past moment can be asked about: "was consent valid at time T?" is answered from the history.
contract ConsentRegistry is IConsentRegistry {
    IConsortium private immutable _consortium;

    mapping(bytes32 key => Record[]) private _history;

    constructor(address consortium_) {
        _consortium = IConsortium(consortium_);
    }

    modifier onlyPartner() {
        if (!_consortium.isPartner(msg.sender)) revert ConsentNotPartner(msg.sender);
        _;
    }

    /// @notice Record a consent event of `member` towards the calling partner for `purpose`.
    /// Requirements:
    /// - the caller is a current partner; `member` is not zero;
    /// - `status` is 1 (given) or 2 (withdrawn);
    /// - a given consent's `expiresAt` is 0 (no expiry) or in the future.
    function record(
        bytes32 member,
        bytes32 purpose,
        uint8 status,
        bytes32 receiptHash,
        uint64 expiresAt
    ) external onlyPartner {
        _checkStatus(status, expiresAt);
        _record(member, purpose, status, receiptHash, expiresAt);
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
        for (uint256 i = 0; i < members.length; ++i) {
            _record(members[i], purpose, status, receiptHashes[i], expiresAt);
        }
    }

    /// @notice Whether consent is valid now.
    function isValid(bytes32 member, address controller, bytes32 purpose) external view returns (bool) {
        return _isValidAt(member, controller, purpose, uint64(block.timestamp));
    }

    /// @notice Whether consent was (or will be, absent further records) valid at unix time `timestamp`:
    /// the latest record at or before `timestamp` is a given consent that had not expired by then.
    function isValidAt(
        bytes32 member,
        address controller,
        bytes32 purpose,
        uint64 timestamp
    ) external view returns (bool) {
        return _isValidAt(member, controller, purpose, timestamp);
    }

    function historyLength(bytes32 member, address controller, bytes32 purpose) external view returns (uint256) {
        return _history[_key(member, controller, purpose)].length;
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
        Record[] storage history = _history[_key(member, controller, purpose)];
        if (index >= history.length) revert ConsentUnknownRecord(member, controller, purpose, index);
        return history[index];
    }

    function consortium() external view returns (address) {
        return address(_consortium);
    }

    function _record(bytes32 member, bytes32 purpose, uint8 status, bytes32 receiptHash, uint64 expiresAt) private {
        if (member == bytes32(0)) revert ConsentInvalidMember();
        _history[_key(member, msg.sender, purpose)].push(
            Record({
                status: Status(status),
                timestamp: uint64(block.timestamp),
                expiresAt: expiresAt,
                blockNumber: uint64(block.number),
                receiptHash: receiptHash
            })
        );
        emit ConsentRecorded(member, msg.sender, purpose, status, receiptHash, expiresAt);
    }

    function _checkStatus(uint8 status, uint64 expiresAt) private view {
        if (status != uint8(Status.Given) && status != uint8(Status.Withdrawn)) revert ConsentInvalidStatus(status);
        if (status == uint8(Status.Given) && expiresAt != 0 && expiresAt <= block.timestamp) {
            revert ConsentExpiryInPast(expiresAt, uint64(block.timestamp));
        }
    }

    function _isValidAt(
        bytes32 member,
        address controller,
        bytes32 purpose,
        uint64 timestamp
    ) private view returns (bool) {
        Record[] storage history = _history[_key(member, controller, purpose)];
        // Binary search for the first record after `timestamp`; records are appended in block order,
        // so timestamps never decrease along the array.
        uint256 low = 0;
        uint256 high = history.length;
        while (low < high) {
            uint256 mid = (low + high) / 2;
            if (history[mid].timestamp > timestamp) {
                high = mid;
            } else {
                low = mid + 1;
            }
        }
        if (low == 0) return false;
        Record storage latest = history[low - 1];
        return latest.status == Status.Given && (latest.expiresAt == 0 || timestamp < latest.expiresAt);
    }

    function _key(bytes32 member, address controller, bytes32 purpose) private pure returns (bytes32) {
        return keccak256(abi.encode(member, controller, purpose));
    }
}
