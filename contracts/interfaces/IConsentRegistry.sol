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

    /// @dev Who made a record: the member itself (its EIP-712 signature, relayed by a partner), a
    /// partner attesting it (the member's home partner for a member without a key, or any controller
    /// recording a withdrawal towards itself), or the member's erasure.
    enum Source {
        Signed,
        Attested,
        Erasure
    }

    struct Record {
        Status status;
        Source source;
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
    error ConsentUnknownPurpose(bytes32 purpose);
    error ConsentEmptyReceipt();
    error ConsentSignatureRequired(bytes32 member);
    error ConsentNotHomePartner(bytes32 member, address home, address account);
    error ConsentNotGiven(bytes32 member, address controller, bytes32 purpose);
    error ConsentNotRegistry(address account);

    event ConsentRecorded(
        bytes32 indexed member,
        address indexed controller,
        bytes32 indexed purpose,
        uint8 status,
        bytes32 receiptHash,
        uint64 expiresAt,
        Source source
    );

    function record(bytes32 member, bytes32 purpose, uint8 status, bytes32 receiptHash, uint64 expiresAt) external;

    function recordBatch(
        bytes32[] calldata members,
        bytes32 purpose,
        uint8 status,
        bytes32[] calldata receiptHashes,
        uint64 expiresAt
    ) external;

    function recordSigned(
        bytes32 member,
        address controller,
        bytes32 purpose,
        uint8 status,
        bytes32 receiptHash,
        uint64 expiresAt,
        uint256 deadline,
        bytes calldata signature
    ) external;

    function isValid(bytes32 member, address controller, bytes32 purpose) external view returns (bool);

    function isValidAt(
        bytes32 member,
        address controller,
        bytes32 purpose,
        uint64 timestamp
    ) external view returns (bool);

    function isValidAtBlock(
        bytes32 member,
        address controller,
        bytes32 purpose,
        uint64 blockNumber,
        uint64 blockTimestamp
    ) external view returns (bool);
}
