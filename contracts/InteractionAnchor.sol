// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IConsortium} from "./interfaces/IConsortium.sol";
import {IInteractionAnchor} from "./interfaces/IInteractionAnchor.sol";

/// @title InteractionAnchor
/// @notice One transaction anchors a whole batch of interactions by its Merkle root. Anyone can check an
/// inclusion proof against a stored root here, with the same hashing the off-chain trees use
/// (RFC 6962: leaf = SHA-256(0x00 || data), node = SHA-256(0x01 || left || right)).
contract InteractionAnchor is IInteractionAnchor {
    struct Batch {
        bytes32 root;
        uint64 size;
        address partner;
        uint64 blockNumber;
    }

    // A tree of 2^64 leaves has proofs of at most 64 hashes; longer ones are malformed by definition.
    uint256 private constant _MAX_PROOF_LENGTH = 64;

    IConsortium private immutable _consortium;
    Batch[] private _batches;

    constructor(address consortium_) {
        _consortium = IConsortium(consortium_);
    }

    /// @notice Anchor the root of a batch of `size` leaves; batch ids count up from 0.
    /// Requirements:
    /// - the caller is a current partner; `root` is not zero; `size` is not zero.
    function anchor(bytes32 root, uint64 size) external returns (uint256 batchId) {
        if (!_consortium.isPartner(msg.sender)) revert AnchorNotPartner(msg.sender);
        if (root == bytes32(0)) revert AnchorZeroRoot();
        if (size == 0) revert AnchorEmptyBatch();
        batchId = _batches.length;
        _batches.push(Batch({root: root, size: size, partner: msg.sender, blockNumber: uint64(block.number)}));
        emit BatchAnchored(batchId, msg.sender, root, size);
    }

    /// @notice A stored batch.
    /// Requirements:
    /// - `batchId` is below `batchCount`.
    function batch(
        uint256 batchId
    ) external view returns (bytes32 root, uint64 size, address partner, uint64 blockNumber) {
        Batch storage b = _batch(batchId);
        return (b.root, b.size, b.partner, b.blockNumber);
    }

    function batchCount() external view returns (uint256) {
        return _batches.length;
    }

    /// @notice Whether `leafHash` is leaf `leafIndex` of batch `batchId`, given its audit path `proof`
    /// (sibling hashes from the leaf upwards, RFC 9162 section 2.1.3.2). Any malformed proof (wrong
    /// length, index out of range) is simply not a valid one: the answer is false, never a revert.
    /// Requirements:
    /// - `batchId` is below `batchCount`.
    function verifyInclusion(
        uint256 batchId,
        uint64 leafIndex,
        bytes32 leafHash,
        bytes32[] calldata proof
    ) external view returns (bool) {
        Batch storage b = _batch(batchId);
        return verifyAgainst(b.root, b.size, leafIndex, leafHash, proof);
    }

    /// @notice RFC 9162 inclusion verification against any root and tree size.
    function verifyAgainst(
        bytes32 root,
        uint64 size,
        uint64 leafIndex,
        bytes32 leafHash,
        bytes32[] calldata proof
    ) public pure returns (bool) {
        if (leafIndex >= size || proof.length > _MAX_PROOF_LENGTH) return false;
        uint64 fn = leafIndex;
        uint64 sn = size - 1;
        bytes32 r = leafHash;
        for (uint256 i = 0; i < proof.length; ++i) {
            if (sn == 0) return false;
            if (fn & 1 == 1 || fn == sn) {
                r = sha256(abi.encodePacked(bytes1(0x01), proof[i], r));
                if (fn & 1 == 0) {
                    while (fn & 1 == 0 && fn != 0) {
                        fn >>= 1;
                        sn >>= 1;
                    }
                }
            } else {
                r = sha256(abi.encodePacked(bytes1(0x01), r, proof[i]));
            }
            fn >>= 1;
            sn >>= 1;
        }
        return sn == 0 && r == root;
    }

    function consortium() external view returns (address) {
        return address(_consortium);
    }

    function _batch(uint256 batchId) private view returns (Batch storage) {
        if (batchId >= _batches.length) revert AnchorUnknownBatch(batchId);
        return _batches[batchId];
    }
}
