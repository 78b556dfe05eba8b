// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {IConsortium} from "./interfaces/IConsortium.sol";
import {IErasureHook, IMemberRegistry} from "./interfaces/IMemberRegistry.sol";

/// @title MemberRegistry
/// @notice Per member id: its home partner (the one that enrolled it, or the one it moved to), an
/// optional signer (a key the customer holds), and whether it was erased. Customer authorizations are
/// EIP-712 signatures (domain "ledgercrm", version "1", this chain and this contract) with a per-member
/// nonce and a deadline at most `MAX_SIGNATURE_LIFETIME` ahead, relayed by any partner; ConsentRegistry
/// and LoyaltyPoints check them here, so one nonce orders everything a member signs and a signature is
/// good for one use only.
///
/// A key is bound (at enrolment or later) only with that key's own signature of the binding, so a
/// partner cannot bind a key it made up for the customer; a contract is never a signer. A member's home
/// moves by her signature or by a strict majority of the partners (so a removed partner's members are
/// not orphaned); a member with a key is erased by her signature or by such a majority, never by her
/// home partner alone (erasure forfeits points she earned elsewhere); one without a key, by its home
/// partner as well.
contract MemberRegistry is IMemberRegistry, EIP712 {
    struct Member {
        address home;
        bool erased;
        // whether `signer` was ever set (it is never unset): `requireActive`, which every consent and
        // earn calls, reads the second slot only for a member with a key. A node that keeps every slot
        // a transaction read (anvil) otherwise holds a zero slot per member, and its per-block state root
        // hashes every slot it holds.
        bool keyed;
        address signer;
        // bumped on every change of signer or home, so votes count for one change only
        uint64 round;
    }

    /// @dev A partner's vote on a member (one per partner per round and kind: a vote for another
    /// target replaces the earlier one). It counts while its voter is in the tenure it voted in and for
    /// `RESET_VOTE_LIFETIME` after it was cast.
    struct Vote {
        address target; // the new signer, the new home; zero for an erasure
        uint64 castAt;
        // the voter's tenure number at the Consortium (1 for its first); a uint32 of admissions of one
        // account, each by a vote of the partners, is never reached
        uint32 tenure;
    }

    /// @notice How long a partners' vote on a member counts, as a Consortium proposal stays open: votes
    /// gathered over months are not a majority of today.
    uint64 public constant RESET_VOTE_LIFETIME = 7 days;

    /// @notice How far ahead a signature's deadline may be: a signature is relayed within days, and one
    /// found later, or kept back, must not stay good for ever.
    uint256 public constant MAX_SIGNATURE_LIFETIME = 30 days;

    bytes32 private constant _SIGNER_CHANGE_TYPEHASH =
        keccak256("SignerChange(bytes32 member,address newSigner,uint256 nonce,uint256 deadline)");
    bytes32 private constant _SIGNER_BINDING_TYPEHASH =
        keccak256("SignerBinding(bytes32 member,address signer,uint256 nonce,uint256 deadline)");
    bytes32 private constant _HOME_MOVE_TYPEHASH =
        keccak256("HomeMove(bytes32 member,address newHome,uint256 nonce,uint256 deadline)");
    bytes32 private constant _ERASURE_TYPEHASH = keccak256("Erasure(bytes32 member,uint256 nonce,uint256 deadline)");

    IConsortium private immutable _consortium;
    address private immutable _deployer;
    address private _consent;
    address private _loyalty;
    mapping(bytes32 member => Member) private _members;
    mapping(bytes32 member => uint256) private _nonces;
    mapping(bytes32 member => mapping(uint64 round => mapping(VoteKind kind => mapping(address voter => Vote))))
        private _votes;

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
    /// zero for a member without one. Each key is bound only with its own signature of
    /// SignerBinding(member, signer, 0, deadline): `deadlines` and `signatures` hold one entry per
    /// non-zero signer, in order (empty for a batch without keys). All or nothing.
    /// Requirements:
    /// - the caller is a current partner; `members` and `signers` have the same, non-zero length, and
    ///   `deadlines` and `signatures` one entry per non-zero signer;
    /// - no member is zero or already enrolled; no signer is a contract; each binding signature is the
    ///   signer's, with a deadline that has not passed and is at most MAX_SIGNATURE_LIFETIME ahead.
    function enrolBatch(
        bytes32[] calldata members,
        address[] calldata signers,
        uint256[] calldata deadlines,
        bytes[] calldata signatures
    ) external onlyPartner {
        if (members.length == 0) revert MemberEmptyBatch();
        if (members.length != signers.length || deadlines.length != signatures.length) {
            revert MemberLengthMismatch();
        }
        uint256 proofs = 0;
        for (uint256 i = 0; i < members.length; ++i) {
            bytes32 member = members[i];
            if (member == bytes32(0)) revert MemberInvalidMember();
            Member storage m = _members[member];
            if (m.home != address(0)) revert MemberAlreadyEnrolled(member, m.home);
            m.home = msg.sender;
            address signer = signers[i];
            if (signer != address(0)) {
                if (proofs == signatures.length) revert MemberLengthMismatch();
                _bind(member, m, signer, deadlines[proofs], signatures[proofs], true);
                ++proofs;
            }
            emit MemberEnrolled(member, msg.sender, signer);
        }
        if (proofs != signatures.length) revert MemberLengthMismatch();
    }

    /// @notice Bind a key to a member that has none yet, with that key's own signature of
    /// SignerBinding(member, signer, nonce, deadline): the customer proves she holds it.
    /// Requirements:
    /// - the caller is the member's home partner and still a partner; the member is active, has no signer;
    /// - `signer` is not zero and not a contract; the signature is its, for the member's current nonce,
    ///   with a deadline that has not passed and is at most MAX_SIGNATURE_LIFETIME ahead.
    function bindSigner(bytes32 member, address signer, uint256 deadline, bytes calldata signature) external onlyPartner {
        Member storage m = _active(member);
        if (m.home != msg.sender) revert MemberNotHomePartner(member, m.home, msg.sender);
        if (m.signer != address(0)) revert MemberSignerAlreadyBound(member, m.signer);
        _bind(member, m, signer, deadline, signature, false);
    }

    /// @notice Replace the member's signer, authorized by the current signer's EIP-712 signature over
    /// SignerChange(member, newSigner, nonce, deadline). Any partner relays.
    /// Requirements:
    /// - the caller is a partner; the member is active and has a signer; `newSigner` is not zero, not a
    ///   contract and not the member's signer;
    /// - the signature is the signer's, for the current nonce, and `deadline` has not passed and is at
    ///   most MAX_SIGNATURE_LIFETIME ahead.
    function changeSigner(
        bytes32 member,
        address newSigner,
        uint256 deadline,
        bytes calldata signature
    ) external onlyPartner {
        Member storage m = _active(member);
        _checkNewSigner(member, m, newSigner);
        bytes32 structHash = keccak256(abi.encode(_SIGNER_CHANGE_TYPEHASH, member, newSigner, _nonces[member], deadline));
        _authorize(member, m.signer, structHash, deadline, signature);
        address previous = m.signer;
        m.signer = newSigner;
        m.keyed = true;
        unchecked {
            ++m.round;
        }
        emit SignerChanged(member, previous, newSigner, false);
    }

    /// @notice Vote to give the member a new signer (its key was lost); it takes effect once a strict
    /// majority of the current partners voted for the same new signer in the same round, and uses up
    /// the member's nonce (a signature made with the old key never comes back). A partner has one vote
    /// per round: voting for another new signer moves its vote there. A vote stops counting when its
    /// voter leaves the consortium (and does not come back with a readmission) and
    /// `RESET_VOTE_LIFETIME` after it was cast.
    /// Requirements:
    /// - the caller is a partner without a counting vote for this new signer; the member is active and
    ///   has a signer (a member without one gets its first from its home partner, `bindSigner`);
    /// - `newSigner` is not zero, not a contract and not the member's signer.
    function voteSignerReset(bytes32 member, address newSigner) external onlyPartner {
        Member storage m = _active(member);
        if (m.signer == address(0)) revert MemberNoSigner(member);
        _checkNewSigner(member, m, newSigner);
        (uint256 count, uint256 partners) = _vote(member, m, VoteKind.ResetSigner, newSigner);
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
        _requireMajority(member, m, VoteKind.ResetSigner, newSigner);
        _reset(member, m, newSigner);
    }

    /// @notice Move the member to another home partner, as it signed HomeMove(member, newHome, nonce,
    /// deadline). Any partner relays.
    /// Requirements:
    /// - the caller is a partner; the member is active and has a signer;
    /// - `newHome` is a current partner and not the member's home;
    /// - the signature is the signer's, for the current nonce, before a deadline at most
    ///   MAX_SIGNATURE_LIFETIME ahead.
    function moveHomeSigned(
        bytes32 member,
        address newHome,
        uint256 deadline,
        bytes calldata signature
    ) external onlyPartner {
        Member storage m = _active(member);
        _checkNewHome(member, m, newHome);
        bytes32 structHash = keccak256(abi.encode(_HOME_MOVE_TYPEHASH, member, newHome, _nonces[member], deadline));
        _authorize(member, m.signer, structHash, deadline, signature);
        _move(member, m, newHome, false);
    }

    /// @notice Vote to move the member to `newHome` (its home left the consortium, or the member without
    /// a key asked a partner); it moves once a strict majority of the current partners voted for the
    /// same new home in the same round. Votes count as for `voteSignerReset`.
    /// Requirements:
    /// - the caller is a partner without a counting vote for this move; the member is active;
    /// - `newHome` is a current partner and not the member's home.
    function voteHomeMove(bytes32 member, address newHome) external onlyPartner {
        Member storage m = _active(member);
        _checkNewHome(member, m, newHome);
        (uint256 count, uint256 partners) = _vote(member, m, VoteKind.MoveHome, newHome);
        emit MemberVoted(member, VoteKind.MoveHome, newHome, msg.sender, count, partners);
        if (count * 2 > partners) _move(member, m, newHome, true);
    }

    /// @notice Erase a member: it is frozen for good, each of its consents is withdrawn and its balance
    /// forfeited (in the linked contracts, in this transaction). A member with a key is erased by its
    /// own signature (`eraseSigned`) or a partners' vote (`voteErasure`), not here.
    /// Requirements:
    /// - the caller is the member's home partner and still a partner; the member is enrolled, not
    ///   erased, and has no signer;
    /// - the registry is linked.
    function erase(bytes32 member) external onlyPartner {
        Member storage m = _members[member];
        if (m.home == address(0)) revert MemberUnknown(member);
        if (m.erased) revert MemberAlreadyErased(member);
        if (m.home != msg.sender) revert MemberNotHomePartner(member, m.home, msg.sender);
        if (m.signer != address(0)) revert MemberSignatureRequired(member);
        _erase(member, m);
    }

    /// @notice Erase a member as it signed Erasure(member, nonce, deadline). Any partner relays.
    /// Requirements:
    /// - the caller is a partner; the member is active and has a signer; the registry is linked;
    /// - the signature is the signer's, for the current nonce, before a deadline at most
    ///   MAX_SIGNATURE_LIFETIME ahead.
    function eraseSigned(bytes32 member, uint256 deadline, bytes calldata signature) external onlyPartner {
        Member storage m = _active(member);
        bytes32 structHash = keccak256(abi.encode(_ERASURE_TYPEHASH, member, _nonces[member], deadline));
        _authorize(member, m.signer, structHash, deadline, signature);
        _erase(member, m);
    }

    /// @notice Vote to erase the member; it is erased once a strict majority of the current partners
    /// voted so in the same round. Votes count as for `voteSignerReset`.
    /// Requirements:
    /// - the caller is a partner without a counting vote to erase it; the member is active; the registry
    ///   is linked.
    function voteErasure(bytes32 member) external onlyPartner {
        Member storage m = _active(member);
        (uint256 count, uint256 partners) = _vote(member, m, VoteKind.Erase, address(0));
        emit MemberVoted(member, VoteKind.Erase, address(0), msg.sender, count, partners);
        if (count * 2 > partners) _erase(member, m);
    }

    /// @notice Carry out a move or an erasure whose votes became a majority because partners left since
    /// they voted (`applySignerReset` for a reset).
    /// Requirements:
    /// - the caller is a partner; the member is active; `kind` is MoveHome (`target` a current partner,
    ///   not the home) or Erase (`target` zero);
    /// - the votes for it that count are a strict majority of the current partners.
    function applyVote(bytes32 member, VoteKind kind, address target) external onlyPartner {
        Member storage m = _active(member);
        if (kind == VoteKind.MoveHome) {
            _checkNewHome(member, m, target);
            _requireMajority(member, m, kind, target);
            _move(member, m, target, true);
        } else if (kind == VoteKind.Erase && target == address(0)) {
            _requireMajority(member, m, kind, target);
            _erase(member, m);
        } else {
            revert MemberInvalidVote(uint8(kind), target);
        }
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
        return (m.home, m.keyed ? m.signer : address(0));
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
        return _countVotes(_votes[member][_members[member].round][VoteKind.ResetSigner], newSigner);
    }

    /// @notice `voter`'s vote in the member's current round: the new signer it is for (zero: none),
    /// until when it counts, and whether it counts now.
    function resetVoteOf(
        bytes32 member,
        address voter
    ) external view returns (address newSigner, uint64 countsUntil, bool counts) {
        Vote storage v = _votes[member][_members[member].round][VoteKind.ResetSigner][voter];
        if (v.castAt == 0) return (address(0), 0, false);
        return (v.target, v.castAt + RESET_VOTE_LIFETIME, _counts(v, _tenureNow(voter)));
    }

    /// @notice The votes of kind `kind` for `target` (zero for an erasure) that count now on `member`,
    /// of `partners` current partners.
    function votesFor(
        bytes32 member,
        VoteKind kind,
        address target
    ) external view returns (uint256 votes, uint256 partners) {
        return _countVotes(_votes[member][_members[member].round][kind], target);
    }

    /// @notice `voter`'s vote of kind `kind` in the member's current round: whether it voted, for what,
    /// until when it counts, and whether it counts now.
    function voteOf(
        bytes32 member,
        VoteKind kind,
        address voter
    ) external view returns (bool voted, address target, uint64 countsUntil, bool counts) {
        Vote storage v = _votes[member][_members[member].round][kind][voter];
        if (v.castAt == 0) return (false, address(0), 0, false);
        return (true, v.target, v.castAt + RESET_VOTE_LIFETIME, _counts(v, _tenureNow(voter)));
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

    /// @dev Bind `signer` to a member without one, proven by the key's own signature (uses the nonce);
    /// at enrolment its MemberEnrolled event names the signer, and no vote can have been cast yet.
    function _bind(
        bytes32 member,
        Member storage m,
        address signer,
        uint256 deadline,
        bytes calldata signature,
        bool enrolling
    ) private {
        if (signer == address(0)) revert MemberZeroSigner();
        if (signer.code.length != 0) revert MemberSignerIsContract(signer);
        bytes32 structHash = keccak256(abi.encode(_SIGNER_BINDING_TYPEHASH, member, signer, _nonces[member], deadline));
        _authorize(member, signer, structHash, deadline, signature);
        m.signer = signer;
        m.keyed = true;
        if (enrolling) return;
        unchecked {
            ++m.round; // a uint64 of changes does not wrap
        }
        emit SignerChanged(member, address(0), signer, false);
    }

    function _checkNewSigner(bytes32 member, Member storage m, address newSigner) private view {
        if (newSigner == address(0)) revert MemberZeroSigner();
        if (newSigner == m.signer) revert MemberSameSigner(member, newSigner);
        if (newSigner.code.length != 0) revert MemberSignerIsContract(newSigner);
    }

    function _checkNewHome(bytes32 member, Member storage m, address newHome) private view {
        if (newHome == m.home) revert MemberSameHome(member, newHome);
        if (!_consortium.isPartner(newHome)) revert MemberHomeNotPartner(member, newHome);
    }

    function _reset(bytes32 member, Member storage m, address newSigner) private {
        address previous = m.signer;
        m.signer = newSigner;
        m.keyed = true;
        unchecked {
            ++m.round; // a uint64 of changes does not wrap
            // what the old key signed and nobody relayed yet dies with it, and stays dead should the
            // key be reset back to it
            ++_nonces[member];
        }
        emit SignerChanged(member, previous, newSigner, true);
    }

    function _move(bytes32 member, Member storage m, address newHome, bool byVote) private {
        address previous = m.home;
        m.home = newHome;
        unchecked {
            ++m.round;
        }
        emit HomeMoved(member, previous, newHome, byVote);
    }

    function _erase(bytes32 member, Member storage m) private {
        if (_consent == address(0)) revert MemberNotLinked(address(this));
        m.erased = true;
        emit MemberErased(member, m.home);
        IErasureHook(_consent).eraseMember(member);
        IErasureHook(_loyalty).eraseMember(member);
    }

    /// @dev Record the caller's vote of `kind` for `target` in the member's round; the count after it.
    function _vote(
        bytes32 member,
        Member storage m,
        VoteKind kind,
        address target
    ) private returns (uint256 count, uint256 partners) {
        mapping(address => Vote) storage votes = _votes[member][m.round][kind];
        uint256 tenure = _consortium.tenureOf(msg.sender);
        Vote storage previous = votes[msg.sender];
        if (previous.target == target && _counts(previous, tenure)) {
            revert MemberAlreadyVoted(member, target, msg.sender);
        }
        votes[msg.sender] = Vote({target: target, castAt: uint64(block.timestamp), tenure: uint32(tenure)});
        return _countVotes(votes, target);
    }

    function _requireMajority(bytes32 member, Member storage m, VoteKind kind, address target) private view {
        (uint256 count, uint256 partners) = _countVotes(_votes[member][m.round][kind], target);
        if (count * 2 <= partners) revert MemberResetQuorumNotReached(member, target, count, partners / 2 + 1);
    }

    function _tenureNow(address voter) private view returns (uint256) {
        return _consortium.isPartner(voter) ? _consortium.tenureOf(voter) : 0;
    }

    /// @dev Whether a vote counts for a partner now in tenure `tenure` (0: not a partner).
    function _counts(Vote storage v, uint256 tenure) private view returns (bool) {
        return tenure != 0 && v.tenure == tenure && block.timestamp < uint256(v.castAt) + RESET_VOTE_LIFETIME;
    }

    // Counted live over the current partners, as the Consortium counts its proposals: a removed
    // partner's vote no longer counts and the denominator shrinks with it; linear in the partners, who
    // are tens, not thousands.
    function _countVotes(
        mapping(address => Vote) storage votes,
        address target
    ) private view returns (uint256 count, uint256 partners) {
        address[] memory current = _consortium.partners();
        partners = current.length;
        for (uint256 i = 0; i < partners; ++i) {
            Vote storage v = votes[current[i]];
            if (v.target == target && _counts(v, _consortium.tenureOf(current[i]))) ++count;
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
        if (deadline - block.timestamp > MAX_SIGNATURE_LIFETIME) {
            revert MemberDeadlineTooFar(member, deadline, block.timestamp + MAX_SIGNATURE_LIFETIME);
        }
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
