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

    bytes32 private constant _SIGNER_CHANGE_TYPEHASH =
        keccak256("SignerChange(bytes32 member,address newSigner,uint256 nonce,uint256 deadline)");

    IConsortium private immutable _consortium;
    address private immutable _deployer;
    address private _consent;
    address private _loyalty;
    mapping(bytes32 member => Member) private _members;
    mapping(bytes32 member => uint256) private _nonces;
    mapping(bytes32 ballot => mapping(address voter => bool)) private _resetVotes;

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
    /// - the caller is a partner; the member is active and has a signer; `newSigner` is not zero;
    /// - the signature is the signer's, for the current nonce, and `deadline` has not passed.
    function changeSigner(
        bytes32 member,
        address newSigner,
        uint256 deadline,
        bytes calldata signature
    ) external onlyPartner {
        Member storage m = _active(member);
        if (newSigner == address(0)) revert MemberZeroSigner();
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
    /// majority of the current partners voted for the same new signer in the same round.
    /// Requirements:
    /// - the caller is a partner that has not voted for this change; the member is active;
    /// - `newSigner` is not zero.
    function voteSignerReset(bytes32 member, address newSigner) external onlyPartner {
        Member storage m = _active(member);
        if (newSigner == address(0)) revert MemberZeroSigner();
        bytes32 ballot = keccak256(abi.encode(member, m.round, newSigner));
        mapping(address => bool) storage voted = _resetVotes[ballot];
        if (voted[msg.sender]) revert MemberAlreadyVoted(member, newSigner, msg.sender);
        voted[msg.sender] = true;
        // counted live over the current partners: a removed partner's vote no longer counts
        address[] memory partners = _consortium.partners();
        uint256 votes = 0;
        for (uint256 i = 0; i < partners.length; ++i) {
            if (voted[partners[i]]) ++votes;
        }
        emit SignerResetVoted(member, newSigner, msg.sender, votes, partners.length);
        if (votes * 2 > partners.length) {
            address previous = m.signer;
            m.signer = newSigner;
            unchecked {
                ++m.round;
            }
            emit SignerChanged(member, previous, newSigner, true);
        }
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
