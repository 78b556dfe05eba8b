// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {IConsortium} from "./interfaces/IConsortium.sol";
import {IErasureHook, IMemberRegistry} from "./interfaces/IMemberRegistry.sol";

/// @title MemberRegistry
/// @notice Per member id: the partner that enrolled it (home partner), an optional signer (a key the
/// customer holds), and whether it was erased. Customer authorizations are EIP-712 signatures (domain
/// "ledgercrm", version "1", this chain and this contract) with a per-member nonce and a deadline,
/// relayed by any partner; ConsentRegistry and LoyaltyPoints check them here, so one nonce orders
/// everything a member signs and a signature is good for one use only.
contract MemberRegistry is IMemberRegistry, EIP712 {
    struct Member {
        address home;
        bool erased;
        address signer;
        // bumped on every signer change, so votes to reset a lost key count for one change only
        uint64 round;
    }

    /// @dev A partner's vote to reset a member's signer, one per partner per round: a vote for another
    /// new signer replaces the earlier one. It counts while its voter is in the tenure it voted in and
    /// for `RESET_VOTE_LIFETIME` after it was cast.
    struct ResetVote {
        address newSigner;
        uint64 castAt;
        // the voter's tenure number at the Consortium (1 for its first); a uint32 of admissions of one
        // account, each by a vote of the partners, is never reached
        uint32 tenure;
    }

    /// @notice How long a vote to reset a lost key counts, as a Consortium proposal stays open: votes
    /// gathered over months are not a majority of today.
    uint64 public constant RESET_VOTE_LIFETIME = 7 days;

    bytes32 private constant _SIGNER_CHANGE_TYPEHASH =
        keccak256("SignerChange(bytes32 member,address newSigner,uint256 nonce,uint256 deadline)");

    IConsortium private immutable _consortium;
    address private immutable _deployer;
    address private _consent;
    address private _loyalty;
    mapping(bytes32 member => Member) private _members;
    mapping(bytes32 member => uint256) private _nonces;
    mapping(bytes32 member => mapping(uint64 round => mapping(address voter => ResetVote))) private _resetVotes;

    constructor(address consortium_) EIP712("ledgercrm", "1") {
        _consortium = IConsortium(consortium_);
        _deployer = msg.sender;
    }

    modifier onlyPartner() {
        if (!_consortium.isPartner(msg.sender)) revert MemberNotPartner(msg.sender);
        _;
    }

    /// @notice Name the ConsentRegistry and LoyaltyPoints this registry serves (erasure reaches them,
    /// and they check signatures here). Once, by the deployer, right after deployment.
    /// Requirements:
    /// - the caller deployed this contract; no link was made before; neither address is zero.
    function link(address consent, address loyalty) external {
        if (msg.sender != _deployer) revert MemberNotDeployer(msg.sender);
        if (_consent != address(0)) revert MemberAlreadyLinked();
        if (consent == address(0) || loyalty == address(0)) revert MemberZeroAddress();
        _consent = consent;
        _loyalty = loyalty;
        emit RegistryLinked(consent, loyalty);
    }

    /// @notice Enrol members, the caller becoming their home partner; `signers[i]` is member i's key, or
    /// zero for a member without one. All or nothing.
    /// Requirements:
    /// - the caller is a current partner; the arrays have the same, non-zero length;
    /// - no member is zero or already enrolled.
    function enrolBatch(bytes32[] calldata members, address[] calldata signers) external onlyPartner {
        if (members.length == 0) revert MemberEmptyBatch();
        if (members.length != signers.length) revert MemberLengthMismatch();
        for (uint256 i = 0; i < members.length; ++i) {
            bytes32 member = members[i];
            if (member == bytes32(0)) revert MemberInvalidMember();
            Member storage m = _members[member];
            if (m.home != address(0)) revert MemberAlreadyEnrolled(member, m.home);
            m.home = msg.sender;
            if (signers[i] != address(0)) m.signer = signers[i];
            emit MemberEnrolled(member, msg.sender, signers[i]);
        }
    }

    /// @notice Bind a key the customer handed to its home partner, for a member that has none yet.
    /// Requirements:
    /// - the caller is the member's home partner and still a partner; the member is active, has no signer;
    /// - `signer` is not zero.
    function bindSigner(bytes32 member, address signer) external onlyPartner {
        Member storage m = _active(member);
        if (m.home != msg.sender) revert MemberNotHomePartner(member, m.home, msg.sender);
        if (signer == address(0)) revert MemberZeroSigner();
        if (m.signer != address(0)) revert MemberSignerAlreadyBound(member, m.signer);
        m.signer = signer;
        unchecked {
            ++m.round; // a uint64 of signer changes does not wrap
        }
        emit SignerChanged(member, address(0), signer, false);
    }

    /// @notice Replace the member's signer, authorized by the current signer's EIP-712 signature over
    /// SignerChange(member, newSigner, nonce, deadline). Any partner relays.
    /// Requirements:
    /// - the caller is a partner; the member is active and has a signer; `newSigner` is not zero and not
    ///   the member's signer;
    /// - the signature is the signer's, for the current nonce, and `deadline` has not passed.
    function changeSigner(
        bytes32 member,
        address newSigner,
        uint256 deadline,
        bytes calldata signature
    ) external onlyPartner {
        Member storage m = _active(member);
        if (newSigner == address(0)) revert MemberZeroSigner();
        if (newSigner == m.signer) revert MemberSameSigner(member, newSigner);
        bytes32 structHash = keccak256(abi.encode(_SIGNER_CHANGE_TYPEHASH, member, newSigner, _nonces[member], deadline));
        _authorize(member, m.signer, structHash, deadline, signature);
        address previous = m.signer;
        m.signer = newSigner;
        unchecked {
            ++m.round;
        }
        emit SignerChanged(member, previous, newSigner, false);
    }

    /// @notice Vote to give the member a new signer (its key was lost); it takes effect once a strict
    /// majority of the current partners voted for the same new signer in the same round. A partner has
    /// one vote per round: voting for another new signer moves its vote there. A vote stops counting
    /// when its voter leaves the consortium (and does not come back with a readmission) and
    /// `RESET_VOTE_LIFETIME` after it was cast.
    /// Requirements:
    /// - the caller is a partner without a counting vote for this new signer; the member is active and
    ///   has a signer (a member without one gets its first from its home partner, `bindSigner`);
    /// - `newSigner` is not zero and not the member's signer.
    function voteSignerReset(bytes32 member, address newSigner) external onlyPartner {
        Member storage m = _active(member);
        if (m.signer == address(0)) revert MemberNoSigner(member);
        if (newSigner == address(0)) revert MemberZeroSigner();
        if (newSigner == m.signer) revert MemberSameSigner(member, newSigner);
        mapping(address => ResetVote) storage votes = _resetVotes[member][m.round];
        uint256 tenure = _consortium.tenureOf(msg.sender);
        ResetVote storage previous = votes[msg.sender];
        if (previous.newSigner == newSigner && _counts(previous, tenure)) {
            revert MemberAlreadyVoted(member, newSigner, msg.sender);
        }
        votes[msg.sender] = ResetVote({newSigner: newSigner, castAt: uint64(block.timestamp), tenure: uint32(tenure)});
        (uint256 count, uint256 partners) = _countResetVotes(votes, newSigner);
        emit SignerResetVoted(member, newSigner, msg.sender, count, partners);
        if (count * 2 > partners) _reset(member, m, newSigner);
    }

    /// @notice Apply a reset whose votes became a majority because partners left since they voted.
    /// Requirements:
    /// - the caller is a partner; the member is active and has a signer; `newSigner` is not zero;
    /// - the votes for `newSigner` that count are a strict majority of the current partners.
    function applySignerReset(bytes32 member, address newSigner) external onlyPartner {
        Member storage m = _active(member);
        if (m.signer == address(0)) revert MemberNoSigner(member);
        if (newSigner == address(0)) revert MemberZeroSigner();
        (uint256 count, uint256 partners) = _countResetVotes(_resetVotes[member][m.round], newSigner);
        if (count * 2 <= partners) revert MemberResetQuorumNotReached(member, newSigner, count, partners / 2 + 1);
        _reset(member, m, newSigner);
    }

    /// @notice Erase a member: it is frozen for good, each of its consents is withdrawn and its balance
    /// forfeited (in the linked contracts, in this transaction).
    /// Requirements:
    /// - the caller is the member's home partner and still a partner; the member is enrolled and not erased;
    /// - the registry is linked.
    function erase(bytes32 member) external onlyPartner {
        Member storage m = _members[member];
        if (m.home == address(0)) revert MemberUnknown(member);
        if (m.erased) revert MemberAlreadyErased(member);
        if (m.home != msg.sender) revert MemberNotHomePartner(member, m.home, msg.sender);
        if (_consent == address(0)) revert MemberNotLinked(address(this));
        m.erased = true;
        emit MemberErased(member, msg.sender);
        IErasureHook(_consent).eraseMember(member);
        IErasureHook(_loyalty).eraseMember(member);
    }

    /// @inheritdoc IMemberRegistry
    function useAuthorization(
        bytes32 member,
        bytes32 structHash,
        uint256 deadline,
        bytes calldata signature
    ) external {
        if (msg.sender != _consent && msg.sender != _loyalty) revert MemberNotLinked(msg.sender);
        Member storage m = _active(member);
        _authorize(member, m.signer, structHash, deadline, signature);
    }

    function requireActive(bytes32 member) external view returns (address home, address signer) {
        Member storage m = _active(member);
        return (m.home, m.signer);
    }

    /// @notice A member's record (zero home: not enrolled).
    function memberOf(
        bytes32 member
    ) external view returns (address home, address signer, bool erased, uint256 nonce) {
        Member storage m = _members[member];
        return (m.home, m.signer, m.erased, _nonces[member]);
    }

    /// @notice The votes that count now for giving `member` the signer `newSigner`, of `partners`
    /// current partners (a strict majority of them resets the signer).
    function resetVotes(bytes32 member, address newSigner) external view returns (uint256 votes, uint256 partners) {
        return _countResetVotes(_resetVotes[member][_members[member].round], newSigner);
    }

    /// @notice `voter`'s vote in the member's current round: the new signer it is for (zero: none),
    /// until when it counts, and whether it counts now.
    function resetVoteOf(
        bytes32 member,
        address voter
    ) external view returns (address newSigner, uint64 countsUntil, bool counts) {
        ResetVote storage v = _resetVotes[member][_members[member].round][voter];
        if (v.newSigner == address(0)) return (address(0), 0, false);
        uint256 tenure = _consortium.isPartner(voter) ? _consortium.tenureOf(voter) : 0;
        return (v.newSigner, v.castAt + RESET_VOTE_LIFETIME, _counts(v, tenure));
    }

    function nonceOf(bytes32 member) external view returns (uint256) {
        return _nonces[member];
    }

    function consortium() external view returns (address) {
        return address(_consortium);
    }

    function linked() external view returns (address consent, address loyalty) {
        return (_consent, _loyalty);
    }

    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    function _reset(bytes32 member, Member storage m, address newSigner) private {
        address previous = m.signer;
        m.signer = newSigner;
        unchecked {
            ++m.round; // a uint64 of signer changes does not wrap
        }
        emit SignerChanged(member, previous, newSigner, true);
    }

    /// @dev Whether a vote counts for a partner now in tenure `tenure` (0: not a partner).
    function _counts(ResetVote storage v, uint256 tenure) private view returns (bool) {
        return tenure != 0 && v.tenure == tenure && block.timestamp < uint256(v.castAt) + RESET_VOTE_LIFETIME;
    }

    // Counted live over the current partners, as the Consortium counts its proposals: a removed
    // partner's vote no longer counts and the denominator shrinks with it; linear in the partners, who
    // are tens, not thousands.
    function _countResetVotes(
        mapping(address => ResetVote) storage votes,
        address newSigner
    ) private view returns (uint256 count, uint256 partners) {
        address[] memory current = _consortium.partners();
        partners = current.length;
        for (uint256 i = 0; i < partners; ++i) {
            ResetVote storage v = votes[current[i]];
            if (v.newSigner == newSigner && _counts(v, _consortium.tenureOf(current[i]))) ++count;
        }
    }

    function _active(bytes32 member) private view returns (Member storage m) {
        m = _members[member];
        if (m.home == address(0)) revert MemberUnknown(member);
        if (m.erased) revert MemberIsErased(member);
    }

    function _authorize(
        bytes32 member,
        address signer,
        bytes32 structHash,
        uint256 deadline,
        bytes calldata signature
    ) private {
        if (signer == address(0)) revert MemberNoSigner(member);
        if (block.timestamp > deadline) revert MemberSignatureExpired(member, deadline, block.timestamp);
        (address recovered, ECDSA.RecoverError error_, ) = ECDSA.tryRecover(_hashTypedDataV4(structHash), signature);
        if (error_ != ECDSA.RecoverError.NoError || recovered != signer) {
            revert MemberInvalidSignature(member, recovered, signer);
        }
        uint256 nonce = _nonces[member];
        unchecked {
            _nonces[member] = nonce + 1; // one signature per nonce: 2**256 of them never run out
        }
        emit AuthorizationUsed(member, nonce, msg.sender);
    }
}
