// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IConsortium} from "./interfaces/IConsortium.sol";
import {IInteractionAnchor} from "./interfaces/IInteractionAnchor.sol";

/// @title InteractionAnchor
/// @notice Each partner's interactions are one append-only Merkle log (RFC 6962: leaf = SHA-256(0x00 ||
/// data), node = SHA-256(0x01 || left || right)). A partner anchors a new tree head (size, root) only
/// with a consistency proof from its previous head (RFC 9162 section 2.1.4), verified here with the
/// sha256 precompile: the chain itself guarantees that a log only grows, no monitor needed.
///
/// Every partner's log starts with its own genesis leaf (leaf 0: `genesisLeaf(partner)`, bound to the
/// partner, this contract and this chain), and a partner's first head must be proven consistent with
/// it, as every later head is with the one before. So a root belongs to one partner's log: a root
/// copied from another partner's pending anchor fails that proof (`AnchorNotOwnLog`) and cannot
/// block the owner's own anchor. A root anchored once is refused after, and one head adds at most
/// `MAX_GROWTH` leaves: a head's size is a claim the chain cannot count, so it is kept within what a
/// store can back. Inclusion proofs are checked against any head ever anchored.
contract InteractionAnchor is IInteractionAnchor {
    struct Batch {
        bytes32 root;
        uint64 size; // the partner's log size at this head
        address partner;
        uint64 blockNumber;
    }

    // A tree of 2^64 leaves has audit paths of at most 64 hashes and consistency proofs of at most
    // 128; longer ones are malformed by definition.
    uint256 private constant _MAX_PROOF_LENGTH = 64;
    uint256 private constant _MAX_CONSISTENCY_LENGTH = 128;
    uint256 private constant _PAGE = 1000;
    // what leaf 0 of every log hashes (RFC 6962 leaf: 0x00 || data), before the chain, this contract
    // and the partner
    bytes16 private constant _GENESIS_TAG = "ledgercrm-log-v1";

    /// @notice The most leaves one head may add to its partner's log (2**20, over a million: an import
    /// anchors batches of thousands).
    uint64 public constant MAX_GROWTH = 1 << 20;

    /// @notice The most heads one `anchorMany` takes (each ~180k gas).
    uint256 public constant MAX_HEADS_PER_CALL = 32;

    IConsortium private immutable _consortium;
    Batch[] private _batches;
    mapping(address partner => uint256[] batchIds) private _heads;
    // batch id + 1 of the head that anchored a root (0: never anchored)
    mapping(bytes32 root => uint256 batchIdPlusOne) private _rootBatch;
    address[] private _partners;

    constructor(address consortium_) {
        _consortium = IConsortium(consortium_);
    }

    /// @notice Anchor the caller's new tree head: its log of `size` leaves has root `root`, and
    /// `consistency` proves it extends the caller's previous head (for its first head: the log of its
    /// genesis leaf alone, size 1). Batch ids count up from 0.
    /// Requirements:
    /// - the caller is a current partner; `root` is not zero and was never anchored by anyone;
    /// - `size` is larger than the caller's current head size (1 before its first head), by at most
    ///   `MAX_GROWTH`;
    /// - `consistency` is the RFC 9162 consistency proof from the current head to (size, root).
    function anchor(
        bytes32 root,
        uint64 size,
        bytes32[] calldata consistency
    ) external returns (uint256 batchId) {
        if (!_consortium.isPartner(msg.sender)) revert AnchorNotPartner(msg.sender);
        return _anchor(root, size, consistency);
    }

    /// @notice Anchor several of the caller's new tree heads in one transaction, in order: each exactly
    /// as `anchor` would, proven consistent with the head before it (the first with the caller's
    /// current head), each with its own batch id (consecutive) and its own `BatchAnchored`. All or
    /// nothing: one head refused refuses them all, with that head's error. (Every block costs a node
    /// work that grows with the chain's whole state, so a store that holds several batches ready sends
    /// their heads together.)
    /// Requirements:
    /// - `roots`, `sizes` and `consistencies` are of one length, 1 to `MAX_HEADS_PER_CALL`;
    /// - each head meets `anchor`'s requirements against the head before it.
    function anchorMany(
        bytes32[] calldata roots,
        uint64[] calldata sizes,
        bytes32[][] calldata consistencies
    ) external returns (uint256 firstBatchId) {
        if (!_consortium.isPartner(msg.sender)) revert AnchorNotPartner(msg.sender);
        uint256 count = roots.length;
        if (count == 0 || count > MAX_HEADS_PER_CALL || sizes.length != count || consistencies.length != count) {
            revert AnchorHeadsMalformed(roots.length, sizes.length, consistencies.length);
        }
        firstBatchId = _batches.length;
        for (uint256 i = 0; i < count; ++i) {
            _anchor(roots[i], sizes[i], consistencies[i]);
        }
    }

    function _anchor(bytes32 root, uint64 size, bytes32[] calldata consistency) private returns (uint256 batchId) {
        if (root == bytes32(0)) revert AnchorZeroRoot();
        uint256 anchoredIn = _rootBatch[root];
        if (anchoredIn != 0) revert AnchorRootAlreadyAnchored(root, anchoredIn - 1);
        uint256[] storage heads = _heads[msg.sender];
        (uint64 headSize, bytes32 headRoot) = _tip(msg.sender, heads);
        if (size <= headSize) revert AnchorNotGrowing(headSize, size);
        if (size - headSize > MAX_GROWTH) revert AnchorGrowthAboveCap(headSize, size, MAX_GROWTH);
        if (!verifyConsistency(headSize, size, headRoot, root, consistency)) {
            if (heads.length == 0) revert AnchorNotOwnLog(msg.sender, root, size);
            revert AnchorInconsistent(headSize, size);
        }
        batchId = _batches.length;
        _batches.push(Batch({root: root, size: size, partner: msg.sender, blockNumber: uint64(block.number)}));
        if (heads.length == 0) _partners.push(msg.sender);
        heads.push(batchId);
        // cannot overflow: batchId is an array length
        unchecked {
            _rootBatch[root] = batchId + 1;
        }
        emit BatchAnchored(batchId, msg.sender, root, size, headSize);
    }

    /// @notice Leaf 0 of `partner`'s log: the RFC 6962 leaf hash of "ledgercrm-log-v1" followed by the
    /// chain id (32 bytes), this contract's address and the partner's (20 bytes each).
    function genesisLeaf(address partner) public view returns (bytes32) {
        return sha256(abi.encodePacked(bytes1(0x00), _GENESIS_TAG, block.chainid, address(this), partner));
    }

    /// @notice A stored head, by batch id.
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

    /// @notice A partner's latest head and how many it has anchored; before its first, its log of the
    /// genesis leaf alone (size 1, root `genesisLeaf(partner)`, count 0).
    function head(address partner) external view returns (uint64 size, bytes32 root, uint256 headCount) {
        uint256[] storage heads = _heads[partner];
        (size, root) = _tip(partner, heads);
        headCount = heads.length;
    }

    /// @notice Up to 1,000 of a partner's heads from its `start`-th on, oldest first: batch ids, roots,
    /// sizes and blocks.
    function headsOf(
        address partner,
        uint256 start
    )
        external
        view
        returns (uint256[] memory batchIds, bytes32[] memory roots, uint64[] memory sizes, uint64[] memory blocks)
    {
        uint256[] storage heads = _heads[partner];
        uint256 end = heads.length;
        if (start > end) start = end;
        if (end - start > _PAGE) end = start + _PAGE;
        uint256 count = end - start;
        batchIds = new uint256[](count);
        roots = new bytes32[](count);
        sizes = new uint64[](count);
        blocks = new uint64[](count);
        for (uint256 i = 0; i < count; ++i) {
            uint256 id = heads[start + i];
            Batch storage b = _batches[id];
            (batchIds[i], roots[i], sizes[i], blocks[i]) = (id, b.root, b.size, b.blockNumber);
        }
    }

    /// @notice Every address that ever anchored a head, in the order of their first.
    function partners() external view returns (address[] memory) {
        return _partners;
    }

    /// @notice The batch id of the head that anchored `root`, if any.
    function batchOfRoot(bytes32 root) external view returns (bool anchored, uint256 batchId) {
        uint256 found = _rootBatch[root];
        // cannot underflow: found is checked first
        unchecked {
            return found == 0 ? (false, 0) : (true, found - 1);
        }
    }

    /// @notice Whether `leafHash` is leaf `leafIndex` of head `batchId`, given its audit path `proof`
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

    /// @notice RFC 9162 section 2.1.4.2: whether the tree (newSize, newRoot) extends (oldSize, oldRoot),
    /// given the consistency proof `proof`. Malformed proofs are not valid ones: false, never a revert.
    function verifyConsistency(
        uint64 oldSize,
        uint64 newSize,
        bytes32 oldRoot,
        bytes32 newRoot,
        bytes32[] calldata proof
    ) public pure returns (bool) {
        if (oldSize == 0 || oldSize > newSize || proof.length > _MAX_CONSISTENCY_LENGTH) return false;
        if (oldSize == newSize) return proof.length == 0 && oldRoot == newRoot;
        if (proof.length == 0) return false;
        // with an old size that is a power of two, the old root is the path's implicit first node
        bool implicit = oldSize & (oldSize - 1) == 0;
        uint256 i = implicit ? 0 : 1;
        bytes32 fr = implicit ? oldRoot : proof[0];
        bytes32 sr = fr;
        uint64 fn = oldSize - 1;
        uint64 sn = newSize - 1;
        while (fn & 1 == 1) {
            fn >>= 1;
            sn >>= 1;
        }
        for (; i < proof.length; ++i) {
            if (sn == 0) return false;
            bytes32 c = proof[i];
            if (fn & 1 == 1 || fn == sn) {
                fr = sha256(abi.encodePacked(bytes1(0x01), c, fr));
                sr = sha256(abi.encodePacked(bytes1(0x01), c, sr));
                while (fn & 1 == 0 && fn != 0) {
                    fn >>= 1;
                    sn >>= 1;
                }
            } else {
                sr = sha256(abi.encodePacked(bytes1(0x01), sr, c));
            }
            fn >>= 1;
            sn >>= 1;
        }
        return sn == 0 && fr == oldRoot && sr == newRoot;
    }

    function consortium() external view returns (address) {
        return address(_consortium);
    }

    function _tip(address partner, uint256[] storage heads) private view returns (uint64 size, bytes32 root) {
        if (heads.length == 0) return (1, genesisLeaf(partner));
        Batch storage last = _batches[heads[heads.length - 1]];
        return (last.size, last.root);
    }

    function _batch(uint256 batchId) private view returns (Batch storage) {
        if (batchId >= _batches.length) revert AnchorUnknownBatch(batchId);
        return _batches[batchId];
    }
}
