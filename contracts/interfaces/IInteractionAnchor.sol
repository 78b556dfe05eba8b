// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Merkle roots (RFC 6962 / RFC 9162, SHA-256) of batches of interaction commitments.
interface IInteractionAnchor {
    error AnchorNotPartner(address account);
    error AnchorZeroRoot();
    error AnchorEmptyBatch();
    error AnchorUnknownBatch(uint256 batchId);

    event BatchAnchored(uint256 indexed batchId, address indexed partner, bytes32 root, uint64 size);

    function anchor(bytes32 root, uint64 size) external returns (uint256 batchId);

    function batch(
        uint256 batchId
    ) external view returns (bytes32 root, uint64 size, address partner, uint64 blockNumber);

    function verifyInclusion(
        uint256 batchId,
        uint64 leafIndex,
        bytes32 leafHash,
        bytes32[] calldata proof
    ) external view returns (bool);
}
