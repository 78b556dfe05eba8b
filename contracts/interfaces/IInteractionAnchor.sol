// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title One append-only RFC 6962 / RFC 9162 log (SHA-256) of interaction commitments per partner.
/// Each log starts with a genesis leaf bound to its partner; the contract keeps every tree head a
/// partner anchored; a new head must extend the previous one (the first: the genesis leaf), shown by a
/// consistency proof checked here, and grow by at most MAX_GROWTH; no root is anchored twice.
interface IInteractionAnchor {
    error AnchorNotPartner(address account);
    error AnchorZeroRoot();
    error AnchorNotGrowing(uint64 headSize, uint64 size);
    error AnchorInconsistent(uint64 headSize, uint64 size);
    error AnchorRootAlreadyAnchored(bytes32 root, uint256 batchId);
    error AnchorUnknownBatch(uint256 batchId);
    error AnchorGrowthAboveCap(uint64 headSize, uint64 size, uint64 cap);
    error AnchorNotOwnLog(address partner, bytes32 root, uint64 size);
    error AnchorHeadsMalformed(uint256 roots, uint256 sizes, uint256 proofs);

    /// @dev `batchId` numbers every head of every partner; `size` is the partner's log size at this
    /// head, `previousSize` at the head before it (1, its genesis leaf, for a partner's first).
    event BatchAnchored(
        uint256 indexed batchId,
        address indexed partner,
        bytes32 root,
        uint64 size,
        uint64 previousSize
    );

    function anchor(bytes32 root, uint64 size, bytes32[] calldata consistency) external returns (uint256 batchId);

    function anchorMany(
        bytes32[] calldata roots,
        uint64[] calldata sizes,
        bytes32[][] calldata consistencies
    ) external returns (uint256 firstBatchId);

    function batch(
        uint256 batchId
    ) external view returns (bytes32 root, uint64 size, address partner, uint64 blockNumber);

    function head(address partner) external view returns (uint64 size, bytes32 root, uint256 headCount);

    function verifyInclusion(
        uint256 batchId,
        uint64 leafIndex,
        bytes32 leafHash,
        bytes32[] calldata proof
    ) external view returns (bool);
}
