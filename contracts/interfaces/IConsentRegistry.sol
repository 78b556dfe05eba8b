// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Consent history per (member, controller, purpose); receipts stay off-chain, their hashes here.
interface IConsentRegistry {
    /// @dev Consent states as recorded. Expiry is not a record of its own: a given consent with
    /// `expiresAt` in the past answers "not valid" from then on.
    enum Status {
        None,
        Given,
        Withdrawn
    }

    struct Record {
        Status status;
        uint64 timestamp;
        uint64 expiresAt;
        uint64 blockNumber;
        bytes32 receiptHash;
    }

    error ConsentNotPartner(address account);
    error ConsentInvalidMember();
    error ConsentInvalidStatus(uint8 status);
    error ConsentExpiryInPast(uint64 expiresAt, uint64 now_);
    error ConsentLengthMismatch();
    error ConsentEmptyBatch();
    error ConsentUnknownRecord(bytes32 member, address controller, bytes32 purpose, uint256 index);

    event ConsentRecorded(
        bytes32 indexed member,
        address indexed controller,
        bytes32 indexed purpose,
        uint8 status,
        bytes32 receiptHash,
        uint64 expiresAt
    );

    function record(bytes32 member, bytes32 purpose, uint8 status, bytes32 receiptHash, uint64 expiresAt) external;

    function recordBatch(
        bytes32[] calldata members,
        bytes32 purpose,
        uint8 status,
        bytes32[] calldata receiptHashes,
        uint64 expiresAt
    ) external;

    function isValid(bytes32 member, address controller, bytes32 purpose) external view returns (bool);

    function isValidAt(
        bytes32 member,
        address controller,
        bytes32 purpose,
        uint64 timestamp
    ) external view returns (bool);
}
